import {
  missingQueuedJobs, ownersToList, planQueuedRuns, servedRepositories,
  type FoundJob, type FoundRun, type QueuedRepoObservation, type RecordFoundJob,
} from '../domain/reconcile-queued.js';
import type { Repository } from '../github/index.js';
import type { LoopDeps } from './loops.js';
import type { ReconcileLoop } from './loop.js';
import { recentRunAttempts } from './facts.js';
import type { Fence } from './leader.js';

/**
 * Queued runs no delivery announced: every `reconcile.queuedRunsIntervalSeconds`, the open runs
 * (queued or in progress) of each repository `policy.repositories` names (`owner/*`: every
 * repository the installation reaches on that account), their jobs, and for each queued
 * self-hosted job Hangar has no record of, the `queued` event its webhook would have carried,
 * recorded through the intake's own path (JobStore.record), so it is decided and queued exactly
 * once (src/domain/reconcile-queued.ts says which field comes from where).
 *
 * What a pass costs in GitHub calls, every one drawn from the client's rate budget: one per 100
 * repositories per `owner/*` pattern, two per repository (queued and in-progress runs, one page
 * each per 100 runs), one per open run attempt Hangar has no job record of (its jobs), and only for a repository holding a
 * job with no record, one to read its visibility (the installation id is looked up once and
 * kept). Runs that are completed are never listed, jobs already recorded are checked in Redis
 * (one pipeline per repository), not GitHub.
 *
 * A repository that fails (not installed there, gone, GitHub down) is logged and skipped; the
 * others go on. Writes: JobStore.record is not fenced (it is the intake's hot script); the pass
 * asks the lock before each batch, and a stale leader's record is harmless anyway: it is the same
 * job's `queued` event, which the event dedupe takes once whoever writes it first.
 */
export interface QueuedRunsObservation {
  repos: QueuedRepoObservation[];
  /** Repositories (or `owner/*` listings) this pass could not read, with GitHub's reason. */
  failed: { what: string; error: string }[];
}

const JOBS_CONCURRENCY = 4;
/** How far back records name the run attempts already announced (a run lives hours, not days). */
const KNOWN_RUNS_WINDOW_MS = 3 * 24 * 3600 * 1000;
const FENCE_EVERY = 50;

export function queuedRunsLoop(d: LoopDeps): ReconcileLoop<QueuedRunsObservation, RecordFoundJob[]> {
  const log = d.logger.child({ loop: 'queued-runs' });
  const patterns = d.config.policy.repositories;

  const fail = (o: QueuedRunsObservation, what: string, err: unknown) => {
    const error = (err as Error).message;
    o.failed.push({ what, error });
    log.warn({ what, err: error }, 'queued runs: could not read from GitHub; skipped this pass');
  };

  async function observeRepo(fullName: string, o: QueuedRunsObservation, known: Set<string>): Promise<void> {
    const [owner, name] = fullName.split('/') as [string, string];
    // A run attempt Hangar has a record of any job of is announced: its other jobs' deliveries,
    // should they be lost, are the deliveries loop's to fetch. Listing every open run's jobs on
    // every pass cost a batch of 500 runs more than GitHub's 5 000 requests an hour (bench/reliability).
    const runs = (await d.github.listOpenRuns(owner, name)).filter((r) => !known.has(`${r.id}:${r.runAttempt}`));
    const found: { job: FoundJob; run: FoundRun }[] = [];
    for (let i = 0; i < runs.length; i += JOBS_CONCURRENCY) {
      const batch = runs.slice(i, i + JOBS_CONCURRENCY);
      const lists = await Promise.all(batch.map((run) => d.github.listJobsForAttempt(owner, name, run.id, run.runAttempt)));
      lists.forEach((jobs, j) => {
        for (const job of jobs) found.push({ job, run: batch[j]! });
      });
    }
    const candidates = missingQueuedJobs(found.map((f) => f.job), new Set());
    if (candidates.length === 0) return;
    const pipe = d.redis.pipeline();
    for (const j of candidates) pipe.exists(d.keys.job(j.id));
    const exists = (await pipe.exec()) ?? [];
    const recorded = new Set(candidates.filter((_, i) => exists[i]?.[1] === 1).map((j) => j.id));
    const missingIds = new Set(missingQueuedJobs(candidates, recorded).map((j) => j.id));
    if (missingIds.size === 0) return;
    const repo: Repository = await d.github.getRepository(owner, name);
    const installationId = await d.github.installationIdFor(owner, name);
    o.repos.push({ repo, installationId, missing: found.filter((f) => missingIds.has(f.job.id)) });
  }

  return {
    name: 'queued-runs',
    intervalMs: d.config.reconcile.queuedRunsIntervalSeconds * 1000,

    async observe(now) {
      const o: QueuedRunsObservation = { repos: [], failed: [] };
      const known = await recentRunAttempts(d.redis, d.keys, KNOWN_RUNS_WINDOW_MS, now);
      const listed: Repository[] = [];
      for (const owner of ownersToList(patterns)) {
        try {
          listed.push(...(await d.github.listInstallationRepositories(owner)));
        } catch (err) {
          fail(o, `${owner}/*`, err);
        }
      }
      for (const fullName of servedRepositories(patterns, listed)) {
        try {
          await observeRepo(fullName, o, known);
        } catch (err) {
          fail(o, fullName, err);
        }
      }
      return o;
    },

    plan: (o) => planQueuedRuns(o.repos, d.config),

    describe: (plan) =>
      plan.map((a) => {
        const e = a.event;
        const what = a.decision.kind === 'accept' ? `queue in ${a.decision.pool}` : `record refused (${a.decision.kind === 'reject' ? a.decision.reason : ''})`;
        return `${what}: ${e.repo} job ${e.workflowJobId} (run ${e.runId} attempt ${e.runAttempt}), no delivery seen`;
      }),

    async apply(plan, fence: Fence) {
      const counts: Record<string, number> = { enqueued: 0, refused: 0, 'already-recorded': 0, fenced: 0 };
      for (let i = 0; i < plan.length; i++) {
        if (i % FENCE_EVERY === 0 && (await d.redis.get(fence.key)) !== fence.value) {
          counts.fenced! += plan.length - i;
          log.warn({ token: fence.token, left: plan.length - i }, 'queued runs: no longer leading; the rest is left to the leader');
          break;
        }
        const a = plan[i]!;
        const outcome = await d.store.record(a.deliveryId, a.event, a.decision);
        if (outcome !== 'created') {
          counts['already-recorded']!++;
          continue;
        }
        const key = a.decision.kind === 'accept' ? 'enqueued' : 'refused';
        counts[key]!++;
        log.info({ workflowJobId: a.event.workflowJobId, repo: a.event.repo, deliveryId: a.deliveryId, decision: a.decision }, 'queued job no delivery announced: recorded');
      }
      return counts;
    },
  };
}
