import type { BatchJob, VmSpan } from '../domain/batch.js';
import type { JobRecord } from '../jobs/record.js';
import type { JobView, RefusalView } from './api-types.js';
import { isLive, jobView, phaseTimes, refusalView, resultOf } from './views.js';

/**
 * The read model's job records, with what every answer derives from them kept up to date as
 * each record is replaced, so an overview walks what it shows and not all 10,000 records:
 * - each record's view, refusal, VM span and (for a `schedule` run) batch facts, made once
 *   per version of the record (all of them pure functions of the record alone);
 * - the records newest first (by last update, then id) and the refusals newest first (by time,
 *   then id): sorted arrays, one binary search and one splice per change;
 * - the live records (not in a final phase) of each pool, in the same order as all records: all
 *   that the pools' counts and oldest waiting job are made from.
 * `version` moves with every change, for what the read model keeps between changes.
 * Pure: no Redis, no clock. The orders are the ones read-model.ts sorted by before (total, ids
 * being unique), so every section comes out as it did.
 */
export type BatchCandidate = BatchJob & { r: JobRecord };

interface Facts {
  r: JobRecord;
  view: JobView;
  refusal: RefusalView | null;
  live: boolean;
  span: VmSpan | null;
  batch: BatchCandidate | null;
}

const newestFirst = (a: JobRecord, b: JobRecord): number => b.updatedAt - a.updatedAt || b.workflowJobId - a.workflowJobId;
const refusalsNewestFirst = (a: RefusalView, b: RefusalView): number => b.at - a.at || b.workflowJobId - a.workflowJobId;

/** Where `x` goes in `xs` (sorted by `cmp`): the first index whose element sorts after it. */
function insertionPoint<T>(xs: readonly T[], x: T, cmp: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (cmp(xs[mid]!, x) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function remove<T>(xs: T[], x: T, cmp: (a: T, b: T) => number): void {
  // Equal keys sort together; `x` is the one that is identical.
  for (let i = insertionPoint(xs, x, cmp) - 1; i >= 0 && cmp(xs[i]!, x) === 0; i--) {
    if (xs[i] === x) {
      xs.splice(i, 1);
      return;
    }
  }
  // Not found where its key says (a key that does not order, e.g. NaN): look everywhere.
  const i = xs.indexOf(x);
  if (i >= 0) xs.splice(i, 1);
}

function factsOf(r: JobRecord): Facts {
  const t = phaseTimes(r);
  const live = isLive(r);
  const result = resultOf(r);
  return {
    r,
    view: jobView(r),
    refusal: refusalView(r),
    live,
    span: t.vmUp !== null ? { up: t.vmUp, end: live ? null : (t.finished ?? r.updatedAt) } : null,
    batch: r.runEvent === 'schedule'
      ? { r, workflowJobId: r.workflowJobId, runId: r.runId, event: r.runEvent, queuedAt: t.queued ?? r.createdAt, finishedAt: live ? null : t.finished ?? r.phaseAt ?? r.updatedAt, failed: result === 'failed' || result === 'refused' }
      : null,
  };
}

export class JobIndex {
  private readonly facts = new Map<number, Facts>();
  private readonly recent: JobRecord[] = [];
  private readonly refused: RefusalView[] = [];
  private readonly liveByPool = new Map<string | null, Map<number, JobRecord>>();
  /** A record became live again out of its place in `facts`' order: rebuilt when next read. */
  private liveOutOfOrder = false;
  /** Moves with every change. */
  version = 0;
  private readonly scheduled = new Map<number, BatchCandidate>();
  private spanList: VmSpan[] | null = null;

  get size(): number {
    return this.facts.size;
  }

  get(id: number): JobRecord | undefined {
    return this.facts.get(id)?.r;
  }

  /** Every record, in the order they were first set (a Map's order). */
  records(): IterableIterator<JobRecord> {
    return (function* (m) {
      for (const f of m.values()) yield f.r;
    })(this.facts);
  }

  /** Holds `r` in place of the record of its job; returns the one it replaced. */
  set(r: JobRecord): { before: JobRecord | undefined; view: JobView; refusal: RefusalView | null; refusalBefore: RefusalView | null } {
    const id = r.workflowJobId;
    const old = this.facts.get(id);
    this.version++;
    if (old) this.unlink(old);
    const f = factsOf(r);
    this.facts.set(id, f);
    this.recent.splice(insertionPoint(this.recent, r, newestFirst), 0, r);
    if (f.refusal) this.refused.splice(insertionPoint(this.refused, f.refusal, refusalsNewestFirst), 0, f.refusal);
    if (f.live) {
      // A new job is last in both orders and one that was live keeps its place; one that comes
      // back to life (an operator's retry) belongs where it was first set: rebuilt when read.
      // (A job's pool never changes; were it to, the same.)
      if (old && (!old.live || old.r.pool !== r.pool)) {
        if (old.live) this.livePoolMap(old.r.pool).delete(id);
        this.liveOutOfOrder = true;
      }
      this.livePoolMap(r.pool).set(id, r);
    } else if (old?.live) {
      this.livePoolMap(old.r.pool).delete(id);
    }
    if (f.batch) this.scheduled.set(id, f.batch);
    if (f.span || old?.span) this.spanList = null;
    return { before: old?.r, view: f.view, refusal: f.refusal, refusalBefore: old?.refusal ?? null };
  }

  delete(id: number): void {
    const old = this.facts.get(id);
    if (!old) return;
    this.version++;
    this.unlink(old);
    if (old.live) this.livePoolMap(old.r.pool).delete(id);
    this.facts.delete(id);
    if (old.span) this.spanList = null;
  }

  /** Out of the sorted arrays and the batch's candidates (the live map is the callers'). */
  private unlink(f: Facts): void {
    remove(this.recent, f.r, newestFirst);
    if (f.refusal) remove(this.refused, f.refusal, refusalsNewestFirst);
    if (f.batch) this.scheduled.delete(f.r.workflowJobId);
  }

  /** All records, newest first (by last update, then id). Do not change it. */
  newestFirst(): readonly JobRecord[] {
    return this.recent;
  }

  /** The view of a held record (made once per version of it). */
  view(id: number): JobView | undefined {
    return this.facts.get(id)?.view;
  }

  /** Refusals, newest first, at most `n`. */
  refusals(n: number): RefusalView[] {
    return this.refused.slice(0, n);
  }

  /** The live records of a pool, in the order of all records. */
  live(pool: string | null): IterableIterator<JobRecord> {
    if (this.liveOutOfOrder) {
      this.liveByPool.clear();
      for (const f of this.facts.values()) if (f.live) this.livePoolMap(f.r.pool).set(f.r.workflowJobId, f.r);
      this.liveOutOfOrder = false;
    }
    return (this.liveByPool.get(pool) ?? new Map<number, JobRecord>()).values();
  }

  private livePoolMap(pool: string | null): Map<number, JobRecord> {
    let m = this.liveByPool.get(pool);
    if (!m) this.liveByPool.set(pool, (m = new Map()));
    return m;
  }

  /** Jobs of `schedule` runs: what the nightly batch is chosen from. */
  batchCandidates(): BatchCandidate[] {
    return [...this.scheduled.values()];
  }

  /** Every held job's VM span (jobs whose VM came up). */
  spans(): readonly VmSpan[] {
    if (!this.spanList) {
      this.spanList = [];
      for (const f of this.facts.values()) if (f.span) this.spanList.push(f.span);
    }
    return this.spanList;
  }
}
