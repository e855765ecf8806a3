import { decide, repoMatches, type Decision, type PolicyConfig } from './policy.js';
import type { Visibility, WorkflowJobEvent } from './workflow-job.js';

/**
 * Queued jobs no delivery announced (GitHub does not retry a failed webhook; the control may have
 * been down): the pure half of the reconcile loop that polls the open runs of the repositories
 * Hangar serves and records each queued job it has no record of, exactly as its `queued` webhook
 * would have been recorded. Pure; tested from tables (test/unit/reconcile-queued.test.ts).
 *
 * The event built for a found job, field by field (the webhook's field → where it comes from):
 *
 * | webhook                          | from                                                        |
 * |----------------------------------|-------------------------------------------------------------|
 * | `action`                         | `queued`: only jobs whose status is `queued` are built      |
 * | `workflow_job.id`, `run_id`, `run_attempt`, `name`, `labels`, `workflow_name` | the job (`GET …/runs/{id}/attempts/{n}/jobs`) |
 * | `workflow_job.head_branch`, `head_sha` | the job; its run's when the job has none              |
 * | `workflow_job.runner_id`, `runner_name`, `conclusion` | null, as in every `queued` webhook     |
 * | `repository.full_name`, `id`, `visibility` (`private`), `owner.login` | `GET /repos/{o}/{r}` (read fresh) |
 * | `installation.id`                | `GET /repos/{o}/{r}/installation` (App JWT, looked up once) |
 *
 * Nothing a queued webhook carries that Hangar reads is missing from the API. The delivery id is
 * made up (`reconcileDeliveryId`) and can never be a GitHub delivery guid (a UUID: hex digits and
 * dashes only); a real delivery arriving later is the same job's `queued` event again, which the
 * record's event dedupe (`ev:queued`) drops, so the job is queued once.
 */

/** What the loop needs of a job from GitHub's API (structurally github/'s WorkflowJob). */
export interface FoundJob {
  id: number;
  runId: number;
  runAttempt: number;
  name: string;
  status: string;
  labels: readonly string[];
  headBranch: string | null;
  headSha: string;
  workflowName: string | null;
}

export interface FoundRun {
  id: number;
  runAttempt: number;
  headBranch: string | null;
  headSha: string;
}

export interface FoundRepository {
  id: number;
  fullName: string;
  visibility: Visibility;
}

/** A made-up delivery id for a job found by polling: never a GitHub guid (a UUID), the same on every pass. */
export const reconcileDeliveryId = (jobId: number, attempt: number): string => `reconcile-${jobId}-${attempt}`;

/**
 * The repositories to poll: each `owner/repo` pattern as written, and for each `owner/*` every
 * listed repository of that owner (`listed`: the installation's repositories). Case-insensitive,
 * each once, in the order of the patterns.
 */
export function servedRepositories(patterns: readonly string[], listed: readonly { fullName: string }[]): string[] {
  const out = new Map<string, string>();
  for (const p of patterns) {
    const [owner, name] = p.split('/');
    if (!owner || !name) continue;
    const matches = name === '*' ? listed.map((r) => r.fullName).filter((full) => repoMatches(p, full)) : [p];
    for (const full of matches) if (!out.has(full.toLowerCase())) out.set(full.toLowerCase(), full);
  }
  return [...out.values()];
}

/** Owners whose repositories must be listed: those of the `owner/*` patterns. */
export function ownersToList(patterns: readonly string[]): string[] {
  const owners = new Map<string, string>();
  for (const p of patterns) {
    const [owner, name] = p.split('/');
    if (owner && name === '*') owners.set(owner.toLowerCase(), owner);
  }
  return [...owners.values()];
}

/**
 * Jobs worth a closer look: queued on GitHub, asking for a self-hosted runner (GitHub runs the
 * others; the intake ignores them too), and with no record in Hangar. Cheap, so a repository
 * is read (its visibility) only when it has one.
 */
export function missingQueuedJobs<J extends FoundJob>(jobs: readonly J[], recorded: ReadonlySet<number>): J[] {
  return jobs.filter((j) => j.status === 'queued' && j.labels.some((l) => l.toLowerCase() === 'self-hosted') && !recorded.has(j.id));
}

/** The `queued` event the job's webhook would have carried (see the table above). */
export function queuedJobEvent(job: FoundJob, run: FoundRun, repo: FoundRepository, installationId: number | null): WorkflowJobEvent {
  const owner = repo.fullName.split('/')[0] ?? '';
  return {
    action: 'queued',
    workflowJobId: job.id,
    runId: job.runId,
    runAttempt: job.runAttempt,
    jobName: job.name,
    workflowName: job.workflowName,
    labels: [...job.labels],
    headBranch: job.headBranch ?? run.headBranch,
    headSha: job.headSha || run.headSha,
    repo: repo.fullName,
    owner,
    repoId: repo.id,
    visibility: repo.visibility,
    installationId,
    runnerId: null,
    runnerName: null,
    conclusion: null,
  };
}

/** One repository as the loop observed it: the queued jobs it has no record of, with their runs. */
export interface QueuedRepoObservation {
  repo: FoundRepository;
  installationId: number | null;
  missing: readonly { job: FoundJob; run: FoundRun }[];
}

export interface RecordFoundJob {
  kind: 'record';
  deliveryId: string;
  event: WorkflowJobEvent;
  decision: Decision;
}

/**
 * What to record: each missing job's event with the intake's own decision. A job policy
 * ignores (not self-hosted after all) is left alone, as the webhook route leaves it; a refused
 * one is recorded refused (its refusal on record, like a webhook's), never queued.
 */
export function planQueuedRuns(repos: readonly QueuedRepoObservation[], config: PolicyConfig): RecordFoundJob[] {
  const out: RecordFoundJob[] = [];
  const seen = new Set<number>();
  for (const r of repos) {
    for (const { job, run } of r.missing) {
      if (seen.has(job.id)) continue;
      seen.add(job.id);
      const event = queuedJobEvent(job, run, r.repo, r.installationId);
      const decision = decide(event, config);
      if (decision.kind === 'ignore') continue;
      out.push({ kind: 'record', deliveryId: reconcileDeliveryId(job.id, job.runAttempt), event, decision });
    }
  }
  return out;
}
