/**
 * What Hangar needs to know of one `workflow_job` event, already validated (intake/parse.ts).
 * Pure data: the domain never sees raw payloads.
 */
export type JobAction = 'queued' | 'in_progress' | 'completed';
/** The `workflow_job` actions Hangar acts on; others (e.g. `waiting`) are passed over. */
export const JOB_ACTIONS: readonly JobAction[] = ['queued', 'in_progress', 'completed'];
export type Visibility = 'public' | 'private' | 'internal';

export interface WorkflowJobEvent {
  action: JobAction;
  workflowJobId: number;
  runId: number;
  runAttempt: number;
  jobName: string;
  workflowName: string | null;
  labels: string[];
  headBranch: string | null;
  headSha: string;
  /** `owner/name` as GitHub spells it. */
  repo: string;
  owner: string;
  repoId: number;
  visibility: Visibility;
  installationId: number | null;
  runnerId: number | null;
  runnerName: string | null;
  conclusion: string | null;
}
