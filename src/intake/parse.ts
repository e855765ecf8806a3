import { z } from 'zod';
import { PayloadError } from '../domain/errors.js';
import { JOB_ACTIONS, type JobAction, type WorkflowJobEvent } from '../domain/workflow-job.js';

/**
 * The fields of a `workflow_job` payload Hangar relies on. Anything else GitHub sends is
 * passed over, so new fields never break intake; a missing or mistyped field we rely on is a
 * PayloadError naming it.
 */
const id = z.number().int().positive();
const schema = z.object({
  action: z.string().min(1),
  workflow_job: z.object({
    id,
    run_id: id,
    // Older payloads (and GitHub's oldest example) carry no run_attempt or head_branch.
    run_attempt: z.number().int().min(1).default(1),
    name: z.string(),
    workflow_name: z.string().nullish(),
    labels: z.array(z.string().max(256)).max(64),
    head_branch: z.string().nullish(),
    head_sha: z.string(),
    runner_id: z.number().int().nullish(),
    runner_name: z.string().nullish(),
    conclusion: z.string().nullish(),
  }),
  repository: z.object({
    id,
    full_name: z.string().regex(/^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/, 'expected "owner/name"'),
    private: z.boolean(),
    visibility: z.enum(['public', 'private', 'internal']).optional(),
    owner: z.object({ login: z.string().min(1) }),
  }),
  installation: z.object({ id }).nullish(),
});

export const HANDLED_ACTIONS: readonly JobAction[] = JOB_ACTIONS;

/** Parses a workflow_job payload; `null` for actions Hangar does not act on (e.g. `waiting`). */
export function parseWorkflowJob(payload: unknown): WorkflowJobEvent | null {
  const result = schema.safeParse(payload);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new PayloadError(issue.path.join('.') || '(body)', issue.message);
  }
  const p = result.data;
  if (!HANDLED_ACTIONS.includes(p.action as JobAction)) return null;
  const job = p.workflow_job;
  const action = p.action as JobAction;
  return {
    action,
    workflowJobId: job.id,
    runId: job.run_id,
    runAttempt: job.run_attempt,
    jobName: job.name,
    workflowName: job.workflow_name ?? null,
    labels: job.labels,
    headBranch: job.head_branch ?? null,
    headSha: job.head_sha,
    repo: p.repository.full_name,
    owner: p.repository.owner.login,
    repoId: p.repository.id,
    // Older payloads carry only `private`; `visibility` tells internal from private.
    visibility: p.repository.visibility ?? (p.repository.private ? 'private' : 'public'),
    installationId: p.installation?.id ?? null,
    runnerId: job.runner_id ?? null,
    runnerName: job.runner_name ?? null,
    conclusion: job.conclusion ?? null,
  };
}
