import type { Redis } from 'ioredis';
import { readEvents, toEvent, type JobEvent } from '../jobs/events.js';
import type { Keys } from '../queue/keys.js';

/**
 * The events stream as the read model has read it, by job: what a job's detail shows, without
 * reading the whole stream for it (jobs/events.ts `eventsOfJob` reads every entry, ~10,000, to
 * keep one job's: bench/dashboard measured ~150 ms of the control's CPU per detail). Entries come
 * in stream order; the oldest go once the log holds more than `max` (more than the stream
 * keeps, so it never lacks one Redis still has). The read model fills it: the stream once at
 * start (load), then each entry it follows (add).
 */
export class EventLog {
  private readonly byJob = new Map<number, JobEvent[]>();
  private readonly order: JobEvent[] = [];
  private head = 0;

  constructor(private readonly max: number) {}

  get size(): number {
    return this.order.length - this.head;
  }

  add(e: JobEvent): void {
    if (e.workflowJobId === null) return;
    this.order.push(e);
    const list = this.byJob.get(e.workflowJobId);
    if (list) list.push(e);
    else this.byJob.set(e.workflowJobId, [e]);
    while (this.size > this.max) this.dropOldest();
  }

  /** The stream up to `upTo` (the read model's cursor before it follows), into the log. */
  async load(redis: Redis, k: Keys, upTo: string): Promise<void> {
    if (upTo === '0') return;
    let from = '-';
    for (;;) {
      const page = await redis.xrange(k.events, from, upTo, 'COUNT', 1000);
      for (const [id, flat] of page) this.add(toEvent(id, flat));
      if (page.length < 1000) return;
      from = `(${page[page.length - 1]![0]}`;
    }
  }

  /**
   * Every event of one job still in the stream, oldest first: what jobs/events.ts `eventsOfJob`
   * answers. Held entries from the stream's oldest up to `cursor` (how far the log has been
   * filled), and what the stream got after it, read now.
   */
  async eventsOf(redis: Redis, k: Keys, workflowJobId: number, cursor: string): Promise<JobEvent[]> {
    const oldest = (await redis.xrange(k.events, '-', '+', 'COUNT', 1))[0]?.[0];
    if (oldest === undefined) return [];
    const out = cursor === '0' ? [] : this.of(workflowJobId, oldest, cursor);
    let after = cursor === '0' ? undefined : cursor;
    for (;;) {
      const page = await readEvents(redis, k, { ...(after ? { after } : {}), count: 1000 });
      for (const e of page) if (e.workflowJobId === workflowJobId) out.push(e);
      if (page.length < 1000) return out;
      after = page[page.length - 1]!.id;
    }
  }

  /** A job's events with `from` ≤ id ≤ `upTo` (stream ids), oldest first. */
  of(workflowJobId: number, from: string, upTo: string): JobEvent[] {
    return (this.byJob.get(workflowJobId) ?? []).filter((e) => compareStreamIds(e.id, from) >= 0 && compareStreamIds(e.id, upTo) <= 0);
  }

  private dropOldest(): void {
    const e = this.order[this.head++]!;
    const list = this.byJob.get(e.workflowJobId!)!;
    list.shift();
    if (list.length === 0) this.byJob.delete(e.workflowJobId!);
    // Compact now and then rather than shift() the whole log per entry.
    if (this.head > 4096 && this.head * 2 > this.order.length) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
  }
}

/** Stream ids (`<ms>-<seq>`) in stream order; `-` sorts first. */
export function compareStreamIds(a: string, b: string): number {
  if (a === b) return 0;
  if (a === '-') return -1;
  if (b === '-') return 1;
  const [am, as] = a.split('-');
  const [bm, bs] = b.split('-');
  return Number(am) - Number(bm) || Number(as ?? 0) - Number(bs ?? 0);
}
