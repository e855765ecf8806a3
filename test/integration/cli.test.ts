import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TEST_SECRET, writeTestConfig } from '../helpers/control.js';
import { delivery, jobPayload } from '../helpers/payloads.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/** The real `hangar` binary (dist/, built by `npm test`), as an operator runs it. */
const hangar = (args: string[], env: Record<string, string> = {}) =>
  execa('node', ['dist/main/cli.js', ...args], { reject: false, env, timeout: 20_000 });

describe('hangar CLI', () => {
  let prefix: string;
  let cfg: ReturnType<typeof writeTestConfig>;
  beforeAll(() => {
    prefix = testPrefix();
    cfg = writeTestConfig({ redisUrl: redisUrl(), prefix });
  });
  afterAll(() => dropPrefix(redisUrl(), prefix));

  test('config check: ok for a good config', async () => {
    const r = await hangar(['config', 'check', cfg.file]);
    expect(r.stderr).toBe('');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/ok: control; 2 pool\(s\): build, deploy \(deploy\)/);
  });

  test('config check: a broken config exits non-zero listing every problem with its path', async () => {
    const bad = join(cfg.dir, 'bad.yaml');
    writeFileSync(bad, 'github: {appId: -1, privateKeyFile: k}\npools: [{name: X, labels: [a]}]\nredis: {port: 1}\n');
    const r = await hangar(['config', 'check', bad]);
    expect(r.exitCode).toBe(1);
    for (const path of ['github.appId', 'github.webhookSecretFile', 'policy', 'pools.0.name', 'pools.0.labels', 'redis.port']) {
      expect(r.stderr).toContain(`- ${path}:`);
    }
  });

  test('config check: unreadable secret files are named', async () => {
    const bad = join(cfg.dir, 'missing-secret.yaml');
    writeFileSync(bad, `github: {appId: 1, privateKeyFile: ${cfg.dir}/nope.pem, webhookSecretFile: ${cfg.dir}/nope}\npolicy: {repositories: [a/*]}\npools: [{name: b, labels: [self-hosted]}]\n`);
    const r = await hangar(['config', 'check', bad]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('github.webhookSecretFile: cannot read');
    expect(r.stderr).toContain('github.privateKeyFile: cannot read');
  });

  test.each([
    [jobPayload(), { kind: 'accept', pool: 'build' }],
    [jobPayload({ visibility: 'public' }), { kind: 'reject', reason: 'public-repo' }],
    [jobPayload({ labels: ['self-hosted', 'deploy'], repo: 'acme/site', branch: 'wip' }), { kind: 'reject', reason: 'deploy-not-allowed' }],
    [jobPayload({ labels: ['ubuntu-latest'] }), { kind: 'ignore' }],
  ])('policy explain --json prints exactly the decision (%#)', async (payload, want) => {
    const file = join(cfg.dir, `payload-${Math.random()}.json`);
    writeFileSync(file, JSON.stringify(payload));
    const r = await hangar(['policy', 'explain', file, '--config', cfg.file, '--json']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe(JSON.stringify(want));
    const human = await hangar(['policy', 'explain', file, '--config', cfg.file]);
    expect(human.stdout).toMatch(/decision: (accept|reject|ignore)/);
  });

  test('policy explain names the bad field of a malformed payload', async () => {
    const file = join(cfg.dir, 'bad-payload.json');
    const p = jobPayload();
    delete p.workflow_job.labels;
    writeFileSync(file, JSON.stringify(p));
    const r = await hangar(['policy', 'explain', file, '--config', cfg.file, '--json']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('workflow_job.labels');
  });

  test('control: starts, takes a signed delivery, drains on SIGTERM; the secret is never logged', async () => {
    const info = writeTestConfig({ redisUrl: redisUrl(), prefix, logLevel: 'info' });
    const proc = execa('node', ['dist/main/cli.js', 'control', '--config', info.file], { reject: false, env: { HANGAR_CONTROL_PORT: '0' } });
    let out = '';
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`control did not start: ${out}`)), 15_000);
      proc.stderr!.on("data", (b: Buffer) => (out += b.toString()));
      proc.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        const m = /"url":"(http:\/\/[^"]+)".*"msg":"control listening"/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
    });
    const d = delivery(TEST_SECRET, jobPayload({ id: 5150 }));
    const res = await fetch(`${url}/webhooks/github`, { method: 'POST', headers: d.headers, body: d.body });
    expect(res.status).toBe(202);
    const bad = await fetch(`${url}/webhooks/github`, { method: 'POST', headers: { ...d.headers, 'x-hub-signature-256': 'sha256=' + '0'.repeat(64) }, body: d.body });
    expect(bad.status).toBe(401);
    proc.kill('SIGTERM');
    const done = await proc;
    expect(done.exitCode).toBe(0);
    const logs = `${done.stdout}${done.stderr}`;
    expect(logs).toContain('workflow job decided');
    expect(logs).toContain('shutting down');
    expect(logs).not.toContain(TEST_SECRET);
    expect(logs).not.toContain(d.headers['x-hub-signature-256']!.slice(7));
  });
});
