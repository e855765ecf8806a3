import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { redisUrl } from '../helpers/redis.js';
import { isOurRedis, runningEmbeddedRedis, startEmbeddedRedis, type EmbeddedRedis } from '../../src/main/embedded-redis.js';

/**
 * The Redis `hangar up` brings when the config names none (src/main/embedded-redis.ts), without
 * VMs: a real redis-server under the state dir, checked as a client sees it (CONFIG GET as the
 * user, with the password from its file), as `ps` sees it (/proc/PID/cmdline), on disk (modes),
 * and across a kill -9 of the process that started it. And `hangar up`'s config errors, from the CLI.
 */
const logger = pino({ level: 'silent' });
const EMBEDDED = fileURLToPath(new URL('../../dist/main/embedded-redis.js', import.meta.url));
let root: string;
const started: EmbeddedRedis[] = [];

const alive = (pid: number) => !/^$|^\d+ \(.*\) Z/.test(readOr(`/proc/${pid}/stat`));
const mode = (file: string) => (statSync(file).mode & 0o777).toString(8);
const start = async (stateDir: string) => {
  const r = await startEmbeddedRedis(stateDir, logger);
  started.push(r);
  return r;
};
const client = (r: EmbeddedRedis, password = readFileSync(r.passwordFile, 'utf8').trim()) =>
  new Redis(r.url, { ...(password === '' ? {} : { password }), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'hangar-embedded-redis-'));
});

afterAll(async () => {
  for (const r of started) await r.stop();
  rmSync(root, { recursive: true, force: true });
});

