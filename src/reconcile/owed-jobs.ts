import { isJobPhase } from '../domain/job-phase.js';
import { owedCandidates, planOwedJobs, type OwedCandidate, type OwedOptions, type OwedReopen } from '../domain/owed-jobs.js';
import { releaseJobAttempt } from '../jit/claim.js';
import { readJobRecord } from '../jobs/record.js';
import { jobMoves } from '../jobs/transition.js';
import type { PoolQueues } from '../queue/pool-queues.js';
import type { LoopDeps } from './loops.js';
import type { ReconcileLoop } from './loop.js';

/**
 * Jobs owed a runner (domain/owed-jobs.ts): every `reconcile.runnersIntervalSeconds`, records
 * whose runner ran another job while GitHub still holds their own job queued, past
 * `reconcile.runnerGraceSeconds` since that VM ended (a runner still booting may take it), are
 * checked against GitHub (one read each, at reconcile's priority in the budget) and put back in
 * their pool's queue: the move `ran` → `queued` (compare and set on the job the runner started,
 * fenced), then the queue entry, the spent runner's claim on the attempt released. A control that dies between the two leaves the record queued
 * with no entry: the stuck-jobs loop flags it.
 *
 * Which records: the job index from GitHub's 24-hour queue limit back to the grace (a job still
 * queued has its `queued` event as its last), the few fields that tell first, in one pipeline.
 */
const GITHUB_QUEUE_LIMIT_MS = 25 * 3600 * 1000;
const SCAN_LIMIT = 20_000;
/** GitHub reads per pass at most: a flood of candidates is worked through over a few passes. */
const CHECKS_PER_PASS = 20;
export const MAX_OWED_REOPENS = 3;

interface Observed {
  candidates: OwedCandidate[];
  github: Map<number, string>;
}

export function owedJobsLoop(d: LoopDeps & { queues: PoolQueues }): ReconcileLoop<Observed, OwedReopen[]> {
  const log = d.logger.child({ loop: 'owed-jobs' });
  const opts = (now: number): OwedOptions => ({
    now, graceMs: d.config.reconcile.runnerGraceSeconds * 1000, maxReopens: MAX_OWED_REOPENS, pools: d.config.pools.map((p) => p.name),
  });

  async function scan(now: number): Promise<OwedCandidate[]> {
    const ids = await d.redis.zrevrangebyscore(d.keys.jobIndex, now - opts(now).graceMs, now - GITHUB_QUEUE_LIMIT_MS, 'LIMIT', 0, SCAN_LIMIT);
    if (ids.length === 0) return [];
    const pipe = d.redis.pipeline();
    for (const id of ids) pipe.hmget(d.keys.job(Number(id)), 'state', 'phase', 'startedJob', 'phaseAt', 'pool', 'owedReopens');
    const heads = (await pipe.exec()) ?? [];
    return ids.map((id, i) => {
      const [state, phase, startedJob, phaseAt, pool, reopens] = (heads[i]?.[1] as (string | null)[] | undefined) ?? [];
      return {
        workflowJobId: Number(id), state: state ?? null, phase: isJobPhase(phase) ? phase : null,
        startedJob: startedJob ? Number(startedJob) : null, phaseAt: phaseAt ? Number(phaseAt) : null, pool: pool ?? null, reopens: Number(reopens ?? 0),
      };
    });
  }

  return {
    name: 'owed-jobs',
    intervalMs: d.config.reconcile.runnersIntervalSeconds * 1000,
    async observe(now) {
      const candidates = owedCandidates(await scan(now), opts(now)).slice(0, CHECKS_PER_PASS);
      const github = new Map<number, string>();
      for (const c of candidates) {
        const r = await readJobRecord(d.redis, d.keys, c.workflowJobId);
        if (!r) continue;
        const [owner, repo] = r.repo.split('/') as [string, string];
        try {
          github.set(c.workflowJobId, (await d.github.getJob(owner, repo, c.workflowJobId)).status);
        } catch (err) {
          // Not read: not reopened this pass (a 404 is a job GitHub no longer has).
          log.warn({ workflowJobId: c.workflowJobId, err: (err as Error).message }, 'owed jobs: GitHub did not say whether the job waits');
        }
      }
      return { candidates, github };
    },
    plan: (o, now) => planOwedJobs(o.candidates, o.github, opts(now)),
    describe: (plan) => plan.map((a) => `queue job ${a.workflowJobId} again in ${a.pool}: its runner ran job ${a.startedJob} and GitHub still holds it queued (reopen ${a.reopens} of ${MAX_OWED_REOPENS})`),
    async apply(plan, fence) {
      const counts: Record<string, number> = { reopened: 0, moved: 0, fenced: 0 };
      const moves = jobMoves(d.redis, d.keys);
      for (const a of plan) {
        const moved = await moves.move(a.workflowJobId, {
          to: 'queued', by: 'reconcile', why: 'runner-ran-another-job', owedReopen: true, fence,
          onlyIf: { field: 'startedJob', equals: String(a.startedJob) },
          fields: { owedReopens: a.reopens }, remove: ['startedJob', 'mintedRunner', 'stuck', 'stuckWhy'],
        });
        if (!moved.ok) {
          if (moved.reason === 'fenced') {
            counts.fenced!++;
            break;
          }
          counts.moved!++;
          continue;
        }
        const r = await readJobRecord(d.redis, d.keys, a.workflowJobId);
        if (!r) continue;
        // The spent runner's claim on the attempt goes too, so any host of the pool may mint.
        if (r.host) await releaseJobAttempt(d.redis, d.keys, r.workflowJobId, r.runAttempt, r.host);
        const queued = await d.queues.requeue({
          workflowJobId: r.workflowJobId, runId: r.runId, runAttempt: r.runAttempt, repo: r.repo, owner: r.owner, labels: [...r.labels], pool: a.pool,
          headBranch: r.headBranch ?? null, installationId: r.installationId, queuedAt: Date.now(),
        });
        counts.reopened!++;
        log.warn({ workflowJobId: a.workflowJobId, ranJob: a.startedJob, reopens: a.reopens, queued }, 'job owed a runner: queued again');
      }
      return counts;
    },
  };
}
