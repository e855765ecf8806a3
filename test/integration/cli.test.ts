import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
    // A key that is missing is placed on the line of its section, when the file has that.
    for (const at of ['github.appId (line 1)', 'github.webhookSecretFile (line 1)', 'policy', 'pools.0.name (line 2)', 'pools.0.labels (line 2)', 'redis.port (line 3)']) {
      expect(r.stderr).toContain(`- ${at}: `);
    }
  });

  test('config check: unreadable secret files are named', async () => {
    const bad = join(cfg.dir, 'missing-secret.yaml');
    writeFileSync(bad, `github: {appId: 1, privateKeyFile: ${cfg.dir}/nope.pem, webhookSecretFile: ${cfg.dir}/nope}\npolicy: {repositories: [a/*]}\ndashboard: {enabled: false}\npools: [{name: b, labels: [self-hosted]}]\n`);
    const r = await hangar(['config', 'check', bad]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('github.webhookSecretFile (line 1): cannot read');
    expect(r.stderr).toContain('github.privateKeyFile (line 1): cannot read');
  });

  test('config check: seven mistakes, all seven in one run, each with its path and line', async () => {
    const token = 'a-host-token-that-is-long-enough';
    writeFileSync(join(cfg.dir, 'token'), token);
    mkdirSync(join(cfg.dir, 'image'), { recursive: true });
    const file = join(cfg.dir, 'seven.yaml');
    writeFileSync(file, `github:
  appId: 1
  privateKeyFile: ${cfg.dir}/app.pem
  webhookSecretFile: ${cfg.dir}/no-such-secret
policy: {repositories: [acme/*]}
redis: {url: "redis://127.0.0.1:6379", prefx: ci}
pools:
  - {name: build, labels: [self-hosted, build]}
  - {name: deploy, labels: [self-hosted, deploy], deploy: {repositories: [acme/site], branches: [main]}}
hosts:
  - {name: minipc, role: build, pools: [biuld, deploy], tokenSha256: ${createHash('sha256').update(token).digest('hex')}}
agent:
  host: minipc
  role: build
  slots: two
  controlUrl: http://127.0.0.1:8080
  tokenFile: ${cfg.dir}/token
  vm: {image: ${cfg.dir}/image}
  caps: {cpuQuotaPercent: 100, memoryMaxMiB: 8192}
dashboard: {enabled: false}
log: {level: info
`);
    const r = await hangar(['config', 'check', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines[0]).toBe(`hangar: ${file}: 7 problem(s)`);
    expect(lines.slice(1)).toEqual([
      // Bad YAML (the unclosed flow map at the end): what parsed before it is still checked.
      '  - (file): YAML BAD_INDENT at line 22, column 1: Flow map in block collection must be sufficiently indented and end with a }',
      // A missing secret file, though the file has other mistakes.
      `  - github.webhookSecretFile (line 4): cannot read ${cfg.dir}/no-such-secret: ENOENT`,
      // A typo'd key.
      '  - redis.prefx (line 6): unknown key "prefx" (did you mean "prefix"?)',
      // An unknown pool, and a deploy pool on a build host.
      '  - hosts.0.pools.0 (line 11): no pool named "biuld" (did you mean "build"?)',
      '  - hosts.0.pools.1 (line 11): "deploy" is a deploy pool: only a host with role deploy may serve it',
      // A key of the old layout: the host is described once, in hosts[].
      '  - agent.role (line 14): moved to hosts[] entry "minipc" (hosts.0): a host is described once',
      // A wrong type.
      '  - agent.slots (line 15): Invalid input: expected number, received string',
    ]);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  test('config check: a build box\'s own file (pools, its hosts[] entry, agent) is an agent\'s; a token that is not its entry\'s is named', async () => {
    const token = 'another-host-token-long-enough';
    writeFileSync(join(cfg.dir, 'box-token'), `${token}\n`);
    mkdirSync(join(cfg.dir, 'image'), { recursive: true });
    const yaml = (sha: string) => `pools: [{name: build, labels: [self-hosted, build]}]
hosts: [{name: box, role: build, pools: [build], tokenSha256: ${sha}}]
agent: {host: box, slots: 2, controlUrl: "http://10.0.0.2:8080", tokenFile: ${cfg.dir}/box-token, vm: {image: ${cfg.dir}/image}, caps: {cpuQuotaPercent: 100, memoryMaxMiB: 8192}}
`;
    const file = join(cfg.dir, 'box.yaml');
    writeFileSync(file, yaml(createHash('sha256').update(token).digest('hex')));
    const ok = await hangar(['config', 'check', file]);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toBe(`${file}: ok: agent box (build, 2 slots); 1 pool(s): build`);
    writeFileSync(file, yaml('b'.repeat(64)));
    const bad = await hangar(['config', 'check', file]);
    expect(bad.exitCode).toBe(1);
    expect(bad.stderr).toContain(`- agent.tokenFile (line 3): the token in ${cfg.dir}/box-token is not the one hosts.0.tokenSha256 is the sha256 of`);
    expect(bad.stderr).not.toContain(token);
  });

  test('host token: an existing file is never overwritten, and says so in one line', async () => {
    const file = join(cfg.dir, 'existing-token');
    writeFileSync(file, 'the-token-a-host-uses-today\n');
    const r = await hangar(['host', 'token', file]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe(`hangar: ${file} already exists: hangar host token never overwrites one (a host may be using it); remove it first, or write the new token elsewhere`);
    expect(readFileSync(file, 'utf8')).toBe('the-token-a-host-uses-today\n');
    const fresh = await hangar(['host', 'token', join(cfg.dir, 'fresh-token')]);
    expect(fresh.exitCode).toBe(0);
    expect(fresh.stdout).toBe(`${createHash('sha256').update(readFileSync(join(cfg.dir, 'fresh-token'), 'utf8').trim()).digest('hex')}`);
  });

  test('control: Redis unreachable is one line naming the URL, never its password', async () => {
    const down = writeTestConfig({ redisUrl: 'redis://:hunter2-redis-pass@127.0.0.1:1', prefix });
    const r = await hangar(['control', '--config', down.file]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^hangar: cannot reach Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1 \(redis\.url\): .*ECONNREFUSED.*$/);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(`${r.stdout}${r.stderr}`).not.toContain('hunter2');
  });

  test('an unexpected error keeps its stack', async () => {
    // A directory where the token file would go: not a mistake Hangar names, so it stays loud.
    const r = await hangar(['host', 'token', join(cfg.dir, 'no-such-dir', 'token')]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('ENOENT');
    expect(r.stderr).toMatch(/\n\s+at /);
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
        const m = /"webhookUrl":"(http:\/\/[^"]+)".*"msg":"control listening"/.exec(out);
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

  test('control: a key file readable by others is warned about once at start (file, chmod 600), and the control starts anyway', async () => {
    const info = writeTestConfig({ redisUrl: redisUrl(), prefix, logLevel: 'warn' });
    chmodSync(join(info.dir, 'app.pem'), 0o644);
    const proc = execa('node', ['dist/main/cli.js', 'control', '--config', info.file], { reject: false, env: { HANGAR_CONTROL_PORT: '0' } });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no warning: ${out}`)), 15_000);
      const seen = (b: Buffer) => {
        out += b.toString();
        if (out.includes('secret file readable by group or others')) {
          clearTimeout(t);
          resolve();
        }
      };
      proc.stdout!.on('data', seen);
      proc.stderr!.on('data', seen);
    });
    // Started, not stopped by the warning: it drains and exits 0 on SIGTERM.
    await new Promise((r) => setTimeout(r, 1000));
    expect(proc.exitCode).toBeNull();
    proc.kill('SIGTERM');
    const done = await proc;
    expect(done.exitCode).toBe(0);
    const warnings = `${done.stdout}`.split('\n').filter((l) => l.includes('secret file readable')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, key: 'github.privateKeyFile', file: join(info.dir, 'app.pem'), mode: '0644', fix: `chmod 600 ${join(info.dir, 'app.pem')}` });
    expect(`${done.stdout}${done.stderr}`).not.toContain('PRIVATE KEY');
  });
});

test('control: SIGTERM while it is still starting (the moment its first line shows) waits for the start, then closes it and exits 0', async () => {
  const info = writeTestConfig({ redisUrl: redisUrl(), prefix: testPrefix(), logLevel: 'info' });
  chmodSync(join(info.dir, 'app.pem'), 0o644);
  const proc = execa('node', ['dist/main/cli.js', 'control', '--config', info.file], { reject: false, env: { HANGAR_CONTROL_PORT: '0' } });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no first line: ${out}`)), 15_000);
    proc.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      clearTimeout(t);
      resolve();
    });
  });
  // Its first line is the start-up warning, logged before it opens anything.
  expect(out).toContain('secret file readable by group or others');
  expect(out).not.toContain('control started');
  proc.kill('SIGTERM');
  const done = await proc;
  expect(done.exitCode, `${done.stdout}${done.stderr}`).toBe(0);
  expect(done.signal).toBeUndefined();
  const lines = `${done.stdout}`.split('\n').filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string }).msg);
  expect(lines).toContain('shutting down');
});

test('hangar --version: the package version and the commit dist/ was built from (no git asked at run time)', async () => {
  const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
  const { commit } = JSON.parse(readFileSync('dist/build-info.json', 'utf8')) as { commit: string | null };
  // PATH without git: the answer comes from the build, not from a git run now.
  const r = await execa(process.execPath, ['dist/main/cli.js', '--version'], { reject: false, env: { PATH: '/nonexistent' }, timeout: 20_000 });
  expect(r.exitCode).toBe(0);
  expect(r.stdout).toBe(commit ? `${version} (${commit})` : version);
  if (commit) expect(commit).toMatch(/^[0-9a-f]{12}(-dirty)?$/);
});
