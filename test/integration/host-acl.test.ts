import { createHash, randomUUID } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DelayedError, Queue, UnrecoverableError, Worker, type Job } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort } from '../../src/main/local-redis.js';
import { queueName } from '../../src/queue/keys.js';
import { writeTestConfig } from '../helpers/control.js';
import { aclLog, enrolHost, hangar, type EnrolledHost } from '../helpers/host-creds.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * `hangar host add` / `remove` against the run's real Redis: a build host's ACL user runs a real
 * BullMQ Worker on its pool (what it is refused: sealed-host.test.ts); removed, it cannot log in.
 * Only the ACL users these tests make are touched, and they are deleted at the end.
 */
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describe('hangar host add / remove: a build host\'s Redis user', () => {
  const suffix = randomUUID().slice(0, 6);
  const name = `side-${suffix}`;
  const user = `hangar-host-${name}`;
  let prefix: string;
  let cfg: ReturnType<typeof writeTestConfig>;
  let admin: Redis;
  let enrolled: EnrolledHost;
  let added: EnrolledHost['added'];
  const made = new Set<string>([user]);
  const closers: (() => Promise<unknown> | void)[] = [];

  beforeAll(async () => {
    prefix = testPrefix();
    cfg = writeTestConfig({ redisUrl: redisUrl(), prefix });
    admin = new Redis(redisUrl());
    enrolled = await enrolHost({ name, role: 'build', pools: ['build'], configFile: cfg.file, out: join(cfg.dir, 'creds') });
    added = enrolled.added;
  });
  afterAll(async () => {
    while (closers.length) await closers.pop()!();
    for (const u of made) await admin.call('ACL', 'DELUSER', u);
    await dropPrefix(redisUrl(), prefix);
    admin.disconnect();
  });

  const password = () => enrolled.password();
  const token = () => enrolled.token();
  const hostConnection = (opts: { maxRetriesPerRequest?: number | null } = {}) => enrolled.redis(opts);

  test('writes the token and the password to 0600 files, prints the agent\'s config and the hosts entry, and no secret', async () => {
    for (const f of [`${name}.token`, `${name}.redis-password`]) expect(statSync(join(cfg.dir, 'creds', f)).mode & 0o777).toBe(0o600);
    expect(added.stdout).toContain(`  url: redis://${user}@127.0.0.1:`);
    expect(added.stdout).toContain(`  passwordFile: ${join(cfg.dir, 'creds', `${name}.redis-password`)}`);
    expect(added.stdout).toContain(`  prefix: ${prefix}`);
    expect(added.stdout).toContain(`  - name: ${name}\n    role: build\n    pools: [build]\n    tokenSha256: ${sha256(token())}`);
    for (const secret of [password(), token()]) {
      expect(added.stdout).not.toContain(secret);
      expect(added.stderr).not.toContain(secret);
    }
    // The run's Redis has no aclfile: the user lasts until it restarts, and the operator is told.
    expect(added.stderr).toMatch(/warning: Redis has no aclfile: .*CONFIG REWRITE/);
    const acl = (await admin.call('ACL', 'GETUSER', user)) as unknown[];
    expect(acl[acl.indexOf('keys') + 1]).toBe(`~${prefix}:pool-build:*`);
    expect(acl[acl.indexOf('channels') + 1]).toBe(`&${prefix}:pool-build:*`);
  });

  test('a real BullMQ Worker on its pool takes and settles jobs the control side added, as the agent does', async () => {
    const queue = new Queue(queueName('build'), { connection: admin.duplicate(), prefix });
    const tries = new Map<string, number>();
    // The agent's paths: complete; back to the queue (a drained host: moveToDelayed); fatal; transient then retried.
    const worker = new Worker(queueName('build'), async (job: Job, token?: string) => {
      const n = (tries.get(job.id!) ?? 0) + 1;
      tries.set(job.id!, n);
      if (job.id === 'wj-2' && n === 1) {
        await job.moveToDelayed(Date.now() + 50, token);
        throw new DelayedError();
      }
      if (job.id === 'wj-3') throw new UnrecoverableError('fatal');
      if (job.id === 'wj-4' && n === 1) throw new Error('transient');
      return { ran: job.data.n };
    }, {
      connection: hostConnection({ maxRetriesPerRequest: null }),
      prefix,
      concurrency: 2,
      lockDuration: 15_000,
      stalledInterval: 10_000,
      maxStalledCount: 1,
    });
    const errors: Error[] = [];
    worker.on('error', (err) => errors.push(err));
    closers.push(() => queue.close(), () => worker.close());
    for (const n of [1, 2, 3, 4]) await queue.add('run', { n }, { jobId: `wj-${n}`, attempts: 3, backoff: { type: 'fixed', delay: 50 } });
    const want = { 'wj-1': 'completed', 'wj-2': 'completed', 'wj-3': 'failed', 'wj-4': 'completed' };
    const states = async () => Object.fromEntries(await Promise.all(Object.keys(want).map(async (id) => [id, await queue.getJobState(id)])));
    await expect.poll(states, { timeout: 10_000, interval: 50 }).toEqual(want);
    expect((await queue.getJob('wj-1'))!.returnvalue).toEqual({ ran: 1 });
    expect(tries.get('wj-4')).toBe(2);
    expect(errors).toEqual([]);
    await worker.close();
    // Nothing BullMQ did was refused and swallowed: Redis logged no refusal of this user.
    expect((await aclLog(admin)).filter((e) => e.username === user)).toEqual([]);
  });

  // Everything else it is refused (NOPERM): test/integration/sealed-host.test.ts.

  test('refuses a deploy pool for a build host, an unknown pool, and a host that exists', async () => {
    const other = `oth-${suffix}`;
    made.add(`hangar-host-${other}`);
    const out = join(cfg.dir, 'refused');
    const deploy = await hangar(['host', 'add', other, '--role', 'build', '--pools', 'build,deploy', '--config', cfg.file, '--out', out]);
    expect(deploy.exitCode).not.toBe(0);
    expect(deploy.stderr).toContain('"deploy" is a deploy pool: only a host with role deploy may serve it');
    const unknown = await hangar(['host', 'add', other, '--role', 'build', '--pools', 'biuld', '--config', cfg.file, '--out', out]);
    expect(unknown.stderr).toContain('no pool named "biuld" (did you mean "build"?)');
    expect(await admin.call('ACL', 'GETUSER', `hangar-host-${other}`)).toBeNull();
    const again = await hangar(['host', 'add', name, '--role', 'build', '--pools', 'build', '--config', cfg.file, '--out', join(cfg.dir, 'again')]);
    expect(again.exitCode).not.toBe(0);
    expect(again.stderr).toContain(`Redis already has the ACL user ${user}: run "hangar host remove ${name}" first`);
    expect(password()).toBe(readFileSync(join(cfg.dir, 'creds', `${name}.redis-password`), 'utf8').trim());
    const login = hostConnection();
    expect(await login.ping()).toBe('PONG');
    login.disconnect();
  });

  test('host remove: the user is gone, its open connection closed, and it cannot log in again', async () => {
    const open = hostConnection();
    expect(await open.ping()).toBe('PONG');
    const closed = new Promise<void>((resolve) => open.once('end', () => resolve()));
    const r = await hangar(['host', 'remove', name, '--config', cfg.file]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`deleted the Redis ACL user ${user}`);
    expect(r.stdout).toContain(`the config has no hosts entry "${name}": no token to revoke`);
    await closed;
    expect(await admin.call('ACL', 'GETUSER', user)).toBeNull();
    const again = hostConnection();
    await expect(again.ping()).rejects.toThrow(/WRONGPASS|NOAUTH|closed/);
    again.disconnect();
    const twice = await hangar(['host', 'remove', name, '--config', cfg.file]);
    expect(twice.exitCode).toBe(0);
    expect(twice.stdout).toContain('already removed');
  });
});

