import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { tokenSha256 } from '../../src/jit/host-auth.js';
import { keys } from '../../src/queue/keys.js';
import { startTestControl, writeTestConfig, type TestControl } from '../helpers/control.js';
import { enrolHost, hangar } from '../helpers/host-creds.js';
import { dropPrefix, dumpPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * `hangar host remove` revokes the host's token in Redis: a real control (its hosts[] unchanged,
 * not restarted) refuses the host's very next request, heartbeat, mint or report alike.
 */

const beat = { slots: 1, busy: 0, vms: [], draining: false };
const call = (control: TestControl, token: string, method: string, path: string, body: unknown) =>
  fetch(`${control.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
    .then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, unknown> }));
const heartbeat = (c: TestControl, token: string) => call(c, token, 'PUT', '/api/v1/hosts/self/heartbeat', beat);
const mint = (c: TestControl, token: string) => call(c, token, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: 7 });
const report = (c: TestControl, token: string) => call(c, token, 'POST', '/api/v1/jobs/7/report', { kind: 'failed', reason: 'gave up', attempts: 1 });
const gate = (c: TestControl, token: string) => call(c, token, 'POST', '/api/v1/job-started', { runnerName: 'hangar-x-7-1', hints: {} });

describe('a removed host is refused from its next request', () => {
  const name = `rv-${randomUUID().slice(0, 6)}`;
  const prefix = testPrefix();
  const admin = new Redis(redisUrl());
  const lines: string[] = [];
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
  let base: ReturnType<typeof writeTestConfig>;
  let control: TestControl;
  let token: string;
  let removed: Awaited<ReturnType<typeof hangar>>;

  /** `hangar host add` into its own folder; the token it wrote. */
  const enrol = async (out: string): Promise<string> =>
    (await enrolHost({ name, role: 'build', pools: ['build'], configFile: base.file, out: join(base.dir, out) })).token();
  /** The control's config with the host's entry for this token, as the operator pastes it from `host add`'s output. */
  const withHost = (t: string) => ({ redisUrl: redisUrl(), prefix, hosts: [{ name, role: 'build' as const, pools: ['build'], token: t }] });

  beforeAll(async () => {
    base = writeTestConfig({ redisUrl: redisUrl(), prefix });
    token = await enrol('first');
    control = await startTestControl({ ...withHost(token), logger });
  });
  afterAll(async () => {
    await control?.close();
    await admin.call('ACL', 'DELUSER', `hangar-host-${name}`);
    await dropPrefix(redisUrl(), prefix);
    admin.disconnect();
  });

  test('before: the host heartbeats (200)', async () => {
    expect(await heartbeat(control, token)).toEqual({ status: 200, body: { drain: false } });
  });

  test('hangar host remove revokes its token in Redis and says so, with no secret', async () => {
    removed = await hangar(['host', 'remove', name, '--config', writeTestConfig(withHost(token)).file]);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect(removed.stdout).toContain(`revoked: host ${name}'s token`);
    expect(removed.stdout).toContain('403 host-revoked');
    expect(removed.stdout).toContain(`deleted the Redis ACL user hangar-host-${name}`);
    for (const out of [removed.stdout, removed.stderr]) expect(out).not.toContain(token);
    const held = JSON.parse((await admin.hget(keys(prefix).hostsRevoked, tokenSha256(token)))!) as Record<string, unknown>;
    expect(held).toEqual({ host: name, at: expect.any(Number) });
    expect(await dumpPrefix(redisUrl(), prefix)).not.toContain(token);
  });

  test('the very next heartbeat, a mint, a job report and a gate call answer 403 host-revoked, though hosts[] still has it', async () => {
    for (const r of [await heartbeat(control, token), await mint(control, token), await report(control, token), await gate(control, token)]) {
      expect(r).toMatchObject({ status: 403, body: { error: 'host-revoked' } });
    }
    // Refused before anything was done: no heartbeat written (remove deleted the last one), no job record touched.
    expect(await admin.exists(keys(prefix).host(name))).toBe(0);
    expect(await admin.exists(keys(prefix).job(7))).toBe(0);
  });

  test('the control\'s log names the host and neither the token nor its hash', () => {
    const refusals = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'refused a request with a revoked host token');
    expect(refusals).toHaveLength(4);
    expect(refusals[0]).toMatchObject({ level: 40, host: name, method: 'PUT', route: '/api/v1/hosts/self/heartbeat' });
    for (const secret of [token, tokenSha256(token)]) expect(lines.join('\n')).not.toContain(secret);
  });

  test('the mint counter counts the refusal as revoked', async () => {
    const metrics = await fetch(`${control.url}/metrics`).then((r) => r.text());
    expect(metrics).toMatch(/hangar_jit_requests_total\{result="revoked",reason=""\} 1/);
  });

  test('removing it again: already revoked, exit 0', async () => {
    const again = await hangar(['host', 'remove', name, '--config', writeTestConfig(withHost(token)).file]);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toContain(`already revoked: host ${name}'s token`);
    expect(again.stdout).toContain('already removed');
  });

  test('enrolled again with a new token, the host works (200); its old token stays refused after a restart with it in hosts[]', async () => {
    const fresh = await enrol('second');
    expect(fresh).not.toBe(token);
    await control.close();
    control = await startTestControl({ ...withHost(fresh), logger });
    expect(await heartbeat(control, fresh)).toEqual({ status: 200, body: { drain: false } });
    // The old token is in no hosts entry now: unknown.
    expect((await heartbeat(control, token)).status).toBe(401);
    await control.close();
    control = await startTestControl({ ...withHost(token), logger });
    expect(await heartbeat(control, token)).toMatchObject({ status: 403, body: { error: 'host-revoked' } });
  });

  test('a config with no hosts entry for the name: says so, and removes only the Redis user', async () => {
    const r = await hangar(['host', 'remove', name, '--config', base.file]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain(`the config has no hosts entry "${name}": no token to revoke`);
    expect(r.stdout).toContain(`deleted the Redis ACL user hangar-host-${name}`);
  });
});
