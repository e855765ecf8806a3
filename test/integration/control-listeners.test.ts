import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ConfigError } from '../../src/domain/errors.js';
import { configCheck } from '../../src/main/config-check.js';
import { pino } from 'pino';
import { ControlError, ControlUntrustedError, createControlClient } from '../../src/agent/control-client.js';
import { certSha256 } from '../../src/config/tls-files.js';
import { startTestControl, writeTestConfig, type TestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';
import { makeCa, makeServerCert, type TestCa, type TestCert } from '../helpers/tls.js';

/**
 * The control's two listeners and the agent's trust in the private one: the public listener
 * serves webhooks and nothing of the agents' API; the private one serves it, over TLS with a
 * certificate the agent checks (its CA or its pin) before the host token leaves the agent.
 */
const BUILD = 'build-host-token-0123456789abcdef';
const hosts = [{ name: 'minipc', role: 'build' as const, pools: ['build'], token: BUILD }];
const beat = { slots: 2, busy: 0, vms: [], draining: false };
const used: string[] = [];
const prefix = () => {
  const p = testPrefix();
  used.push(p);
  return p;
};
afterAll(async () => {
  for (const p of used) await dropPrefix(redisUrl(), p);
});

describe('two listeners (push mode)', () => {
  let c: TestControl;
  beforeAll(async () => {
    c = await startTestControl({ redisUrl: redisUrl(), prefix: prefix(), hosts });
  });
  afterAll(async () => c?.close());

  test('the public listener answers 404 for the agents\' API and /metrics, serves webhooks and a bare /healthz', async () => {
    expect(c.webhookUrl).not.toBeNull();
    expect(c.webhookUrl).not.toBe(c.url);
    const auth = { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' };
    const on = (path: string, init: RequestInit = {}) => fetch(`${c.webhookUrl}${path}`, init).then((r) => r.status);
    expect(await on('/api/v1/jit', { method: 'POST', headers: auth, body: JSON.stringify({ pool: 'build', workflowJobId: 1 }) })).toBe(404);
    expect(await on('/api/v1/job-started', { method: 'POST', headers: auth, body: JSON.stringify({ runnerName: 'r', hints: {} }) })).toBe(404);
    expect(await on('/api/v1/hosts/self/heartbeat', { method: 'PUT', headers: auth, body: JSON.stringify(beat) })).toBe(404);
    expect(await on('/api/v1/jobs/1/report', { method: 'POST', headers: auth, body: '{}' })).toBe(404);
    expect(await on('/metrics')).toBe(404);
    // Served: a delivery without a signature is the intake's 401, not a 404.
    expect(await on('/webhooks/github', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).toBe(401);
    const health = await fetch(`${c.webhookUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ ok: true });
  });

  test('the private listener serves the agents\' API, /healthz and /metrics, and no webhooks', async () => {
    const client = createControlClient(c.url, BUILD);
    expect(await client.heartbeat(beat)).toEqual({ drain: false });
    expect((await fetch(`${c.url}/metrics`)).status).toBe(200);
    const health = await (await fetch(`${c.url}/healthz`)).json();
    expect(health).toMatchObject({ ok: true, redis: 'up' });
    expect((await fetch(`${c.url}/webhooks/github`, { method: 'POST', body: '{}' })).status).toBe(404);
  });
});

test('pull mode opens no public listener', async () => {
  const c = await startTestControl({ redisUrl: redisUrl(), prefix: prefix(), hosts, intake: '{mode: pull, pullIntervalSeconds: 60}' });
  try {
    expect(c.webhookUrl).toBeNull();
    expect(c.webhooks).toBeNull();
    expect((await fetch(`${c.url}/metrics`)).status).toBe(200);
  } finally {
    await c.close();
  }
});

describe('TLS on the private listener', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let cert: TestCert;
  let c: TestControl;
  let plain: TestControl;
  let requests = 0;
  const warnings: string[] = [];
  beforeAll(async () => {
    ca = makeCa();
    otherCa = makeCa('Another CA');
    cert = makeServerCert(ca, ['IP:127.0.0.1']);
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    c = await startTestControl({
      redisUrl: redisUrl(), prefix: prefix(), hosts, logger,
      privateListener: `{listen: "127.0.0.1:0", tls: {certFile: ${cert.certFile}, keyFile: ${cert.keyFile}}}`,
    });
    c.app.server.on('request', () => void requests++);
    plain = await startTestControl({ redisUrl: redisUrl(), prefix: prefix(), hosts });
  }, 30_000);
  afterAll(async () => Promise.all([c?.close(), plain?.close()]));

  test('the listener is https://; an agent with the right CA is served', async () => {
    expect(c.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const client = createControlClient(c.url, BUILD, { ca: ca.pem });
    expect(await client.heartbeat(beat)).toEqual({ drain: false });
    expect((await client.requestRunner('deploy', 1)).kind).toBe('refused');
    expect(requests).toBeGreaterThanOrEqual(2);
  });

  test('the right pin is served, with or without the CA', async () => {
    const pin = certSha256(cert.pem);
    expect(await createControlClient(c.url, BUILD, { certSha256: pin }).heartbeat(beat)).toEqual({ drain: false });
    expect(await createControlClient(c.url, BUILD, { ca: ca.pem, certSha256: pin }).heartbeat(beat)).toEqual({ drain: false });
  });

  test('a wrong CA: refused with the reason, not retried, and no request reaches the control', async () => {
    const before = requests;
    const client = createControlClient(c.url, BUILD, { ca: otherCa.pem });
    const err = await client.heartbeat(beat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlUntrustedError);
    expect((err as ControlError).retryable).toBe(false);
    expect((err as Error).message).toMatch(/not signed by agent\.controlCaFile/);
    expect((err as Error).message).not.toContain(BUILD);
    await expect(client.requestRunner('build', 2)).rejects.toBeInstanceOf(ControlUntrustedError);
    await expect(client.report(2, { outcome: 'succeeded' } as never)).rejects.toBeInstanceOf(ControlUntrustedError);
    // The gate fails closed at once with the reason, rather than retrying until its deadline.
    const at = Date.now();
    const gate = await client.jobStarted('hangar-r', {} as never, 10_000);
    expect(Date.now() - at).toBeLessThan(2_000);
    expect(gate).toMatchObject({ decision: 'deny', reason: 'control-untrusted' });
    expect(gate.decision === 'deny' && gate.message).toMatch(/not signed by agent\.controlCaFile.*fail closed/);
    expect(requests).toBe(before);
  });

  test('a wrong pin: "pin mismatch", whatever the CA says', async () => {
    const before = requests;
    const wrong = certSha256(makeServerCert(ca).pem);
    for (const trust of [{ certSha256: wrong }, { ca: ca.pem, certSha256: wrong }]) {
      const err = await createControlClient(c.url, BUILD, trust).heartbeat(beat).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ControlUntrustedError);
      expect((err as Error).message).toMatch(/pin mismatch/);
    }
    expect(requests).toBe(before);
  });

  test('no CA and no pin: the system\'s CAs, which do not sign a private certificate', async () => {
    const err = await createControlClient(c.url, BUILD).heartbeat(beat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlUntrustedError);
    expect((err as Error).message).toMatch(/not signed by this machine's CAs/);
  });

  test('a certificate for another name: refused, naming agent.controlUrl', async () => {
    const other = makeServerCert(ca, ['IP:127.0.0.2']);
    const c2 = await startTestControl({
      redisUrl: redisUrl(), prefix: prefix(), hosts,
      privateListener: `{listen: "127.0.0.1:0", tls: {certFile: ${other.certFile}, keyFile: ${other.keyFile}}}`,
    });
    try {
      const err = await createControlClient(c2.url, BUILD, { ca: ca.pem }).heartbeat(beat).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ControlUntrustedError);
      expect((err as Error).message).toMatch(/does not name the host in agent\.controlUrl/);
    } finally {
      await c2.close();
    }
  });

  test('plain http to the TLS listener fails clearly (and the control logs the handshake it could not make)', async () => {
    const err = await createControlClient(c.url.replace('https:', 'http:'), BUILD).heartbeat(beat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlError);
    expect((err as Error).message).toMatch(/agent\.controlUrl must be https:\/\//);
    await expect.poll(() => warnings.join('')).toMatch(/TLS handshake failed on the private listener/);
  });

  test('https to a plain listener: "does not speak TLS"', async () => {
    const err = await createControlClient(plain.url.replace('http:', 'https:'), BUILD, { ca: ca.pem }).heartbeat(beat).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ControlUntrustedError);
    expect((err as Error).message).toMatch(/does not speak TLS/);
  });

  test('a CA or a pin with an http:// controlUrl is refused before any request', () => {
    expect(() => createControlClient(plain.url, BUILD, { ca: ca.pem })).toThrow(/plain http:\/\//);
  });
});

describe('hangar config check', () => {
  /** The test config as an operator's file, with its private listener replaced. */
  const problemsOf = async (privateListener: string, o: { dashboard?: string } = {}) => {
    const { file } = writeTestConfig({ redisUrl: redisUrl(), prefix: 'unused', ...o });
    writeFileSync(file, readFileSync(file, 'utf8').replace('private: {listen: "127.0.0.1:0"}', `private: ${privateListener}`));
    const err = await configCheck(file).then(() => null, (e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map((p) => `${p.path}: ${p.message}`);
  };

  test('names control.private.tls for a non-loopback listener without TLS', async () => {
    expect(await problemsOf('{listen: "0.0.0.0:8443"}')).toEqual([expect.stringMatching(/^control\.private\.tls: required: control\.private\.listen 0\.0\.0\.0:8443 is not a loopback address/)]);
  });

  test('names each missing TLS file', async () => {
    const problems = await problemsOf('{listen: "0.0.0.0:8443", tls: {certFile: /nonexistent/control.pem, keyFile: /nonexistent/control.key}}');
    expect(problems).toEqual([
      expect.stringMatching(/^control\.private\.tls\.certFile: cannot read \/nonexistent\/control\.pem: ENOENT/),
      expect.stringMatching(/^control\.private\.tls\.keyFile: cannot read \/nonexistent\/control\.key: ENOENT/),
    ]);
  });

  test('names a key that is not the certificate\'s', async () => {
    const a = makeServerCert(null);
    const b = makeServerCert(null);
    expect(await problemsOf(`{listen: "0.0.0.0:8443", tls: {certFile: ${a.certFile}, keyFile: ${b.keyFile}}}`)).toEqual([expect.stringMatching(/^control\.private\.tls\.keyFile: .* is not the key of the certificate/)]);
  });

  test('names control.private.listen on the dashboard\'s port', async () => {
    expect(await problemsOf('{listen: "127.0.0.1:8081"}', { dashboard: '{listen: "127.0.0.1:8081"}' })).toEqual([expect.stringMatching(/^control\.private\.listen: port 8081 is the dashboard's \(dashboard\.listen\)/)]);
  });
});