describe('hangar host add with an aclfile: the user is saved and survives a restart', () => {
  test('ACL SAVE, then the user is still there after Redis restarts', async () => {
    const cfg = writeTestConfig({ redisUrl: 'redis://127.0.0.1:1', prefix: testPrefix() });
    const aclfile = join(cfg.dir, 'users.acl');
    writeFileSync(aclfile, '');
    const port = await freePort();
    const start = () => execa('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--aclfile', aclfile, '--dir', cfg.dir], { reject: false, cleanup: true });
    let server = start();
    const url = `redis://127.0.0.1:${port}`;
    writeFileSync(cfg.file, readFileSync(cfg.file, 'utf8').replace('redis://127.0.0.1:1', url));
    try {
      await waitUp(url);
      const r = await hangar(['host', 'add', 'saved', '--role', 'build', '--pools', 'build', '--config', cfg.file, '--out', cfg.dir]);
      expect(r.exitCode).toBe(0);
      expect(r.stderr).toContain('saved to Redis\'s aclfile (ACL SAVE)');
      expect(readFileSync(aclfile, 'utf8')).toContain('user hangar-host-saved on');
      server.kill('SIGTERM');
      await server;
      server = start();
      await waitUp(url);
      const r2 = new Redis(url, { username: 'hangar-host-saved', password: readFileSync(join(cfg.dir, 'saved.redis-password'), 'utf8').trim() });
      expect(await r2.ping()).toBe('PONG');
      r2.disconnect();
    } finally {
      server.kill('SIGTERM');
      await server;
    }
  });
});