describe('embedded redis', () => {
  test('runs under <stateDir>/redis with AOF, everysec, noeviction, loopback and a password that is only in 0600 files', async () => {
    const stateDir = join(root, 'a');
    const r = await start(stateDir);
    expect(r.dir).toBe(join(stateDir, 'redis'));
    const password = readFileSync(r.passwordFile, 'utf8').trim();
    expect(password.length).toBeGreaterThanOrEqual(32);
    // Without the password: refused.
    // (This ioredis says HELLO first: the server refuses that, and the connection closes.)
    const anon = new Redis(r.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const refusals: string[] = [];
    anon.on('error', (err: Error) => refusals.push(err.message));
    await expect(anon.connect()).rejects.toThrow();
    expect(refusals.join('\n')).toMatch(/NOAUTH/);
    anon.disconnect();
    const c = client(r);
    await c.connect();
    const get = async (key: string) => (await c.config('GET', key))[1];
    expect(await get('appendonly')).toBe('yes');
    expect(await get('appendfsync')).toBe('everysec');
    expect(await get('maxmemory-policy')).toBe('noeviction');
    expect(await get('bind')).toBe('127.0.0.1');
    expect(await get('requirepass')).toBe(password);
    expect(await get('dir')).toBe(r.dir);
    c.disconnect();
    // Not on its command line (nor on anything else's), only in its files, each 0600, in a 0700 folder.
    expect(readFileSync(`/proc/${r.pid}/cmdline`, 'utf8')).not.toContain(password);
    const exposing = readdirProc().filter((name) => readOr(`/proc/${name}/cmdline`).includes(password));
    expect(exposing).toEqual([]);
    expect(mode(r.passwordFile)).toBe('600');
    expect(mode(join(r.dir, 'redis.conf'))).toBe('600');
    expect(mode(r.dir)).toBe('700');
    expect(readFileSync(join(r.dir, 'redis.pid'), 'utf8').trim()).toBe(String(r.pid));
  });

  test('stops on stop() (its pidfile gone); the next start keeps the data, with a new password', async () => {
    const stateDir = join(root, 'b');
    const first = await start(stateDir);
    const c = client(first);
    await c.connect();
    await c.set('queued-job', 'survives');
    c.disconnect();
    const oldPassword = readFileSync(first.passwordFile, 'utf8').trim();
    await first.stop();
    expect(alive(first.pid)).toBe(false);
    expect(existsSync(join(first.dir, 'redis.pid'))).toBe(false);
    const second = await start(stateDir);
    const newPassword = readFileSync(second.passwordFile, 'utf8').trim();
    expect(newPassword).not.toBe(oldPassword);
    const d = client(second);
    await d.connect();
    expect(await d.get('queued-job')).toBe('survives');
    d.disconnect();
  });

  test('runningEmbeddedRedis (what `hangar doctor` asks): none before the start, its url and password while it runs, none after its stop', async () => {
    const stateDir = join(root, 'found');
    expect(runningEmbeddedRedis(stateDir)).toBeNull();
    const r = await start(stateDir);
    const found = runningEmbeddedRedis(stateDir);
    expect(found).toEqual({ url: r.url, passwordFile: r.passwordFile });
    const c = new Redis(found!.url, { password: readFileSync(found!.passwordFile, 'utf8').trim(), lazyConnect: true, maxRetriesPerRequest: 0 });
    await c.connect();
    expect(await c.ping()).toBe('PONG');
    c.disconnect();
    await r.stop();
    expect(runningEmbeddedRedis(stateDir)).toBeNull();
  });

  test('a redis-server left by a killed run (kill -9 of its parent) is stopped by the next start; its data kept', async () => {
    const stateDir = join(root, 'c');
    // Another process starts it, as `hangar up` would, and is killed -9: its redis-server stays.
    const parent = execa(process.execPath, ['--input-type=module', '-e', `
      const { startEmbeddedRedis } = await import(${JSON.stringify(EMBEDDED)});
      const { pino } = await import('pino');
      const r = await startEmbeddedRedis(${JSON.stringify(stateDir)}, pino({ level: 'silent' }));
      console.log('ready', r.pid, r.url);
      setInterval(() => undefined, 1000);
    `], { reject: false, buffer: false, stdout: 'pipe' });
    const [pid, url] = await new Promise<[number, string]>((resolve, reject) => {
      parent.stdout!.on('data', (b: Buffer) => {
        const m = /ready (\d+) (\S+)/.exec(String(b));
        if (m) resolve([Number(m[1]), m[2]!]);
      });
      void parent.then((r) => reject(new Error(`the parent exited first: ${r.exitCode}`)));
    });
    const staleDir = join(stateDir, 'redis');
    const c = new Redis(url, { password: readFileSync(join(staleDir, 'password'), 'utf8').trim() });
    await c.set('before-the-crash', 'kept');
    c.disconnect();
    parent.kill('SIGKILL');
    await parent;
    await new Promise((r) => setTimeout(r, 300));
    expect(alive(pid)).toBe(true);
    expect(isOurRedis(pid, staleDir)).toBe(true);

    const next = await start(stateDir);
    expect(alive(pid)).toBe(false);
    expect(next.pid).not.toBe(pid);
    const d = client(next);
    await d.connect();
    expect(await d.get('before-the-crash')).toBe('kept');
    d.disconnect();
  }, 60_000);

  test('a pidfile whose pid is now another process (not a redis-server in this folder) is left alone', async () => {
    const stateDir = join(root, 'd');
    const first = await start(stateDir);
    await first.stop();
    const other = execa('sleep', ['60'], { reject: false });
    writeFileSync(join(first.dir, 'redis.pid'), `${other.pid}\n`);
    expect(isOurRedis(other.pid!, first.dir)).toBe(false);
    const r = await start(stateDir);
    expect(alive(other.pid!)).toBe(true);
    expect(readFileSync(join(r.dir, 'redis.pid'), 'utf8').trim()).toBe(String(r.pid));
    other.kill('SIGKILL');
    await other;
  });

  test('a state dir it cannot make is a ConfigError naming agent.stateDir', async () => {
    const file = join(root, 'not-a-dir');
    writeFileSync(file, '');
    await expect(startEmbeddedRedis(file, logger)).rejects.toMatchObject({ code: 'config-invalid', problems: [{ path: 'agent.stateDir' }] });
  });
});

describe('hangar up: config errors, named', () => {
  let dir: string;
  const yaml = (o: { redis?: string; agent?: boolean; stateDir?: string } = {}) => `
github: {apiUrl: "http://127.0.0.1:1", appId: 1, privateKeyFile: ${dir}/missing.pem, webhookSecretFile: ${dir}/secret}
${o.redis ?? ''}
control: {host: 127.0.0.1, port: 0, private: {listen: "127.0.0.1:0"}}
policy: {repositories: ["acme/*"]}
reconcile: {enabled: false}
dashboard: {enabled: false}
pools: [{name: build, labels: [self-hosted, build]}]
hosts: [{name: minipc, role: build, pools: [build], tokenSha256: ${'a'.repeat(64)}}]
${o.agent === false ? '' : `agent:
  host: minipc
  slots: 1
  controlUrl: http://127.0.0.1:1
  tokenFile: ${dir}/token
  stateDir: ${o.stateDir ?? `${dir}/state`}
  vm: {image: ${dir}/image, memoryMiB: 256, accel: tcg}
  caps: {cpuQuotaPercent: 100, memoryMaxMiB: 1024}`}
`;
  const up = async (text: string) => {
    const file = join(dir, `up-${Math.random()}.yaml`);
    writeFileSync(file, text);
    return execa('node', ['dist/main/cli.js', 'up', '--config', file], { reject: false, timeout: 30_000, all: true });
  };
  beforeAll(() => {
    dir = mkdtempSync(join(root, 'cfg-'));
    writeFileSync(join(dir, 'secret'), 'a-webhook-secret-long-enough', { mode: 0o600 });
    writeFileSync(join(dir, 'token'), 'a-host-token-that-is-long-enough', { mode: 0o600 });
  });

  test('redis.passwordFile without redis.url, and a missing agent section, in one error', async () => {
    const r = await up(yaml({ redis: `redis: {passwordFile: ${dir}/pw}`, agent: false }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/redis\.passwordFile \(line \d+\): set without redis\.url/);
    expect(r.stderr).toMatch(/- agent: required/);
    expect(existsSync(join(dir, 'state'))).toBe(false);
  });

  test('a state dir that is a file: named agent.stateDir, nothing started', async () => {
    writeFileSync(join(dir, 'file'), '');
    const r = await up(yaml({ stateDir: `${dir}/file` }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/agent\.stateDir: cannot make .*file\/redis for the embedded Redis: ENOTDIR/);
  });

  test('with redis.url set, up starts no Redis of its own (no <stateDir>/redis), and says what else is wrong', async () => {
    const stateDir = join(dir, 'state-own-redis');
    const r = await up(yaml({ stateDir, redis: `redis: {url: "${redisUrl()}"}` }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/github\.privateKeyFile: cannot read .*missing\.pem: ENOENT/);
    expect(existsSync(join(stateDir, 'redis'))).toBe(false);
  });

  test('a secret file it cannot read, found once the embedded Redis is up: named, and that redis-server stopped, its password in no output', async () => {
    const stateDir = join(dir, 'state-secrets');
    const r = await up(yaml({ stateDir }));
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/github\.privateKeyFile: cannot read .*missing\.pem: ENOENT/);
    const password = readFileSync(join(stateDir, 'redis', 'password'), 'utf8').trim();
    expect(r.all).not.toContain(password);
    expect(existsSync(join(stateDir, 'redis', 'redis.pid'))).toBe(false);
    const left = readdirProc().filter((pid) => isOurRedis(Number(pid), join(stateDir, 'redis')));
    expect(left).toEqual([]);
  });
});

const readOr = (file: string) => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return ''; // gone
  }
};

function readdirProc(): string[] {
  return readdirSync('/proc').filter((n) => /^\d+$/.test(n) && existsSync(`/proc/${n}/cmdline`));
}
