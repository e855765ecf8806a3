import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import type { PoolJobData } from '../../src/queue/contracts.js';
import { keys, queueJobId } from '../../src/queue/keys.js';
import { MAX_PACED_LAG_MS, OutboxRelay } from '../../src/queue/outbox.js';
import { BUSY_DELIVERIES_PER_SECOND, OutboxWorker, intakeBusy } from '../../src/queue/outbox-worker.js';
import { PoolQueues } from '../../src/queue/pool-queues.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/** The outbox relay on its own: entries written as the intake's script writes them. */
let redis: Redis;
const cleanups: (() => Promise<unknown> | void)[] = [];
beforeAll(() => {
  redis = new Redis(redisUrl());
});
afterAll(() => redis.disconnect());
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const job = (id: number, pool = 'build'): PoolJobData => ({
  workflowJobId: id,
  runId: 500,
  runAttempt: 1,
  repo: 'acme/app',
  owner: 'acme',
  labels: ['self-hosted', pool],
  pool,
  headBranch: 'main',
  installationId: 7,
  queuedAt: Date.now(),
});

async function writeEntries(prefix: string, entries: string[][]): Promise<void> {
  const pipe = redis.pipeline();
  for (const fields of entries) pipe.xadd(keys(prefix).outbox, '*', ...fields);
  await pipe.exec();
}
const enqueue = (d: PoolJobData | string) => ['op', 'enqueue', 'workflowJobId', String(typeof d === 'string' ? 0 : d.workflowJobId), 'data', typeof d === 'string' ? d : JSON.stringify(d)];

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

function ownRelay(prefix: string, opts: { intakeBusy?: () => boolean; logger?: pino.Logger } = {}) {
  const conns = [new Redis(redisUrl(), { maxRetriesPerRequest: null }), new Redis(redisUrl()), new Redis(redisUrl())];
  const queues = new PoolQueues(conns[2]!, prefix, ['build']);
  const relay = new OutboxRelay({
    blocking: conns[0]!,
    redis: conns[1]!,
    keys: keys(prefix),
    queues,
    logger: opts.logger ?? pino({ level: 'silent' }),
    intakeBusy: opts.intakeBusy,
  });
  cleanups.push(async () => {
    await relay.stop();
    await queues.close();
    for (const c of conns) c.disconnect();
    await dropPrefix(redisUrl(), prefix);
  });
  return { relay, queues };
}

