import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readControlSecrets, redisTarget, type RedisTlsConfig } from '../../src/config/secrets.js';
import { certSha256 } from '../../src/config/tls-files.js';
import { StoreError } from '../../src/domain/errors.js';
import { buildControl } from '../../src/main/control-app.js';
import { startLocalRedis, type LocalRedis } from '../../src/main/local-redis.js';
import { queueName } from '../../src/queue/keys.js';
import { connectRedis } from '../../src/queue/redis-connect.js';
import { writeTestConfig } from '../helpers/control.js';
import { redisUrl, testPrefix } from '../helpers/redis.js';
import { makeCa, makeServerCert, type TestCa, type TestCert } from '../helpers/tls.js';

/**
 * Redis over TLS for an agent on another box: a TLS-only redis-server of the test's own
 * (local-redis.ts `tls`, a test CA's certificate for 127.0.0.1 and localhost), reached through
 * redisTarget as every process does. A certificate that is not the one trusted refuses the
 * connection once, with the reason, and is not retried; no secret is in any message.
 */
describe('rediss:// with redis.tls', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let cert: TestCert;
  let server: LocalRedis;
  let dir: string;
  const user = `hangar-tls-${randomUUID().slice(0, 6)}`;
  const password = `pw-${randomUUID()}`;
  const clients: Redis[] = [];

  /** A client as the processes make one: redisTarget's url and options, lazy, connected by connectRedis. */
  function client(tls: RedisTlsConfig | undefined, o: { url?: string; passwordFile?: string; connectTimeout?: number } = {}): Redis {
    const target = redisTarget({ url: o.url ?? server.url, ...(tls ? { tls } : {}), ...(o.passwordFile ? { passwordFile: o.passwordFile } : {}) });
    const r = new Redis(target.url, { lazyConnect: true, maxRetriesPerRequest: 1, ...(o.connectTimeout ? { connectTimeout: o.connectTimeout } : {}), ...target.options });
    r.on('error', () => undefined);
    clients.push(r);
    return r;
  }
  /** connectRedis's failure, and how many times the client tried in the next 600 ms. */
  async function refusal(r: Redis, url = server.url): Promise<{ err: StoreError; attempts: number; status: string }> {
    let attempts = 0;
    r.on('connecting', () => attempts++);
    const err = await connectRedis(r, url).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    const before = attempts;
    await new Promise((res) => setTimeout(res, 600));
    return { err: err as StoreError, attempts: attempts - before, status: r.status };
  }

  beforeAll(async () => {
    ca = makeCa('Hangar Redis test CA');
    otherCa = makeCa('Someone else');
    cert = makeServerCert(ca, ['IP:127.0.0.1', 'DNS:localhost'], ca.dir);
    dir = ca.dir;
    server = await startLocalRedis({ tls: { certFile: cert.certFile, keyFile: cert.keyFile }, persistence: false });
    const admin = client({ caFile: ca.certFile });
    await connectRedis(admin, server.url);
    await admin.call('ACL', 'SETUSER', user, 'on', `>${password}`, '~*', '&*', '+@all');
    writeFileSync(join(dir, 'redis-password'), `${password}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server?.dispose();
  });

  test('local-redis with tls listens TLS-only on its port, and says rediss://', () => {
    expect(server.url).toBe(`rediss://127.0.0.1:${server.port}`);
  });

  test('the right CA: PING, and a real BullMQ Worker takes a job through the same options', async () => {
    const r = client({ caFile: ca.certFile });
    await connectRedis(r, server.url);
    expect(await r.ping()).toBe('PONG');
    const prefix = testPrefix();
    const queue = new Queue(queueName('build'), { connection: r.duplicate(), prefix });
    // As the agent does: one connection of its own, which BullMQ duplicates for its blocking reads.
    const conn = client({ caFile: ca.certFile });
    (conn.options as { maxRetriesPerRequest: null }).maxRetriesPerRequest = null;
    await connectRedis(conn, server.url);
    const worker = new Worker(queueName('build'), async (job) => ({ ran: job.data.n as number }), { connection: conn, prefix });
    const errors: Error[] = [];
    worker.on('error', (err) => errors.push(err));
    try {
      await queue.add('run', { n: 7 }, { jobId: 'wj-1' });
      await expect.poll(() => queue.getJobState('wj-1'), { timeout: 10_000, interval: 50 }).toBe('completed');
      expect((await queue.getJob('wj-1'))!.returnvalue).toEqual({ ran: 7 });
      expect(errors).toEqual([]);
    } finally {
      await worker.close();
      await queue.close();
    }
  });

  test('a pin alone (the certificate\'s sha256, no CA) is enough; with the CA too, both must match', async () => {
    const pinned = client({ certSha256: certSha256(cert.pem) });
    await connectRedis(pinned, server.url);
    expect(await pinned.ping()).toBe('PONG');
    const both = client({ caFile: ca.certFile, certSha256: certSha256(cert.pem) });
    await connectRedis(both, server.url);
    expect(await both.ping()).toBe('PONG');
  });

  test('another CA: refused in one line naming redis.tls.caFile, and not retried', async () => {
    const { err, attempts, status } = await refusal(client({ caFile: otherCa.certFile }));
    expect(err.code).toBe('store-untrusted');
    expect(err.message).toMatch(new RegExp(`^Redis at rediss://127\\.0\\.0\\.1:${server.port}: its TLS certificate is not signed by redis\\.tls\\.caFile \\([A-Z_]+\\): refusing to connect$`));
    expect(attempts).toBe(0);
    expect(status).toBe('end');
  });

  test('no redis.tls: this machine\'s CAs, which do not know the test CA', async () => {
    const { err } = await refusal(client(undefined));
    expect(err.message).toMatch(/its TLS certificate is not signed by this machine's CAs \(set redis\.tls\.caFile or redis\.tls\.certSha256/);
  });

  test('a wrong pin: refused, saying which sha256 was expected and which Redis presented', async () => {
    const other = makeServerCert(null, ['IP:127.0.0.1']);
    const want = certSha256(other.pem);
    const { err, attempts } = await refusal(client({ certSha256: want }));
    expect(err.message).toBe(`Redis at rediss://127.0.0.1:${server.port}: its TLS certificate pin mismatch: redis.tls.certSha256 is ${want}, Redis presented ${certSha256(cert.pem)}: refusing to connect`);
    expect(attempts).toBe(0);
  });

  test('a certificate for another name: refused, naming the name that was checked', async () => {
    const named = await refusal(client({ caFile: ca.certFile, serverName: 'redis.example' }));
    expect(named.err.message).toMatch(/its TLS certificate does not name redis\.example \(redis\.tls\.serverName\) \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
    // A Redis whose certificate names only localhost, dialled at 127.0.0.1.
    const byName = makeServerCert(ca, ['DNS:localhost'], ca.dir);
    const other = await startLocalRedis({ tls: { certFile: byName.certFile, keyFile: byName.keyFile }, persistence: false });
    try {
      const byUrl = await refusal(client({ caFile: ca.certFile }, { url: other.url }), other.url);
      expect(byUrl.err.message).toMatch(/does not name 127\.0\.0\.1 \(the host in redis\.url; redis\.tls\.serverName may name another\) \(ERR_TLS_CERT_ALTNAME_INVALID\)/);
      // The name in the certificate, given as serverName, is accepted at that address.
      const ok = client({ caFile: ca.certFile, serverName: 'localhost' }, { url: other.url });
      await connectRedis(ok, other.url);
      expect(await ok.ping()).toBe('PONG');
      ok.disconnect();
    } finally {
      await other.dispose();
    }
  });

  test('a certificate changed under a connected client: its reconnects are refused with the reason, and go on (it was trusted before)', async () => {
    const pinned = client({ certSha256: certSha256(cert.pem) });
    await connectRedis(pinned, server.url);
    const errors: string[] = [];
    pinned.on('error', (err: Error) => errors.push(err.message));
    const admin = client({ caFile: ca.certFile });
    await connectRedis(admin, server.url);
    const swapped = makeServerCert(ca, ['IP:127.0.0.1'], ca.dir);
    await admin.call('CONFIG', 'SET', 'tls-cert-file', swapped.certFile, 'tls-key-file', swapped.keyFile);
    try {
      await admin.call('CLIENT', 'KILL', 'ID', String(await pinned.call('CLIENT', 'ID')));
      await expect.poll(() => errors.length, { timeout: 5000, interval: 50 }).toBeGreaterThanOrEqual(2);
      expect(errors[0]).toContain(`pin mismatch: redis.tls.certSha256 is ${certSha256(cert.pem)}, Redis presented ${certSha256(swapped.pem)}`);
      expect(pinned.status).not.toBe('end');
    } finally {
      await admin.call('CONFIG', 'SET', 'tls-cert-file', cert.certFile, 'tls-key-file', cert.keyFile);
    }
    // The certificate back: the same client is in again, by itself.
    await expect.poll(() => pinned.status, { timeout: 5000, interval: 50 }).toBe('ready');
    expect(await pinned.ping()).toBe('PONG');
  });

  test('plain redis:// against the TLS port: the reset is explained', async () => {
    const url = server.url.replace('rediss://', 'redis://');
    const { err } = await refusal(client(undefined, { url }), url);
    expect(err.code).toBe('store-unavailable');
    expect(err.message).toMatch(new RegExp(`^cannot reach Redis at redis://127\\.0\\.0\\.1:${server.port} \\(redis\\.url\\): .*ECONNRESET.*: if this Redis listens with TLS only, redis\\.url must be rediss://`));
  });

  test('rediss:// against a plain port (which waits for the hello\'s end): the handshake\'s timeout is explained', async () => {
    const url = redisUrl().replace('redis://', 'rediss://');
    const { err } = await refusal(client({ caFile: ca.certFile }, { url, connectTimeout: 1000 }), url);
    expect(err.message).toMatch(/^Redis at rediss:\/\/127\.0\.0\.1:\d+ did not answer the TLS handshake in 1 s: is the port in redis\.url its tls-port\? A plain port needs redis:\/\/ and no redis\.tls$/);
  });

  test('redis.passwordFile over TLS: logs in as the url\'s user; a wrong password says WRONGPASS and no secret', async () => {
    const url = server.url.replace('rediss://', `rediss://${user}@`);
    const r = client({ caFile: ca.certFile }, { url, passwordFile: join(dir, 'redis-password') });
    await connectRedis(r, url);
    expect(await r.call('ACL', 'WHOAMI')).toBe(user);
    writeFileSync(join(dir, 'wrong-password'), 'not-the-password-0123\n', { mode: 0o600 });
    const wrong = await refusal(client({ caFile: ca.certFile }, { url, passwordFile: join(dir, 'wrong-password') }), url);
    expect(wrong.err.message).toMatch(/^cannot reach Redis at rediss:\/\/\*\*\*@127\.0\.0\.1:\d+ \(redis\.url\): WRONGPASS/);
    // And no refusal above carries a password, the CA's key or the server's.
    for (const secret of [password, 'not-the-password-0123', readFileSync(ca.keyFile, 'utf8').split('\n')[1]!, readFileSync(cert.keyFile, 'utf8').split('\n')[1]!]) {
      expect(wrong.err.message).not.toContain(secret);
      expect(wrong.err.stack).not.toContain(secret);
    }
  });

  test('the control over TLS: every connection (records, queues, outbox thread, vetter) is up; another CA stops its start with the reason', async () => {
    const prefix = testPrefix();
    const base = writeTestConfig({ redisUrl: server.url.replace('rediss://', `rediss://${user}@`), prefix });
    const config = { ...base.config, redis: { ...base.config.redis, passwordFile: join(dir, 'redis-password'), tls: { caFile: ca.certFile } } };
    const admin = client({ caFile: ca.certFile });
    await connectRedis(admin, server.url);
    const control = await buildControl(config, readControlSecrets(config), pino({ level: 'silent' }));
    try {
      const ours = async () => String(await admin.call('CLIENT', 'LIST')).split('\n').filter((l) => l.includes(` user=${user} `)).length;
      // Records, queue reads, the outbox thread's three (made in the thread from redis.tls as data), the vetter's reader.
      await expect.poll(ours, { timeout: 10_000, interval: 100 }).toBeGreaterThanOrEqual(6);
      expect(await control.redis.call('ACL', 'WHOAMI')).toBe(user);
    } finally {
      await control.close();
    }
    const untrusted = { ...config, redis: { ...config.redis, tls: { caFile: otherCa.certFile } } };
    const err = await buildControl(untrusted, readControlSecrets(untrusted), pino({ level: 'silent' })).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/^Redis at rediss:\/\/127\.0\.0\.1:\d+: its TLS certificate is not signed by redis\.tls\.caFile/);
    expect(err?.message).not.toContain(password);
  });
  describe('the CLI (dist/), with redis.tls in its config', () => {
    const hangar = (args: string[]) => execa('node', ['dist/main/cli.js', ...args], { reject: false, timeout: 20_000 });
    /** A control config whose redis section is `redis` (a YAML flow mapping). */
    function configWith(redis: string): { file: string; dir: string } {
      const base = writeTestConfig({ redisUrl: server.url, prefix: testPrefix() });
      const yaml = readFileSync(base.file, 'utf8').replace(/^redis: .*$/m, `redis: ${redis}`);
      writeFileSync(base.file, yaml);
      return base;
    }

    test('config check names an unreadable redis.tls.caFile, and a tls section on redis://', async () => {
      const missing = configWith(`{url: "${server.url}", tls: {caFile: /nonexistent/ca.pem}}`);
      const r = await hangar(['config', 'check', missing.file]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toMatch(/redis\.tls\.caFile.*: cannot read \/nonexistent\/ca\.pem: ENOENT/);
      const plain = configWith(`{url: "redis://127.0.0.1:6379", tls: {caFile: ${ca.certFile}}}`);
      const p = await hangar(['config', 'check', plain.file]);
      expect(p.exitCode).toBe(1);
      expect(p.stderr).toMatch(/redis\.tls.*: redis\.url redis:\/\/127\.0\.0\.1:6379 is plain redis:\/\//);
    });

    test('hangar control with another CA: exits 1 with the reason in one line', async () => {
      const cfg = configWith(`{url: "${server.url}", tls: {caFile: ${otherCa.certFile}}}`);
      const r = await hangar(['control', '--config', cfg.file]);
      expect(r.exitCode).toBe(1);
      expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^hangar: Redis at rediss:\/\/127\.0\.0\.1:\d+: its TLS certificate is not signed by redis\.tls\.caFile \([A-Z_]+\): refusing to connect$/)]);
    });

    test('hangar host add over TLS prints the agent\'s redis.tls, and that snippet logs in as the host\'s user', async () => {
      const pin = certSha256(cert.pem);
      const cfg = configWith(`{url: "${server.url}", tls: {caFile: ${ca.certFile}, certSha256: "${pin}"}}`);
      const name = `tls-${randomUUID().slice(0, 6)}`;
      const added = await hangar(['host', 'add', name, '--role', 'build', '--pools', 'build', '--config', cfg.file, '--out', join(cfg.dir, 'creds')]);
      expect(added.exitCode, added.stderr).toBe(0);
      expect(added.stdout).toContain(`  tls:\n    caFile: ${ca.certFile}  # copy this CA there too (it is no secret)\n    certSha256: ${pin}\n`);
      const url = /^ {2}url: (\S+)$/m.exec(added.stdout)![1]!;
      const passwordFile = /^ {2}passwordFile: (\S+)$/m.exec(added.stdout)![1]!;
      const r = client({ caFile: ca.certFile, certSha256: pin }, { url, passwordFile });
      await connectRedis(r, url);
      expect(await r.call('ACL', 'WHOAMI')).toBe(`hangar-host-${name}`);
      const removed = await hangar(['host', 'remove', name, '--config', cfg.file]);
      expect(removed.exitCode, removed.stderr).toBe(0);
    });
  });
});
