/**
 * The nightly batch: the jobs of runs started by `schedule` events, and how busy the slots were
 * while it ran. Pure; tested from tables (test/unit/batch.test.ts).
 *
 * A batch is the latest cluster of schedule runs: runs whose first jobs were queued within
 * `gapMs` of the run before them (a cron fires its workflows at once, GitHub spreads them over
 * minutes). Every job of those runs belongs to the batch, also one queued hours later because it
 * waited for another job of its run.
 */
export interface BatchJob {
  workflowJobId: number;
  runId: number;
  event: string | null;
  queuedAt: number;
  /** When it finished (its VM ended, Hangar gave up, or GitHub completed it); null while it has not. */
  finishedAt: number | null;
  failed: boolean;
}

export const BATCH_GAP_MS = 60 * 60_000;

/** The latest batch's jobs, in the order they were queued; empty when no schedule run is known. */
export function latestBatch<J extends BatchJob>(jobs: readonly J[], gapMs = BATCH_GAP_MS): J[] {
  const byRun = new Map<number, J[]>();
  for (const j of jobs) {
    if (j.event !== 'schedule') continue;
    const list = byRun.get(j.runId);
    if (list) list.push(j);
    else byRun.set(j.runId, [j]);
  }
  const runs = [...byRun.values()]
    .map((js) => ({ jobs: js, first: Math.min(...js.map((j) => j.queuedAt)) }))
    .sort((a, b) => b.first - a.first);
  const picked: J[] = [];
  let prev: number | null = null;
  for (const r of runs) {
    if (prev !== null && prev - r.first > gapMs) break;
    picked.push(...r.jobs);
    prev = r.first;
  }
  return picked.sort((a, b) => a.queuedAt - b.queuedAt || a.workflowJobId - b.workflowJobId);
}

export interface BatchProgress {
  total: number;
  done: number;
  failed: number;
  firstQueuedAt: number | null;
  /** Null while any job is unfinished. */
  lastFinishedAt: number | null;
  /** First queued → last finished, or → `now` while it runs. */
  makespanMs: number | null;
}

export function batchProgress(jobs: readonly BatchJob[], now: number): BatchProgress {
  if (jobs.length === 0) return { total: 0, done: 0, failed: 0, firstQueuedAt: null, lastFinishedAt: null, makespanMs: null };
  const finished = jobs.filter((j) => j.finishedAt !== null);
  const first = Math.min(...jobs.map((j) => j.queuedAt));
  const allDone = finished.length === jobs.length;
  const last = allDone ? Math.max(...finished.map((j) => j.finishedAt!)) : null;
  return {
    total: jobs.length,
    done: finished.length,
    failed: finished.filter((j) => j.failed).length,
    firstQueuedAt: first,
    lastFinishedAt: last,
    makespanMs: (last ?? now) - first,
  };
}

/** A VM's life: up at `up`, ended at `end` (null: still up). */
export interface VmSpan {
  up: number;
  end: number | null;
}

export interface UtilisationPoint {
  at: number;
  busy: number;
  total: number;
}

/**
 * Busy slots over [from, to], sampled at `from`, at every VM up and end inside it, and at `to`:
 * a step chart. `total` is the slots of the hosts (the same at every point: heartbeats keep no
 * history). Points at one instant are merged into the last state there.
 */
export function utilisation(vms: readonly VmSpan[], from: number, to: number, total: number): UtilisationPoint[] {
  if (to < from) return [];
  const changes: [number, number][] = [];
  let busy = 0;
  for (const v of vms) {
    const end = v.end ?? Infinity;
    if (end <= from || v.up > to) continue;
    if (v.up <= from) busy++;
    else changes.push([v.up, 1]);
    if (end <= to) changes.push([end, -1]);
  }
  changes.sort((a, b) => a[0] - b[0]);
  const points: UtilisationPoint[] = [{ at: from, busy, total }];
  for (const [at, d] of changes) {
    busy += d;
    const last = points[points.length - 1]!;
    if (last.at === at) last.busy = busy;
    else points.push({ at, busy, total });
  }
  if (points[points.length - 1]!.at !== to) points.push({ at: to, busy, total });
  return points;
}
