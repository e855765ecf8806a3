import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { readJobRecord } from '../intake/job-store.js';
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

export interface OutboxRelayOptions {
  /** Blocking connection used only for XREADGROUP. */
  blocking: Redis;
  /** Connection for everything else. */
  redis: Redis;
  keys: Keys;
  queues: PoolQueues;
  logger: Logger;
  consumer?: string;
  claimIdleMs?: number;
  onApplied?: (op: string, workflowJobId: number, result: string) => void;
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
    const args: (string | number)[] = ['GROUP', GROUP, this.consumer, 'COUNT', 100];
    if (blockMs > 0) args.push('BLOCK', blockMs);
    args.push('STREAMS', this.o.keys.outbox, from);
    const res = (await (this.o.blocking.xreadgroup as (...a: (string | number)[]) => Promise<unknown>)(...args)) as
      | [string, [string, string[]][]][]
      | null;
    const entries = res?.[0]?.[1] ?? [];
    for (const [id, fields] of entries) await this.apply(id, fields);
    return entries.length;
  }

  private async claimAbandoned(): Promise<void> {
    const [, entries] = (await this.o.redis.xautoclaim(
      this.o.keys.outbox, GROUP, this.consumer, this.o.claimIdleMs ?? 30_000, '0-0', 'COUNT', 100,
    )) as [string, [string, string[]][]];
    for (const [id, fields] of entries) await this.apply(id, fields);
  }

  private async apply(entryId: string, fields: string[] | null): Promise<void> {
    const f = Object.fromEntries(chunk(fields ?? []));
    const workflowJobId = Number(f.workflowJobId);
    const result = Number.isInteger(workflowJobId) ? await this.applyOp(f.op ?? '', workflowJobId) : 'malformed';
    await this.o.redis.multi().xack(this.o.keys.outbox, GROUP, entryId).xdel(this.o.keys.outbox, entryId).exec();
    this.o.onApplied?.(f.op ?? '', workflowJobId, result);
  }

  private async applyOp(op: string, workflowJobId: number): Promise<string> {
    const rec = await readJobRecord(this.o.redis, this.o.keys, workflowJobId);
    if (!rec || rec.decision !== 'accept' || !rec.pool) return 'no-record';
    const log = this.o.logger.child({ workflowJobId, pool: rec.pool });
    if (op === 'enqueue') {
      if (rec.state !== 'queued') return 'already-moved-on';
      await this.o.queues.add({
        workflowJobId,
        runId: rec.runId,
        runAttempt: rec.runAttempt,
        repo: rec.repo,
        owner: rec.owner,
        labels: rec.labels,
        pool: rec.pool,
        headBranch: rec.headBranch,
        installationId: rec.installationId,
        queuedAt: rec.createdAt,
      });
      log.debug('job enqueued');
      return 'enqueued';
    }
    if (op === 'cancel') {
      const removed = await this.o.queues.removeWaiting(rec.pool, workflowJobId);
      if (removed) log.info('waiting job removed: completed before a runner took it');
      return removed ? 'removed' : 'not-waiting';
    }
    return 'unknown-op';
  }
}

function chunk(flat: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, flat[i + 1]!]);
  return out;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
