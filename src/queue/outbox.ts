import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { readJobRecords, type JobRecord } from '../intake/job-store.js';
import type { PoolJobData } from './contracts.js';
import type { Keys } from './keys.js';
import type { PoolQueues } from './pool-queues.js';

/**
 * Moves queue commands from the outbox stream into BullMQ. The intake writes the job record
 * and its command in one atomic script (BullMQ's own add is a separate script, so it cannot
 * join that transaction); this relay applies them at least once. Re-applying is harmless:
 * BullMQ ignores a second add with the same job id, and the record is checked first, so a job
 * that completed meanwhile is never enqueued. Several controls share the work through a
 * consumer group; entries of a control that died are claimed after `claimIdleMs`.
 */
const GROUP = 'relay';
const BATCH = 200;

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
    while (this.running) {
      try {
        await this.ensureGroup();
        // After a restart, first finish what this consumer had read but not acknowledged.
        const handled = pendingFirst ? await this.readBatch('0', 0) : await this.readBatch('>', 1000);
        if (pendingFirst && handled === 0) pendingFirst = false;
        if (!pendingFirst) await this.claimAbandoned();
        backoff = 100;
      } catch (err) {
        if (!this.running) break;
        this.o.logger.warn({ err: (err as Error).message, retryInMs: backoff }, 'outbox relay cannot reach redis');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 2000);
        pendingFirst = true;
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

  private async readBatch(from: '0' | '>', blockMs: number): Promise<number> {
    const args: (string | number)[] = ['GROUP', GROUP, this.consumer, 'COUNT', BATCH];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', this.o.keys.outbox, from);
    const res = (await (this.o.blocking.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(...args)) as
      | [string, [string, string[] | null][]][]
      | null;
    const entries = res?.[0]?.[1] ?? [];
    await this.applyBatch(entries);
    return entries.length;
  }

  private async claimAbandoned(): Promise<void> {
    const [, entries] = (await this.o.redis.xautoclaim(
      this.o.keys.outbox, GROUP, this.consumer, this.o.claimIdleMs ?? 30_000, '0-0', 'COUNT', BATCH,
    )) as [string, [string, string[] | null][]];
    await this.applyBatch(entries);
  }

  /**
   * A batch in a few round trips: the records in one pipeline, the enqueues in one addBulk per
   * pool, then the cancels, then one acknowledgement. Enqueues go first: a batch never holds a
   * job's cancel before its enqueue (the record's state only moves forward), and an enqueue of a
   * job that completed meanwhile is skipped because the record says so.
   */
  private async applyBatch(entries: [string, string[] | null][]): Promise<void> {
    if (entries.length === 0) return;
    const ops = entries.map(([id, fields]) => {
      const f = Object.fromEntries(chunk(fields ?? []));
      return { id, op: f.op ?? '', workflowJobId: Number(f.workflowJobId) };
    });
    const ids = [...new Set(ops.map((o) => o.workflowJobId).filter(Number.isInteger))];
    const records = await readJobRecords(this.o.redis, this.o.keys, ids);
    const enqueue = new Map<number, JobRecord>();
    const cancel: JobRecord[] = [];
    for (const o of ops) {
      const rec = records.get(o.workflowJobId);
      // No record (expired), not accepted, or already past queued: nothing to do for the queue.
      if (!rec || rec.decision !== 'accept' || !rec.pool) continue;
      if (o.op === 'enqueue' && rec.state === 'queued') enqueue.set(o.workflowJobId, rec);
      if (o.op === 'cancel') cancel.push(rec);
    }
    await this.o.queues.addBulk([...enqueue.values()].map(jobData));
    for (const rec of cancel) {
      const removed = await this.o.queues.removeWaiting(rec.pool!, rec.workflowJobId);
      if (removed) this.o.logger.info({ workflowJobId: rec.workflowJobId, pool: rec.pool }, 'waiting job removed: completed before a runner took it');
    }
    const entryIds = entries.map(([id]) => id);
    await this.o.redis.multi().xack(this.o.keys.outbox, GROUP, ...entryIds).xdel(this.o.keys.outbox, ...entryIds).exec();
  }
}

/** The queue entry of an accepted job, from its record: everything an agent needs, no secret. */
function jobData(rec: JobRecord): PoolJobData {
  return {
    workflowJobId: rec.workflowJobId,
    runId: rec.runId,
    runAttempt: rec.runAttempt,
    repo: rec.repo,
    owner: rec.owner,
    labels: rec.labels,
    pool: rec.pool!,
    headBranch: rec.headBranch,
    installationId: rec.installationId,
    queuedAt: rec.createdAt,
  };
}

function chunk(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
