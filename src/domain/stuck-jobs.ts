import type { JobPhase } from './job-phase.js';

/**
 * Stuck jobs: an accepted job still queued on GitHub past `reconcile.stuckAfterSeconds` while
 * Hangar has not got a VM up for it (phase `queued`, `minted` with no VM yet, or
 * `refused-at-start` waiting for another runner) is flagged with why, once per reason: the
 * record's `stuck`/`stuckWhy` and a `note` in the events stream, written again only when the
 * reason changes. Pure; tested from tables (test/unit/stuck-jobs.test.ts).
 *
 * Reasons, checked in this order (the first that holds):
 * - `no-pool`: its pool is not in the config (any more). An accepted job always got a pool at
 *   intake (policy accepts into a pool or refuses), so this only shows a pool removed or renamed
 *   since, with its jobs still waiting.
 * - `no-host`: no host in the config serves its pool.
 * - `every-host-down`: no host serving its pool has a heartbeat (the agent stopped, or cannot
 *   reach the control).
 * - `hosts-draining`: the hosts that beat are all draining (taking no new job).
 * - `slots-full`: every live host of its pool has every slot busy (not asked of a `minted` job:
 *   its host holds a slot for it). The caps are sized so the slots fit them (caps-fit.ts), so a
 *   host whose caps are full shows its slots full too.
 * - `refused-at-start`: a runner minted for it was refused by the gate at job start
 *   (its `startRefusal`), and no VM is up for it since.
 * - `minted-no-vm`: a host got its runner and has no VM up for it.
 * - `not-picked-up`: a host is up with a free slot and the job is still in its queue (the
 *   queue relay, or the host's worker, is not moving).
 */
export type StuckWhy =
  | 'no-pool' | 'no-host' | 'every-host-down' | 'hosts-draining' | 'slots-full'
  | 'refused-at-start' | 'minted-no-vm' | 'not-picked-up';

/** Phases in which a job still waits for Hangar to get a VM up for it. */
export const WAITING_PHASES: readonly JobPhase[] = ['queued', 'minted', 'refused-at-start'];

export interface StuckCandidate {
  workflowJobId: number;
  /** GitHub's state: only a job GitHub still holds queued can be stuck in Hangar's queue. */
  state: string;
  phase: JobPhase | null;
  pool: string | null;
  /** When Hangar first recorded it (ms). */
  createdAt: number;
  startRefusal: string | null;
  /** The reason it was last flagged with, if any. */
  stuckWhy: string | null;
}

export interface HostView {
  name: string;
  pools: readonly string[];
  /** Its last heartbeat (null: none, it expired). */
  beat: { slots: number; busy: number; draining: boolean } | null;
}

export interface StuckFlag {
  workflowJobId: number;
  why: StuckWhy;
  /** The reason it carried before (null: first flagged now). */
  was: string | null;
  /** How long it has waited (ms). */
  waitedMs: number;
}

/** Why a waiting job is not moving (the first reason that holds, in the order above). */
export function stuckWhy(job: Pick<StuckCandidate, 'phase' | 'pool' | 'startRefusal'>, pools: readonly string[], hosts: readonly HostView[]): StuckWhy {
  if (job.pool === null || !pools.includes(job.pool)) return 'no-pool';
  const serving = hosts.filter((h) => h.pools.includes(job.pool!));
  if (serving.length === 0) return 'no-host';
  const live = serving.filter((h) => h.beat !== null);
  if (live.length === 0) return 'every-host-down';
  const taking = live.filter((h) => !h.beat!.draining);
  if (taking.length === 0) return 'hosts-draining';
  if (job.phase !== 'minted' && taking.every((h) => h.beat!.busy >= h.beat!.slots)) return 'slots-full';
  if (job.startRefusal !== null || job.phase === 'refused-at-start') return 'refused-at-start';
  if (job.phase === 'minted') return 'minted-no-vm';
  return 'not-picked-up';
}

/**
 * The flags to write: each waiting job past `stuckAfterMs` whose reason differs from the one on
 * its record. A job that moved on, or that GitHub no longer holds queued, is not stuck here.
 */
export function planStuckJobs(o: {
  jobs: readonly StuckCandidate[];
  pools: readonly string[];
  hosts: readonly HostView[];
  now: number;
  stuckAfterMs: number;
}): StuckFlag[] {
  const out: StuckFlag[] = [];
  for (const j of o.jobs) {
    if (j.state !== 'queued' || j.phase === null || !WAITING_PHASES.includes(j.phase)) continue;
    const waitedMs = o.now - j.createdAt;
    if (waitedMs < o.stuckAfterMs) continue;
    const why = stuckWhy(j, o.pools, o.hosts);
    if (why !== j.stuckWhy) out.push({ workflowJobId: j.workflowJobId, why, was: j.stuckWhy, waitedMs });
  }
  return out;
}
