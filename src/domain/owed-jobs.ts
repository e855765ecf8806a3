import type { JobPhase } from './job-phase.js';

/**
 * Jobs owed a runner after all. A just-in-time runner runs the oldest queued job its labels fit,
 * not the one it was minted for, so the runner minted for job B may run job A; A's own runner
 * then normally runs B (a swap). When A's runner is gone before it can (its VM lost, refused,
 * reaped), B's entry reads `ran` — its runner ran a job — while B itself still waits on GitHub
 * with no runner coming: stranded until GitHub cancels it a day later.
 *
 * The reconcile pass finds such records (GitHub's state still `queued`, phase `ran`, the job
 * its runner started not this one), confirms with GitHub that the job is still queued, and puts
 * the job back in its pool's queue for a runner of its own. A runner too many is harmless (it
 * runs the next job, or is reaped idle); a job left without one is not. Bounded: a job is
 * reopened at most `maxReopens` times. Pure; tested from tables (test/unit/owed-jobs.test.ts).
 */
export interface OwedCandidate {
  workflowJobId: number;
  /** GitHub's state as its webhooks said. */
  state: string | null;
  phase: JobPhase | null;
  /** The job the runner minted for this one started (the gate's answer), if any. */
  startedJob: number | null;
  /** When the record reached its phase (epoch ms). */
  phaseAt: number | null;
  pool: string | null;
  reopens: number;
}

export interface OwedOptions {
  now: number;
  /** How long after its runner's VM ended a job may still be taken by a runner already up. */
  graceMs: number;
  maxReopens: number;
  /** The pools the config still has: a job of a pool gone has nowhere to go. */
  pools: readonly string[];
}

/** The records worth asking GitHub about: everything but GitHub's word says the job is owed. */
export function owedCandidates<C extends OwedCandidate>(records: readonly C[], o: OwedOptions): C[] {
  return records.filter(
    (r) =>
      r.state === 'queued' &&
      r.phase === 'ran' &&
      r.startedJob !== null &&
      r.startedJob !== r.workflowJobId &&
      r.phaseAt !== null &&
      o.now - r.phaseAt >= o.graceMs &&
      r.reopens < o.maxReopens &&
      r.pool !== null &&
      o.pools.includes(r.pool),
  );
}

export interface OwedReopen {
  workflowJobId: number;
  /** Compare and set: the reopen goes through only while the record still names this job. */
  startedJob: number;
  reopens: number;
  pool: string;
}

/** GitHub's status of each candidate (absent: not read, or gone): only a job still queued is reopened. */
export function planOwedJobs(candidates: readonly OwedCandidate[], githubStatus: ReadonlyMap<number, string>, o: OwedOptions): OwedReopen[] {
  return owedCandidates(candidates, o)
    .filter((c) => githubStatus.get(c.workflowJobId) === 'queued')
    .map((c) => ({ workflowJobId: c.workflowJobId, startedJob: c.startedJob!, reopens: c.reopens + 1, pool: c.pool! }));
}
