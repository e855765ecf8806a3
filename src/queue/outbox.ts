import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { poolJobData, type PoolJobData } from './contracts.js';
import type { Keys } from './keys.js';
import type { PoolQueues } from './pool-queues.js';

/**
 * Moves queue commands from the outbox stream into BullMQ. The intake writes the job record
 * and its command in one atomic script (BullMQ's own add is a separate script, so it cannot
 * join that transaction); this relay applies them at least once. Re-applying is harmless:
 * BullMQ ignores a second add with the same job id. Several controls share the work through a
 * consumer group; entries of a control that died are claimed after `claimIdleMs`.
 */
const GROUP = 'relay';
const BATCH = 200;
/** After a partial batch, how long to let the next entries gather (adds at most this to pickup). */
const GATHER_MS = 20;
/** While the intake is busy: one batch per this long, at most BATCH × 1000 / BUSY_PAUSE_MS jobs/s. */
const BUSY_PAUSE_MS = 200;
/**
 * The most the queue may lag behind the intake because of that pacing: once the entry just
 * moved is older than this, the relay goes at full speed whatever the intake does. So a burst
 * of webhooks is answered at the intake's full rate, and a sustained flood slows the answers to
 * what the whole control can move end to end instead of growing the backlog without bound.
 */
export const MAX_PACED_LAG_MS = 10_000;

export interface OutboxRelayOptions {
  /** Blocking connection used only for XREADGROUP. */
  blocking: Redis;
  /** Connection for everything else: a plain one (BullMQ's carries its scripts into every multi()). */
  redis: Redis;
  keys: Keys;
  queues: PoolQueues;
  logger: Logger;
  consumer?: string;
  claimIdleMs?: number;
  /**
   * True while the intake is busy answering webhooks: the relay then moves one batch per
   * `BUSY_PAUSE_MS` and leaves the rest of the CPU and of Redis to the answers. Its backlog
   * waits durably in the outbox stream and goes at full speed once the intake is quiet, or
   * once it lags by more than `MAX_PACED_LAG_MS`.
   */
  intakeBusy?: () => boolean;
}

export class OutboxRelay {
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly consumer: string;

  constructor(private readonly o: OutboxRelayOptions) {
    this.consumer = o.consumer ?? `control-${hostname()}`;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    // Unblock a pending XREADGROUP: the blocking connection is ours alone.
    this.o.blocking.disconnect();
    await this.loop;
  }

  private async run(): Promise<void> {
    let backoff = 100;
    let pendingFirst = true;
    let groupReady = false;
    let lastClaim = 0;
    const claimIdleMs = this.o.claimIdleMs ?? 30_000;
    while (this.running) {
      try {
        if (!groupReady) {
          await this.ensureGroup();
          groupReady = true;
        }
        if (pendingFirst) {
          // After a (re)start, first finish what this consumer had read but not acknowledged.
          if ((await this.readBatch('0', 0)).n === 0) pendingFirst = false;
          continue;
        }
        const { n, lastId } = await this.readBatch('>', 1000);
        // Entries of a consumer that died, now and then (not every round: XAUTOCLAIM walks the pending list).
        if (Date.now() - lastClaim >= Math.min(claimIdleMs / 2, 5000)) {
          await this.claimAbandoned();
          lastClaim = Date.now();
        }
        if (n > 0 && this.o.intakeBusy?.() && lagMs(lastId) < MAX_PACED_LAG_MS) await sleep(BUSY_PAUSE_MS);
        // A partial batch: let the next entries gather, so that they share round trips.
        else if (n > 0 && n < BATCH) await sleep(GATHER_MS);
        backoff = 100;
      } catch (err) {
        if (!this.running) break;
        this.o.logger.warn({ err: (err as Error).message, retryInMs: backoff }, 'outbox relay cannot reach redis');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
        pendingFirst = true;
        groupReady = false;
        if (this.o.blocking.status === 'end') await this.o.blocking.connect().catch(() => undefined);
      }
    }
  }

  private async ensureGroup(): Promise<void> {
    try {
      await this.o.redis.xgroup('CREATE', this.o.keys.outbox, GROUP, '0', 'MKSTREAM');
    } catch (err) {
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err;
    }
  }

  private async readBatch(from: '0' | '>', blockMs: number): Promise<{ n: number; lastId: string | undefined }> {
    const args: (string | number)[] = ['GROUP', GROUP, this.consumer, 'COUNT', BATCH];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', this.o.keys.outbox, from);
    const res = (await (this.o.blocking.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(...args)) as
      | [string, [string, string[] | null][]][]
      | null;
    const entries = res?.[0]?.[1] ?? [];
    await this.applyBatch(entries);
    return { n: entries.length, lastId: entries.at(-1)?.[0] };
  }

  private async claimAbandoned(): Promise<void> {
    const [, entries] = (await this.o.redis.xautoclaim(
      this.o.keys.outbox, GROUP, this.consumer, this.o.claimIdleMs ?? 30_000, '0-0', 'COUNT', BATCH,
    )) as [string, [string, string[] | null][]];
    await this.applyBatch(entries);
  }

  /**
   * A batch in a few round trips: the enqueues in one addBulk per pool, then the cancels, then
   * one acknowledgement. Each entry carries what it needs (the queue entry, or the pool), so no
   * record is read. Enqueues go first: a job's cancel is never before its enqueue in the stream.
   * An entry of a job that completed meanwhile may still be enqueued when several relays share
   * the stream; the mint check (the record is no longer queued) then refuses it, so no VM starts.
   */
  private async applyBatch(entries: [string, string[] | null][]): Promise<void> {
    if (entries.length === 0) return;
    const pools = new Set(this.o.queues.pools);
    const enqueue = new Map<number, PoolJobData>();
    const cancel: { workflowJobId: number; pool: string }[] = [];
    for (const [id, flat] of entries) {
      const f = Object.fromEntries(chunk(flat ?? []));
      const workflowJobId = Number(f.workflowJobId);
      if (f.op === 'enqueue' && f.data) {
        const parsed = poolJobData.safeParse(safeJson(f.data));
        if (!parsed.success) this.o.logger.error({ entry: id, workflowJobId }, 'outbox entry without a valid queue entry; skipped');
        else if (!pools.has(parsed.data.pool)) this.o.logger.error({ entry: id, workflowJobId, pool: parsed.data.pool }, 'outbox entry for a pool not in the config; skipped');
        else enqueue.set(workflowJobId, parsed.data);
      } else if (f.op === 'cancel' && f.pool && pools.has(f.pool)) {
        cancel.push({ workflowJobId, pool: f.pool });
      }
    }
    await this.o.queues.addBulk([...enqueue.values()]);
    for (const c of cancel) {
      const removed = await this.o.queues.removeWaiting(c.pool, c.workflowJobId);
      if (removed) this.o.logger.info(c, 'waiting job removed: completed before a runner took it');
    }
    const entryIds = entries.map(([id]) => id);
    await this.o.redis.multi().xack(this.o.keys.outbox, GROUP, ...entryIds).xdel(this.o.keys.outbox, ...entryIds).exec();
  }
}

/** How long ago a stream entry was added: its id is `<ms since epoch>-<seq>` (Redis's clock). */
function lagMs(entryId: string | undefined): number {
  const ms = Number(entryId?.split('-')[0]);
  return Number.isFinite(ms) ? Date.now() - ms : 0;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function chunk(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
