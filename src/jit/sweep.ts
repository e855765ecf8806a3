import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig, PoolConfig } from '../config/schema.js';
import { labelsServedBy } from '../domain/policy.js';
import { cancelRunOnRefusal, decideStart, type StartRefusal } from '../domain/start-policy.js';
import type { GitHubClient, RepositoryVisibility } from '../github/index.js';
import { jobMoves } from '../jobs/transition.js';
import type { JobMetrics } from '../metrics/job-metrics.js';
import type { Keys } from '../queue/keys.js';

/**
 * Before a runner is minted in a repository: a JIT runner takes the oldest queued job its labels
 * fit, whichever job it was minted for. So every queued job of that repository the new runner
 * could be handed is judged with the start gate's own rule (GitHub's facts of its run), and the
 * run of any refused one is cancelled first. The gate at job start still holds without this; the
 * sweep only keeps a refused job from ever reaching a runner. Returns the runs cancelled.
 */
export interface SweepDeps {
  config: ControlConfig;
  github: GitHubClient;
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** Refusals at mint (metrics/job-metrics.ts): the sweep runs before a mint. */
  jobs?: JobMetrics;
}

export interface SweptRun {
  runId: number;
  reason: StartRefusal;
  workflowJobIds: number[];
}

export async function sweepRefusedRuns(deps: SweepDeps, repository: string, visibility: RepositoryVisibility, pool: PoolConfig): Promise<SweptRun[]> {
  const [owner, repo] = repository.split('/') as [string, string];
  const swept: SweptRun[] = [];
  for (const run of await deps.github.listOpenRuns(owner, repo)) {
    // The run's own facts first: most runs are fine for this pool and need no job listing.
    const base = { repository, visibility, event: run.event, headBranch: run.headBranch, headRepository: run.headRepositoryFullName };
    const asRun = decideStart({ ...base, labels: [] }, pool, deps.config);
    if (asRun.kind === 'allow') continue;
    const jobs = await deps.github.listJobsForAttempt(owner, repo, run.id, run.runAttempt);
    // Each queued job the runner could take, judged with its own labels; only a refusal of what
    // the job is cancels its run (a job that merely fits this pool too is another pool's).
    const refused = jobs
      .filter((j) => j.status === 'queued' && labelsServedBy(j.labels, pool.labels))
      .map((j) => ({ job: j, d: decideStart({ ...base, labels: j.labels }, pool, deps.config) }))
      .filter((x) => x.d.kind === 'deny' && cancelRunOnRefusal(x.d.reason));
    const first = refused[0]?.d;
    if (!first || first.kind !== 'deny') continue;
    const ids = refused.map((x) => x.job.id);
    // Refused in the records before the run is cancelled: the cancel's own webhook (completed,
    // cancelled) must find these jobs refused, not queued, or the refusal is lost from view.
    await record(deps, ids, first.reason, pool.name);
    const result = await deps.github.cancelRun(owner, repo, run.id);
    await noteCancel(deps, ids, first.reason, pool.name, result);
    deps.logger.warn({ runId: run.id, workflowJobIds: ids, reason: first.reason, pool: pool.name, result }, 'refused run cancelled before a runner was minted');
    swept.push({ runId: run.id, reason: first.reason, workflowJobIds: ids });
  }
  return swept;
}

async function record(deps: SweepDeps, ids: number[], reason: StartRefusal, pool: string): Promise<void> {
  const jobs = jobMoves(deps.redis, deps.keys);
  for (const id of ids) {
    // Refused where the mint is (its sweep): mintRefusal says so in the record, as the mint's own refusals do.
    const moved = await jobs.move(id, { to: 'refused', by: 'sweep', why: reason, fields: { mintRefusal: reason, runCancelledFor: reason, runCancelledPool: pool } });
    if (moved.ok) deps.jobs?.refused('mint', reason);
  }
}

/**
 * What the cancel did, on each record. Also on one Hangar could not move (past queuing, or moved
 * by another part first): the refusal (mintRefusal) is written there too, so the dashboard's
 * refusals show every job whose run this sweep cancelled.
 */
async function noteCancel(deps: SweepDeps, ids: number[], reason: StartRefusal, pool: string, result: string): Promise<void> {
  const jobs = jobMoves(deps.redis, deps.keys);
  const fields = { mintRefusal: reason, runCancelled: result, runCancelledFor: reason, runCancelledPool: pool };
  for (const id of ids) await jobs.note(id, { by: 'sweep', what: 'run-cancelled-before-mint', why: reason, fields });
}