async function waitUp(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    r.on('error', () => undefined);
    try {
      await r.connect();
      if ((await r.ping()) === 'PONG') return;
    } catch {
      // not up yet
    } finally {
      r.disconnect();
    }
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`redis-server at ${url} did not come up`);
}

describe('the control as a Redis user of its own (redis.passwordFile)', () => {
  test('every connection of the control (records, queues, outbox thread, vetter) logs in as that user; a wrong password stops it with a clear error and no secret', async () => {
    const { buildControl } = await import('../../src/main/control-app.js');
    const { readControlSecrets } = await import('../../src/config/secrets.js');
    const { pino } = await import('pino');
    const suffix = randomUUID().slice(0, 6);
    const user = `hangar-control-${suffix}`;
    const password = randomUUID();
    const prefix = testPrefix();
    const admin = new Redis(redisUrl());
    await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all');
    const base = writeTestConfig({ redisUrl: redisUrl().replace('redis://', `redis://${user}@`), prefix });
    writeFileSync(join(base.dir, 'redis-password'), `${password}\n`, { mode: 0o600 });
    const config = { ...base.config, redis: { ...base.config.redis, passwordFile: join(base.dir, 'redis-password') } };
    const control = await buildControl(config, readControlSecrets(config), pino({ level: 'silent' }));
    try {
      const clients = async () => String(await admin.call('CLIENT', 'LIST')).split('\n').filter((l) => l.includes(` user=${user} `)).length;
      // Records, queue reads, the outbox thread's three, the vetter's reader (cancelRefusedRuns is on).
      // The thread's come up on their own once it runs (outbox-worker.ts): waited for, not raced.
      await expect.poll(clients, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(6);
      expect(await control.redis.call('ACL', 'WHOAMI')).toBe(user);
    } finally {
      await control.close();
    }
    writeFileSync(join(base.dir, 'redis-password'), 'not-the-password\n');
    const wrong = await buildControl(config, readControlSecrets(config), pino({ level: 'silent' })).then(() => null, (err: Error) => err);
    expect(wrong?.message).toMatch(/cannot reach Redis at redis:\/\/.*WRONGPASS/);
    expect(wrong?.message).not.toContain('not-the-password');
    expect(wrong?.message).not.toContain(password);
    await admin.call('ACL', 'DELUSER', user);
    await dropPrefix(redisUrl(), prefix);
    admin.disconnect();
  });
});
