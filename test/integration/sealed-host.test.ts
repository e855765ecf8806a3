import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { keys, queueName } from '../../src/queue/keys.js';
import { OPERATOR_TOKEN, startTestControl, writeTestConfig, type TestControl } from '../helpers/control.js';
import { aclLog, enrolHost, type EnrolledHost } from '../helpers/host-creds.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The acceptance test of a build host's reach: with the two credentials `hangar host add` gives
 * it, against the run's real Redis and a real control (its dashboard on too), everything that is
 * not its own pool's queue or its own calls to the agents' API is refused. Its pool's queue works
 * through a real BullMQ Worker: host-acl.test.ts.
 */
const DEPLOY_TOKEN = 'deploy-host-token-0123456789abcdef';
const refused = /NOPERM/;

describe('With a build host\'s credentials (its token and its Redis user, made by `hangar host add`)', () => {
  const name = `sealed-${randomUUID().slice(0, 6)}`;
  const prefix = testPrefix();
  const k = keys(prefix);
  let admin: Redis;
  let host: Redis;
  let enrolled: EnrolledHost;
  let control: TestControl;
  const closers: (() => Promise<unknown> | void)[] = [];

  const api = (base: string, method: string, path: string, body?: unknown, token = enrolled.token()) =>
    fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    }).then(async (r) => ({ status: r.status, body: (await r.json().catch(() => ({}))) as Record<string, unknown> }));
  const beat = { slots: 1, busy: 0, vms: [], draining: false };

  beforeAll(async () => {
    admin = new Redis(redisUrl());
    const base = writeTestConfig({ redisUrl: redisUrl(), prefix });
    enrolled = await enrolHost({ name, role: 'build', pools: ['build'], configFile: base.file, out: join(base.dir, 'creds') });
    host = enrolled.redis();
    control = await startTestControl({
      redisUrl: redisUrl(),
      prefix,
      hosts: [
        { name, role: 'build', pools: ['build'], token: enrolled.token() },
        { name: 'deploybox', role: 'deploy', pools: ['deploy'], token: DEPLOY_TOKEN },
      ],
      dashboard: '{listen: "127.0.0.1:0"}',
    });
    // What it must not reach, there to be read: a job record, a decision, the other host's heartbeat, a revocation.
    await admin.hset(k.job(42), 'phase', 'queued');
    await admin.xadd(k.events, '*', 'kind', 'decision');
    expect((await api(control.url!, 'PUT', '/api/v1/hosts/self/heartbeat', beat, DEPLOY_TOKEN)).status).toBe(200);
    await admin.hset(k.hostsRevoked, 'f'.repeat(64), JSON.stringify({ host: 'old', at: 1 }));
  });
  afterAll(async () => {
    while (closers.length) await closers.pop()!();
    host?.disconnect();
    await control?.close();
    await admin.call('ACL', 'DELUSER', enrolled.user);
    await dropPrefix(redisUrl(), prefix);
    admin.disconnect();
  });

  test('reading or writing the deploy pool\'s queue is NOPERM, directly and through BullMQ', async () => {
    await admin.lpush(`${prefix}:${queueName('deploy')}:wait`, 'x');
    await expect(host.lrange(`${prefix}:${queueName('deploy')}:wait`, 0, -1)).rejects.toThrow(refused);
    await expect(host.lpush(`${prefix}:${queueName('deploy')}:wait`, 'y')).rejects.toThrow(refused);
    const deploy = new Queue(queueName('deploy'), { connection: enrolled.redis(), prefix });
    closers.push(() => deploy.close());
    await expect(deploy.add('run', { n: 1 })).rejects.toThrow(refused);
    await expect(deploy.getJobs(['wait'])).rejects.toThrow(refused);
  });

  test('reading or writing a job record is NOPERM', async () => {
    await expect(host.hgetall(k.job(42))).rejects.toThrow(refused);
    await expect(host.hset(k.job(42), 'phase', 'done')).rejects.toThrow(refused);
    await expect(host.zrange(k.jobIndex, '0', '-1')).rejects.toThrow(refused);
  });

  test('reading or writing the decisions and phase moves (events stream) is NOPERM', async () => {
    await expect(host.xrange(k.events, '-', '+')).rejects.toThrow(refused);
    await expect(host.xadd(k.events, '*', 'kind', 'forged')).rejects.toThrow(refused);
  });

  test('another host\'s heartbeat, and its own (the control writes those), are NOPERM', async () => {
    await expect(host.get(k.host('deploybox'))).rejects.toThrow(refused);
    await expect(host.set(k.host('deploybox'), '{}')).rejects.toThrow(refused);
    await expect(host.set(k.host(name), '{}')).rejects.toThrow(refused);
  });

  test('the control\'s keys are NOPERM: leader lock, rate budget, outbox, revoked set, its own drain, sessions', async () => {
    await expect(host.set(k.leader, 'mine')).rejects.toThrow(refused);
    await expect(host.incr(k.leaderToken)).rejects.toThrow(refused);
    await expect(host.hgetall(k.rateBudget)).rejects.toThrow(refused);
    await expect(host.xadd(k.outbox, '*', 'op', 'enqueue')).rejects.toThrow(refused);
    // It cannot see which tokens are revoked, nor take its own revocation back.
    await expect(host.hgetall(k.hostsRevoked)).rejects.toThrow(refused);
    await expect(host.hexists(k.hostsRevoked, 'f'.repeat(64))).rejects.toThrow(refused);
    await expect(host.hdel(k.hostsRevoked, 'f'.repeat(64))).rejects.toThrow(refused);
    await expect(host.del(k.hostDrain(name))).rejects.toThrow(refused);
    await expect(host.set(k.dashboardSession('a'.repeat(64)), '{}')).rejects.toThrow(refused);
  });

  test('inside a script too, declared or not', async () => {
    await expect(host.eval("return redis.call('hgetall', KEYS[1])", 1, k.job(42))).rejects.toThrow(refused);
    await expect(host.eval("return redis.call('hdel', KEYS[1], ARGV[1])", 1, k.hostsRevoked, 'f'.repeat(64))).rejects.toThrow(refused);
    // A key the script did not declare is checked when the script reaches it (Redis says so in other words).
    await expect(host.eval("return redis.call('get', ARGV[1])", 0, k.leader)).rejects.toThrow(/user executing the script can't access/);
  });

  test('listing keys, admin and global commands are NOPERM', async () => {
    await expect(host.scan('0')).rejects.toThrow(refused);
    await expect(host.keys('*')).rejects.toThrow(refused);
    await expect(host.call('CONFIG', 'GET', 'aclfile')).rejects.toThrow(refused);
    await expect(host.call('ACL', 'LIST')).rejects.toThrow(refused);
    await expect(host.call('CLIENT', 'LIST')).rejects.toThrow(refused);
    await expect(host.call('SCRIPT', 'FLUSH')).rejects.toThrow(refused);
    await expect(host.call('FUNCTION', 'FLUSH')).rejects.toThrow(refused);
    await expect(host.flushdb()).rejects.toThrow(refused);
    await expect(host.publish(`${prefix}:events`, 'x')).rejects.toThrow(refused);
  });

  test('Redis logs each refusal with the user (ACL LOG), for the operator to see who tried what', async () => {
    const ours = (await aclLog(admin)).filter((e) => e.username === enrolled.user);
    expect(ours.some((e) => e.reason === 'key' && e.object === k.leader)).toBe(true);
    expect(ours.some((e) => e.reason === 'key' && e.object === k.hostsRevoked)).toBe(true);
    expect(ours.some((e) => e.reason === 'command' && e.object === 'scan')).toBe(true);
  });

  test('minting a deploy runner with its token is 403 (pool-not-served), and the refusal is recorded with the host', async () => {
    const r = await api(control.url!, 'POST', '/api/v1/jit', { pool: 'deploy', workflowJobId: 42 });
    expect(r).toMatchObject({ status: 403, body: { error: 'refused', reason: 'pool-not-served' } });
    const audit = await admin.xrange(k.events, '-', '+');
    expect(audit.some(([, f]) => f.includes('mint-refused') && f.includes('pool-not-served') && f.includes(`host:${name}`))).toBe(true);
  });

  test('the dashboard and its operator API refuse its token (401): no view, no drain, no cancel', async () => {
    const dash = control.dashboard!.url!;
    expect((await api(dash, 'GET', '/api/v1/overview', undefined, OPERATOR_TOKEN)).status).toBe(200);
    expect((await api(dash, 'GET', '/api/v1/overview')).status).toBe(401);
    expect((await api(dash, 'POST', '/api/v1/hosts/deploybox/drain', { why: 'mine now' })).status).toBe(401);
    expect((await api(dash, 'POST', '/api/v1/hosts/' + name + '/undrain', { why: 'x' })).status).toBe(401);
    expect((await api(dash, 'POST', '/api/v1/jobs/42/cancel', { why: 'x' })).status).toBe(401);
    expect(await admin.exists(k.hostDrain('deploybox'))).toBe(0);
    // Nor are the operator's routes on the agents' listener.
    expect((await api(control.url!, 'GET', '/api/v1/overview')).status).toBe(404);
  });

  test('another host\'s heartbeat via the API is impossible: there is only self, and no body names a host', async () => {
    const before = await admin.get(k.host('deploybox'));
    expect((await api(control.url!, 'PUT', '/api/v1/hosts/deploybox/heartbeat', beat)).status).toBe(404);
    expect((await api(control.url!, 'DELETE', '/api/v1/hosts/deploybox/heartbeat')).status).toBe(404);
    expect(await api(control.url!, 'PUT', '/api/v1/hosts/self/heartbeat', { ...beat, host: 'deploybox' })).toMatchObject({ status: 400, body: { error: 'bad-request' } });
    expect(await admin.get(k.host('deploybox'))).toBe(before);
    // Its own beat lands under its own name, with its own role and pools from the config.
    expect((await api(control.url!, 'PUT', '/api/v1/hosts/self/heartbeat', beat)).status).toBe(200);
    expect(JSON.parse((await admin.get(k.host(name)))!)).toMatchObject({ host: name, role: 'build', pools: ['build'] });
    expect(await admin.get(k.host('deploybox'))).toBe(before);
  });
});
