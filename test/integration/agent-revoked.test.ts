import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { Agent } from '../../src/agent/agent.js';
import { createControlClient, HostRevokedError } from '../../src/agent/control-client.js';
import type { HostParts } from '../../src/agent/host-parts.js';
import type { AgentConfig } from '../../src/config/schema.js';
import { keys, queueName } from '../../src/queue/keys.js';
import { startTestControl, writeTestConfig, type TestControl } from '../helpers/control.js';
import { enrolHost, hangar } from '../helpers/host-creds.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The agent's side of `hangar host remove`: a real Agent (its BullMQ workers, its control client)
 * against a real control and Redis. What it lends no VM to is stubbed: no job here boots one.
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const HEARTBEAT_MS = 200;

const name = `ag-${randomUUID().slice(0, 6)}`;
const prefix = testPrefix();
const controlLines: Record<string, unknown>[] = [];
const agentLines: Record<string, unknown>[] = [];
let admin: Redis;
let connection: Redis;
let queue: Queue;
let control: TestControl;
let agent: Agent;
let token: string;
let cfg: ReturnType<typeof writeTestConfig>;

const parts = {
  driver: { name: 'none', list: async () => [], destroy: async () => undefined },
  caps: { ensureSlice: async () => undefined, listVmCgroups: async () => [], removeVmCgroup: async () => undefined, usage: async () => { throw new Error('no slice here'); }, cpuQuotaCores: async () => null },
  net: { listTaps: async () => [], destroyTap: async () => undefined },
} as unknown as HostParts;

beforeAll(async () => {
  admin = new Redis(redisUrl());
  const base = writeTestConfig({ redisUrl: redisUrl(), prefix });
  token = (await enrolHost({ name, role: 'build', pools: ['build'], configFile: base.file, out: join(base.dir, 'creds') })).token();
  const hosts = [{ name, role: 'build' as const, pools: ['build'], token }];
  cfg = writeTestConfig({ redisUrl: redisUrl(), prefix, hosts });
  control = await startTestControl({ redisUrl: redisUrl(), prefix, hosts, logger: pino({ level: 'warn' }, { write: (s: string) => void controlLines.push(JSON.parse(s)) }) });
  // Not the host's own Redis user: remove closes that one, which would hide whether the agent itself stops taking jobs.
  connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  queue = new Queue(queueName('build'), { connection: admin.duplicate(), prefix });
  agent = new Agent({
    agent: { host: name, role: 'build', pools: ['build'], slots: 1, vm: { timeoutMinutes: 1 } } as unknown as AgentConfig,
    prefix,
    connection,
    parts,
    control: createControlClient(control.url!, token),
    image: { kernel: '/nonexistent' },
    pools: control.config.pools,
    logger: pino({ level: 'info' }, { write: (s: string) => void agentLines.push(JSON.parse(s)) }),
    heartbeatMs: HEARTBEAT_MS,
  });
  await agent.start();
});

afterAll(async () => {
  await agent?.drain();
  await queue?.close();
  await control?.close();
  connection?.disconnect();
  await admin.call('ACL', 'DELUSER', `hangar-host-${name}`);
  await dropPrefix(redisUrl(), prefix);
  admin.disconnect();
});

const revokedLines = () => agentLines.filter((l) => String(l.msg).startsWith('this host\'s credentials were revoked'));
const refusals = () => controlLines.filter((l) => l.msg === 'refused a request with a revoked host token');

test('before: it heartbeats and its workers take jobs (one that breaks the contract fails at once)', async () => {
  await expect.poll(() => admin.exists(keys(prefix).host(name))).toBe(1);
  await queue.add('run', { not: 'a job' }, { jobId: 'before' });
  await expect.poll(() => queue.getJobState('before'), { timeout: 5_000 }).toBe('failed');
});

test('after hangar host remove: the next heartbeat is refused, the agent says so at error level once and stops', async () => {
  const r = await hangar(['host', 'remove', name, '--config', cfg.file]);
  expect(r.exitCode, r.stderr).toBe(0);
  await expect.poll(() => revokedLines().length, { timeout: 2 * HEARTBEAT_MS + 1_000, interval: 20 }).toBe(1);
  expect(revokedLines()[0]).toMatchObject({ level: 50, reason: expect.stringContaining(`host ${name}'s credentials were revoked`) });
  // No spin: ten heartbeat periods later, still the one line here and the one refusal at the control.
  await sleep(10 * HEARTBEAT_MS);
  expect(revokedLines()).toHaveLength(1);
  expect(refusals()).toHaveLength(1);
  for (const line of [...agentLines, ...controlLines]) expect(JSON.stringify(line)).not.toContain(token);
});

test('it takes no new job: one added now stays waiting (before, the same job failed at once)', async () => {
  await queue.add('run', { not: 'a job' }, { jobId: 'after' });
  await sleep(5 * HEARTBEAT_MS);
  expect(await queue.getJobState('after')).toBe('waiting');
  expect(refusals()).toHaveLength(1);
});

test('the control client names the refusal: HostRevokedError, not retryable, for a heartbeat and a mint', async () => {
  const client = createControlClient(control.url!, token);
  const beat = await client.heartbeat({ slots: 1, busy: 0, vms: [], draining: false }).catch((e: unknown) => e);
  expect(beat).toBeInstanceOf(HostRevokedError);
  expect((beat as HostRevokedError).retryable).toBe(false);
  expect(await client.requestRunner('build', 1).catch((e: unknown) => e)).toBeInstanceOf(HostRevokedError);
});
