import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { readControlSecrets } from '../../src/config/secrets.js';
import { StoreError } from '../../src/domain/errors.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { buildControl } from '../../src/main/control-app.js';
import { startLocalRedis, type LocalRedis } from '../../src/main/local-redis.js';
import { keys, queueJobId, queueName } from '../../src/queue/keys.js';
import { startTestControl, TEST_SECRET, writeTestConfig, type TestControl } from '../helpers/control.js';
import { delivery, jobPayload } from '../helpers/payloads.js';
import { testPrefix } from '../helpers/redis.js';

/** Each test here owns a redis-server, because it misconfigures, kills or restarts it. */
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!().catch(() => undefined);
});

async function ownRedis(): Promise<LocalRedis> {
  const r = await startLocalRedis();
  cleanups.push(() => r.dispose());
  return r;
}

async function ownControl(url: string, prefix = testPrefix()): Promise<TestControl> {
  const c = await startTestControl({ redisUrl: url, prefix });
  cleanups.push(() => c.close());
  return c;
}

const post = (c: TestControl, id: number) => {
  const d = delivery(TEST_SECRET, jobPayload({ id }));
  return fetch(`${c.webhookUrl}/webhooks/github`, { method: 'POST', headers: d.headers, body: d.body }).then(
    (r) => r.status,
    () => 0,
  );
};

describe('Redis readiness and failure', () => {
  test('the control refuses to start unless maxmemory-policy is noeviction, and says how to fix it', async () => {
    const redis = await ownRedis();
    const admin = new Redis(redis.url);
    await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
    admin.disconnect();
    const { config } = writeTestConfig({ redisUrl: redis.url, prefix: testPrefix() });
    const err = await buildControl(config, readControlSecrets(config), pino({ level: 'silent' })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('store-misconfigured');
    expect((err as Error).message).toMatch(/allkeys-lru.*noeviction.*maxmemory-policy noeviction/s);
  });

  test('the control warns when Redis persists nothing', async () => {
    const redis = await startLocalRedis({ persistence: false });
    cleanups.push(() => redis.dispose());
    const lines: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => lines.push(s) });
    const { config } = writeTestConfig({ redisUrl: redis.url, prefix: testPrefix() });
    const c = await buildControl(config, readControlSecrets(config), logger);
    cleanups.push(() => c.close());
    expect(lines.join('')).toMatch(/persistence is off/);
  });

  test('Redis down: the webhook answers 503 and stores nothing; back up: 202 again', async () => {
    const redis = await ownRedis();
    const c = await ownControl(redis.url);
    expect(await post(c, 1)).toBe(202);
    await redis.kill();
    expect(await post(c, 2)).toBe(503);
    expect((await fetch(`${c.url}/healthz`)).status).toBe(503);
    await redis.restart();
    await expect.poll(() => post(c, 3), { timeout: 10_000, interval: 200 }).toBe(202);
    const r = new Redis(redis.url);
    const k = keys(c.config.redis.prefix);
    expect(await readJobRecord(r, k, 1)).not.toBeNull();
    expect(await readJobRecord(r, k, 2)).toBeNull();
    r.disconnect();
  });

  test('kill -9 of Redis mid-burst of 500 deliveries: every 202 is queued after the restart, no 5xx is', async () => {
    const redis = await ownRedis();
    const c = await ownControl(redis.url);
    const ids = Array.from({ length: 500 }, (_, i) => 100_000 + i);
    const status = new Map<number, number>();
    let answered = 0;
    let killed: Promise<void> | undefined;
    const next = ids[Symbol.iterator]();
    // 50 concurrent senders; Redis dies after the 200th answer.
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        for (let it = next.next(); !it.done; it = next.next()) {
          const s = await post(c, it.value);
          status.set(it.value, s);
          if (++answered === 200) killed = redis.kill();
        }
      }),
    );
    await killed;
    const accepted = ids.filter((id) => status.get(id) === 202);
    const failed = ids.filter((id) => (status.get(id) ?? 0) >= 500);
    expect(accepted.length).toBeGreaterThanOrEqual(200);
    expect(failed.length).toBeGreaterThan(0);
    expect(accepted.length + failed.length).toBe(500);

    await redis.restart();
    const r = new Redis(redis.url);
    cleanups.push(async () => r.disconnect());
    const k = keys(c.config.redis.prefix);
    // The relay reconnects and finishes the outbox.
    await expect.poll(() => r.xlen(k.outbox), { timeout: 20_000, interval: 200 }).toBe(0);
    // Read the queue through a connection of the test's own (made after the restart).
    const queue = new Queue(queueName('build'), { connection: r, prefix: c.config.redis.prefix });
    cleanups.push(() => queue.close());
    for (const id of accepted) expect(await queue.getJob(queueJobId(id)), `202 job ${id}`).toBeDefined();
    for (const id of failed) {
      expect(await queue.getJob(queueJobId(id)), `5xx job ${id}`).toBeUndefined();
      expect(await readJobRecord(r, k, id), `5xx record ${id}`).toBeNull();
    }
  });
});
