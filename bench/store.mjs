#!/usr/bin/env node
// bench/store: the Redis side of the intake, without HTTP. Prints, for N accepted deliveries:
//   1. the intake's record script (JobStore.record, 50 in flight): client CPU and Redis CPU per record
//   2. the outbox relay moving them into BullMQ (OutboxRelay, as the control's relay thread runs it):
//      client CPU and Redis CPU per job, and jobs/s
// Redis is our own (startLocalRedis, AOF on, everysec). Run after a build: `node bench/store.mjs [N]`.
// See docs/benchmarks.md (webhook intake).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';

const dist = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
if (!existsSync(join(dist, 'jobs/intake-record.js'))) {
  console.error(`${dist} is missing: build first (npm run build)`);
  process.exit(1);
}
const load = (f) => import(pathToFileURL(join(dist, f)).href);
const { startLocalRedis } = await load('main/local-redis.js');
const { JobStore } = await load('jobs/intake-record.js');
const { keys } = await load('queue/keys.js');
const { PoolQueues } = await load('queue/pool-queues.js');
const { OutboxRelay } = await load('queue/outbox.js');

const N = Number(process.argv[2] ?? 20000);
if (!Number.isInteger(N) || N < 100) {
  console.error('usage: node bench/store.mjs [N ≥ 100]');
  process.exit(2);
}
const lr = await startLocalRedis({ appendfsync: 'everysec', persistence: true });
const conns = [];
const conn = (opts = {}) => {
  const c = new Redis(lr.url, { maxRetriesPerRequest: null, ...opts });
  conns.push(c);
  return c;
};
const admin = conn();
const redisCpu = async () => {
  const info = await admin.info('cpu');
  return Number(/used_cpu_user:([\d.]+)/.exec(info)[1]) + Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);
};
const us = (x) => x.toFixed(1).padStart(6);

try {
  const k = keys('bench');
  const store = new JobStore(conn(), k, { deliveryTtlSeconds: 72 * 3600 });
  const ev = (id) => ({
    action: 'queued', workflowJobId: id, runId: 1234567, runAttempt: 1, repo: 'acme/app', owner: 'acme', repoId: 42,
    visibility: 'private', jobName: 'build', workflowName: 'CI', labels: ['self-hosted', 'build'], headBranch: 'main',
    headSha: 'abcdef0123456789abcdef0123456789abcdef01', installationId: 7, runnerId: null, runnerName: null, conclusion: null,
  });

  let c0 = process.cpuUsage();
  let r0 = await redisCpu();
  let t0 = performance.now();
  let next = 1;
  await Promise.all(Array.from({ length: 50 }, async () => {
    while (next <= N) {
      const id = next++;
      await store.record(`d-${id}`, ev(id), { kind: 'accept', pool: 'build' });
    }
  }));
  let c = process.cpuUsage(c0);
  let r = await redisCpu();
  console.log(`record script: ${N} records, ${(N / ((performance.now() - t0) / 1000)).toFixed(0)}/s; client CPU ${us((c.user + c.system) / N)} µs, Redis CPU ${us(((r - r0) * 1e6) / N)} µs per record`);

  const queues = new PoolQueues(conn(), 'bench', ['build']);
  const relay = new OutboxRelay({ blocking: conn(), redis: conn(), keys: k, queues, logger: pino({ level: 'silent' }) });
  c0 = process.cpuUsage();
  r0 = await redisCpu();
  t0 = performance.now();
  relay.start();
  while ((await admin.xlen(k.outbox)) > 0) await new Promise((res) => setTimeout(res, 20));
  const seconds = (performance.now() - t0) / 1000;
  c = process.cpuUsage(c0);
  r = await redisCpu();
  const waiting = await queues.queue('build').getWaitingCount();
  console.log(`outbox relay:  ${waiting} of ${N} jobs into BullMQ, ${(N / seconds).toFixed(0)}/s; client CPU ${us((c.user + c.system) / N)} µs, Redis CPU ${us(((r - r0) * 1e6) / N)} µs per job`);
  await relay.stop();
  await queues.close();
  if (waiting !== N) throw new Error(`BullMQ holds ${waiting} jobs, expected ${N}`);
} finally {
  for (const c of conns) c.disconnect();
  await lr.dispose();
}