describe('outbox relay', () => {
  test('an entry for a pool not in the config, or without a valid queue entry, is skipped and acknowledged; the rest is enqueued', async () => {
    const prefix = testPrefix();
    const { logger, lines } = captureLogger();
    const { relay, queues } = ownRelay(prefix, { logger });
    await writeEntries(prefix, [enqueue(job(1, 'gone')), enqueue('{not json'), enqueue(job(2)), ['op', 'cancel', 'workflowJobId', '3', 'pool', 'gone']]);
    relay.start();
    await expect.poll(() => redis.xlen(keys(prefix).outbox), { timeout: 5000 }).toBe(0);
    const ids = (await queues.queue('build').getJobs(['waiting'])).map((j) => j.id);
    expect(ids).toEqual([queueJobId(2)]);
    const errors = lines.filter((l) => l.level === 50).map((l) => l.msg);
    expect(errors).toEqual(expect.arrayContaining(['outbox entry for a pool not in the config; skipped', 'outbox entry without a valid queue entry; skipped']));
  });

  test('while the intake is busy it moves one batch per pause; once quiet, the rest at once', async () => {
    const prefix = testPrefix();
    let busy = true;
    const { relay, queues } = ownRelay(prefix, { intakeBusy: () => busy });
    await writeEntries(prefix, Array.from({ length: 2000 }, (_, i) => enqueue(job(1000 + i))));
    const waiting = () => queues.queue('build').getWaitingCount();
    const t0 = performance.now();
    relay.start();
    await new Promise((r) => setTimeout(r, 500));
    // Paced: batches of 200, at least 200 ms apart, so never more than 200 × (1 + elapsed / 200 ms)
    // however slow the machine (elapsed is read after the count). At full speed all 2,000 go in well under that.
    const whileBusy = await waiting();
    const elapsed = performance.now() - t0;
    expect(whileBusy).toBeGreaterThan(0);
    expect(whileBusy).toBeLessThanOrEqual(200 * (1 + Math.floor(elapsed / 200)));
    busy = false;
    await expect.poll(waiting, { timeout: 10_000 }).toBe(2000);
    // The relay deletes a batch's entries after BullMQ has them: the last delete may trail the add.
    await expect.poll(() => redis.xlen(keys(prefix).outbox), { timeout: 5_000 }).toBe(0);
  });

  test('pacing stops once the queue lags by more than MAX_PACED_LAG_MS: a sustained flood cannot grow the backlog without bound', async () => {
    const prefix = testPrefix();
    const { relay, queues } = ownRelay(prefix, { intakeBusy: () => true });
    // Entries written 20 s ago (stream ids are milliseconds), intake busy all along.
    const at = Date.now() - 2 * MAX_PACED_LAG_MS;
    const pipe = redis.pipeline();
    for (let i = 0; i < 2000; i++) pipe.xadd(keys(prefix).outbox, `${at}-${i + 1}`, ...enqueue(job(5000 + i)));
    await pipe.exec();
    const t0 = performance.now();
    relay.start();
    await expect.poll(() => queues.queue('build').getWaitingCount(), { timeout: 10_000, interval: 20 }).toBe(2000);
    // Paced, ten batches of 200 would take at least nine pauses of 200 ms.
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test('the relay thread: its logs reach the control logger, and it is restarted when it dies', async () => {
    const prefix = testPrefix();
    const { logger, lines } = captureLogger();
    const worker = new OutboxWorker({ redisUrl: redisUrl(), prefix, pools: ['build'], level: 'debug' }, logger);
    const queues = new PoolQueues(new Redis(redisUrl()), prefix, ['build']);
    cleanups.push(async () => {
      await worker.stop();
      await queues.close();
      await dropPrefix(redisUrl(), prefix);
    });
    await worker.start();
    await writeEntries(prefix, [enqueue(job(1, 'gone')), enqueue(job(2))]);
    await expect.poll(() => queues.queue('build').getWaitingCount(), { timeout: 5000 }).toBe(1);
    expect(lines.some((l) => l.msg === 'outbox entry for a pool not in the config; skipped' && l.pool === 'gone')).toBe(true);

    const first = worker.thread!;
    await first.terminate();
    await writeEntries(prefix, [enqueue(job(3))]);
    await expect.poll(() => queues.queue('build').getWaitingCount(), { timeout: 10_000 }).toBe(2);
    expect(worker.thread).toBeDefined();
    expect(worker.thread).not.toBe(first);
    expect(lines.some((l) => l.msg === 'outbox relay thread exited')).toBe(true);
  });
  test('the relay is paced while deliveries pour in, even when the intake thread looks idle (it may be waiting on Redis)', async () => {
    expect(intakeBusy(0.1, 0)).toBe(false);
    expect(intakeBusy(0.6, 0)).toBe(true);
    expect(intakeBusy(0.1, BUSY_DELIVERIES_PER_SECOND)).toBe(true);
    expect(intakeBusy(0.1, BUSY_DELIVERIES_PER_SECOND - 1)).toBe(false);

    const prefix = testPrefix();
    const { logger, lines } = captureLogger();
    // 1,000 deliveries/s as the intake would count them, while this thread mostly sleeps.
    let pouring = true;
    let count = 0;
    let at = performance.now();
    const deliveries = () => {
      const now = performance.now();
      if (pouring) count += Math.round(now - at);
      at = now;
      return count;
    };
    const worker = new OutboxWorker({ redisUrl: redisUrl(), prefix, pools: ['build'], level: 'debug' }, logger, deliveries);
    cleanups.push(async () => {
      await worker.stop();
      await dropPrefix(redisUrl(), prefix);
    });
    await worker.start();
    await expect.poll(() => lines.some((l) => l.msg === 'intake busy: relay paced'), { timeout: 3000, interval: 50 }).toBe(true);
    pouring = false;
    await expect.poll(() => lines.some((l) => l.msg === 'intake quiet: relay at full speed'), { timeout: 3000, interval: 50 }).toBe(true);
  });
});
