import { createHash, generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { freePort, startLocalRedis, type LocalRedis } from '../../src/main/local-redis.js';
import { runDoctor, type DoctorOptions, type DoctorReport } from '../../src/main/doctor.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, type TestControl } from '../helpers/control.js';
import { startFakeDns, type FakeDns } from '../helpers/fake-dns.js';
import { makeCa, makeServerCert, type TestCa } from '../helpers/tls.js';
import { testPrefix } from '../helpers/redis.js';
import { pino } from 'pino';

/**
 * `hangar doctor` against a healthy setup made of real parts — a redis-server of the test's own
 * (so its settings can be broken with CONFIG SET), `hangar sim` in-process as GitHub, an
 * in-process control behind TLS, a fake DNS upstream on loopback, an image folder with its
 * manifest — then each prerequisite broken in turn. What this machine cannot safely have broken
 * (KVM, cgroups, nft, systemd, ip_forward) is reached through the paths and binaries the checks
 * read (DoctorOptions.paths, qemuBinary, nftBinary): a test's own files stand in for /dev/kvm,
 * /sys/fs/cgroup and /proc/sys, never a faked result. accel is tcg, so no QEMU boot happens here
 * (probe boots run only under flock /tmp/hangar-agent.lock).
 */

const TOKEN = 'doctor-host-token-0123456789abcdef';
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

let redis: LocalRedis;
let sim: Sim;
let simUrl: string;
let control: TestControl;
let dns: FakeDns;
let ca: TestCa;
let otherCa: TestCa;
let dir: string;
let prefix: string;
let saveConfig: string;

/** Files the checks read as /dev/kvm, /sys/fs/cgroup, /run/systemd/system and /proc/sys/net/ipv4/ip_forward. */
let paths: NonNullable<DoctorOptions['paths']>;

interface Knobs {
  redisUrl?: string;
  controlUrl?: string;
  controlCaFile?: string;
  privateKeyFile?: string;
  image?: string;
  upstream?: string;
  accel?: string;
  pools?: string;
  extra?: string;
  tokenFile?: string;
}

/** One file with both sections (a control and its agent on one box), every value a knob a row can turn. */
function writeConfig(k: Knobs = {}, name = 'hangar.yaml'): string {
  const tokenFile = k.tokenFile ?? join(dir, 'host.token');
  const yaml = `
github:
  apiUrl: ${simUrl}
  appId: 7
  privateKeyFile: ${k.privateKeyFile ?? join(dir, 'app.pem')}
  webhookSecretFile: ${join(dir, 'webhook.secret')}
policy: {repositories: ["acme/*"]}
control: {host: 127.0.0.1, port: 0, private: {listen: "127.0.0.1:0"}}
reconcile: {enabled: false}
dashboard: {enabled: false}
redis: {url: "${k.redisUrl ?? redis.url}", prefix: ${prefix}}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
  - {name: other, labels: [self-hosted, linux, x64, other]}
hosts:
  - {name: box1, role: build, pools: ${k.pools ?? '[build]'}, tokenSha256: ${sha(readFileSync(tokenFile, 'utf8').trim())}}
agent:
  host: box1
  slots: 2
  controlUrl: ${k.controlUrl ?? control.url}
  controlCaFile: ${k.controlCaFile ?? ca.certFile}
  tokenFile: ${tokenFile}
  stateDir: ${join(dir, 'state')}
  vm: {image: ${k.image ?? join(dir, 'image')}, accel: ${k.accel ?? 'tcg'}, memoryMiB: 256}
  caps: {cpuQuotaPercent: 100, memoryMaxMiB: 2048}
  network: {dns: {upstreams: ["${k.upstream ?? `127.0.0.1:${dns.port}`}"]}}
${k.extra ?? ''}
`;
  const file = join(dir, name);
  writeFileSync(file, yaml);
  return file;
}

/** A folder as `hangar image build` leaves it: small files, and a manifest with their digests. */
function writeImage(at: string): void {
  mkdirSync(at, { recursive: true });
  const files: Record<string, { sha256: string; bytes: number }> = {};
  for (const [name, body] of [['vmlinux', 'not a kernel, never booted (accel tcg)'], ['initramfs.cpio', 'not an initramfs either']] as const) {
    writeFileSync(join(at, name), body);
    files[name] = { sha256: sha(body), bytes: Buffer.byteLength(body) };
  }
  writeFileSync(join(at, 'manifest.json'), JSON.stringify({ kind: 'test', files }));
}

const doctor = (file: string, opts: DoctorOptions = {}) => runDoctor(file, { paths, timeoutMs: 1500, ...opts });

/** Plain and --json runs of the same file: the same exit status, and the JSON's checks are the report's. */
async function both(file: string, opts: DoctorOptions = {}): Promise<{ plain: DoctorReport; json: { ok: boolean; checks: Array<{ id: string; status: string; detail: string; fix?: string }> }; code: number }> {
  const plain = await doctor(file, opts);
  const j = await doctor(file, { ...opts, json: true });
  expect(j.code).toBe(plain.code);
  const json = JSON.parse(j.output) as { ok: boolean; checks: Array<{ id: string; status: string; detail: string; fix?: string }> };
  expect(json.ok).toBe(plain.code === 0);
  expect(json.checks.map((c) => [c.id, c.status])).toEqual(plain.results.map((r) => [r.id, r.status]));
  return { plain, json, code: plain.code };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hangar-doctor-'));
  prefix = testPrefix();
  redis = await startLocalRedis();
  const admin = new Redis(redis.url);
  saveConfig = ((await admin.config('GET', 'save')) as string[])[1] ?? '';
  admin.disconnect();
  const appKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  writeFileSync(join(dir, 'app.pem'), appKey, { mode: 0o600 });
  writeFileSync(join(dir, 'webhook.secret'), 'doctor-webhook-secret-0123456789', { mode: 0o600 });
  writeFileSync(join(dir, 'host.token'), `${TOKEN}\n`, { mode: 0o600 });
  sim = await createSim({ appId: 7, installationId: 3, appPrivateKeyPem: appKey, logger: pino({ level: 'silent' }) });
  simUrl = await sim.listen(0, '127.0.0.1');
  ca = makeCa();
  otherCa = makeCa('Another CA');
  const cert = makeServerCert(ca, ['IP:127.0.0.1']);
  control = await startTestControl({
    redisUrl: redis.url, prefix, apiUrl: simUrl, appKeyPem: appKey, appId: 7,
    hosts: [{ name: 'box1', role: 'build', pools: ['build'], token: TOKEN }],
    privateListener: `{listen: "127.0.0.1:0", tls: {certFile: ${cert.certFile}, keyFile: ${cert.keyFile}}}`,
  });
  dns = await startFakeDns({ host: '127.0.0.1', records: { 'github.com': ['140.82.121.3'] } });
  writeImage(join(dir, 'image'));
  // The machine's facts as files of the test's own: a device node stand-in, a cgroup v2 root with the controllers, systemd's marker, ip_forward on.
  const host = join(dir, 'host');
  mkdirSync(join(host, 'cgroup'), { recursive: true });
  writeFileSync(join(host, 'cgroup', 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
  writeFileSync(join(host, 'cgroup', 'cgroup.subtree_control'), '');
  mkdirSync(join(host, 'run-systemd-system'));
  writeFileSync(join(host, 'ip_forward'), '1\n');
  writeFileSync(join(host, 'kvm'), '');
  paths = {
    devKvm: join(host, 'kvm'), cgroupRoot: join(host, 'cgroup'), procSelfCgroup: join(host, 'self-cgroup'),
    systemdRun: join(host, 'run-systemd-system'), ipForward: join(host, 'ip_forward'),
  };
}, 60_000);

afterAll(async () => {
  await Promise.all([control?.close(), sim?.close(), dns?.close(), redis?.dispose()]);
  rmSync(dir, { recursive: true, force: true });
});

describe('a healthy setup', () => {
  test('every check passes (warnings allowed), exit 0, and --json agrees', async () => {
    const { plain, json, code } = await both(writeConfig());
    expect(plain.results.filter((r) => r.status === 'fail'), plain.output).toEqual([]);
    expect(code).toBe(0);
    expect(json.ok).toBe(true);
    const ids = plain.results.map((r) => r.id);
    for (const id of ['config', 'secret-files', 'redis-reachable', 'redis-eviction', 'redis-persistence', 'github-app', 'clock-skew', 'control-reachable', 'host-role', 'image', 'kvm', 'qemu', 'cgroups', 'systemd', 'nftables', 'ip-forward', 'dns-upstreams', 'disk']) {
      expect(ids).toContain(id);
    }
    const byId = Object.fromEntries(plain.results.map((r) => [r.id, r]));
    expect(byId['github-app']).toMatchObject({ status: 'ok', detail: expect.stringMatching(/accepts App 7/) });
    expect(byId['host-role']).toMatchObject({ status: 'ok', detail: expect.stringMatching(/the control agrees: box1 \(build; build\)/) });
    expect(byId['control-reachable']).toMatchObject({ status: 'ok', detail: expect.stringMatching(/certificate trusted/) });
    expect(byId['kvm']).toMatchObject({ status: 'skip' });
    expect(byId['disk']!.detail).toMatch(/MiB free in .*state; 2 slot\(s\) × \(image 0 MiB \+ margin 256 MiB\) = 512 MiB needed/);
    expect(plain.output).toMatch(/^✓ config: /m);
  });
});

type Row = [name: string, id: string, detail: RegExp, fix: RegExp, make: () => Promise<{ file: string; opts?: DoctorOptions; undo?: () => Promise<void> | void }>];

const adminDo = async (fn: (r: Redis) => Promise<unknown>) => {
  const r = new Redis(redis.url);
  try {
    await fn(r);
  } finally {
    r.disconnect();
  }
};

const ROWS: Row[] = [
  ['a secret file mode 0644', 'secret-files', /agent\.tokenFile .*host\.token: mode 0644.*readable by others/, /^chmod 600 .*host\.token$/, async () => {
    chmodSync(join(dir, 'host.token'), 0o644);
    return { file: writeConfig(), undo: () => chmodSync(join(dir, 'host.token'), 0o600) };
  }],
  ['Redis maxmemory-policy allkeys-lru', 'redis-eviction', /maxmemory-policy is allkeys-lru/, /CONFIG SET maxmemory-policy noeviction/, async () => {
    await adminDo((r) => r.config('SET', 'maxmemory-policy', 'allkeys-lru'));
    return { file: writeConfig(), undo: () => adminDo((r) => r.config('SET', 'maxmemory-policy', 'noeviction')) };
  }],
  ['Redis without persistence', 'redis-persistence', /appendonly no and save "": a Redis restart loses every queued job/, /appendonly yes/, async () => {
    await adminDo(async (r) => { await r.config('SET', 'appendonly', 'no'); await r.config('SET', 'save', ''); });
    return { file: writeConfig(), undo: () => adminDo(async (r) => { await r.config('SET', 'appendonly', 'yes'); await r.config('SET', 'save', saveConfig); }) };
  }],
  ['Redis unreachable', 'redis-reachable', /cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+ \(redis\.url\).*ECONNREFUSED/, /redis-server.*redis\.url/, async () => ({ file: writeConfig({ redisUrl: `redis://127.0.0.1:${await freePort()}` }) })],
  ['the control\'s certificate not signed by agent.controlCaFile', 'control-reachable', /not signed by agent\.controlCaFile/, /agent\.controlCaFile/, async () => ({ file: writeConfig({ controlCaFile: otherCa.certFile }) })],
  ['the control unreachable', 'control-reachable', /cannot reach the control at https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/, /hangar control.*agent\.controlUrl/, async () => ({ file: writeConfig({ controlUrl: `https://127.0.0.1:${await freePort()}` }) })],
  ['an App key the sim does not accept', 'github-app', /refused App 7's JWT \(401/, /github\.privateKeyFile/, async () => {
    const other = join(dir, 'other-app.pem');
    writeFileSync(other, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
    return { file: writeConfig({ privateKeyFile: other }) };
  }],
  ['an image folder without its kernel', 'image', /vmlinux is missing/, /hangar image build test --out .*agent\.vm\.image/, async () => {
    const at = join(dir, 'image-no-kernel');
    writeImage(at);
    rmSync(join(at, 'vmlinux'));
    return { file: writeConfig({ image: at }) };
  }],
  ['an image that does not match its manifest', 'image', /does not match its manifest\.json: initramfs\.cpio has another sha256/, /hangar image build/, async () => {
    const at = join(dir, 'image-changed');
    writeImage(at);
    writeFileSync(join(at, 'initramfs.cpio'), 'not an initramfs eithe!');
    return { file: writeConfig({ image: at }) };
  }],
  ['agent.stateDir with too little space', 'disk', /MiB free in .*state; 2 slot\(s\) × .* needed/, /agent\.stateDir.*agent\.slots/, async () =>
    // The free space is the file system's own; the margin per slot is what the test turns up past it.
    ({ file: writeConfig(), opts: { diskMarginBytes: 2 ** 50 } })],
  ['a DNS upstream that does not answer', 'dns-upstreams', /no answer to "github\.com A" within 1500 ms from 127\.0\.0\.1:\d+/, /agent\.network\.dns\.upstreams/, async () => ({ file: writeConfig({ upstream: `127.0.0.1:${await freePort()}` }) })],
  ['the clock five minutes ahead', 'clock-skew', /clock is (299|30\d) s ahead of GitHub .*over 60 s/, /timedatectl set-ntp true/, async () => ({ file: writeConfig(), opts: { now: () => Date.now() + 300_000 } })],
  ['a bad config key', 'config', /agent\.vm\.imagee/, /correct agent\.vm.*hangar config check/, async () => ({ file: badKeyConfig() })],
  ['the control has this host with other pools', 'host-role', /this file says box1 \(build; build, other\), the control says box1 \(build; build\)/, /hosts\[\] entry "box1"/, async () => ({ file: writeConfig({ pools: '[build, other]' }) })],
  ['a build host serving a deploy pool (checkPoolsAndHosts, through the config check)', 'config', /hosts\.0\.pools\.1 \(line \d+\): "deploy" is a deploy pool: only a host with role deploy may serve it/, /correct hosts\.0\.pools\.1/, async () => ({ file: writeConfig({ pools: '[build, deploy]' }) })],
  ['a host token the control does not know', 'host-role', /does not know this host's token \(401\)/, /tokenSha256.*hangar host add box1/, async () => {
    const other = join(dir, 'other.token');
    writeFileSync(other, 'another-host-token-0123456789abcdef', { mode: 0o600 });
    return { file: writeConfig({ tokenFile: other }) };
  }],
  ['a host token revoked by hangar host remove', 'host-role', /the control refuses this host: host box1's credentials were revoked/, /hangar host add box1 --role build --pools build/, async () => {
    // What hangar host remove records (jit/host-revocation.ts), written as it writes it.
    await adminDo((r) => r.hset(`${prefix}:hosts:revoked`, sha(TOKEN), JSON.stringify({ host: 'box1', at: Date.now() })));
    return { file: writeConfig(), undo: () => adminDo((r) => r.hdel(`${prefix}:hosts:revoked`, sha(TOKEN))) };
  }],
  ['an agent-only file with the clock five minutes behind the control', 'clock-skew', /clock is (29\d|30\d) s behind the control \(https:\/\/127\.0\.0\.1:\d+\).*over 60 s/, /timedatectl/, async () => {
    // Without a control section the clock is compared with the control's Date header, not GitHub's.
    const text = readFileSync(writeConfig({}, 'with-control.yaml'), 'utf8').replace(/^github:[\s\S]*?(?=^redis:)/m, '');
    const file = join(dir, 'agent-only.yaml');
    writeFileSync(file, text);
    return { file, opts: { now: () => Date.now() - 300_000 } };
  }],
  ['accel kvm without /dev/kvm (a path of the test\'s, absent)', 'kvm', /KVM does not work: .*no-kvm is missing/, /kvm_intel.*agent\.vm\.accel: auto/, async () => ({ file: writeConfig({ accel: 'kvm' }), opts: { paths: { ...paths, devKvm: join(dir, 'no-kvm') } } })],
  ['no usable cgroups (an empty cgroup root of the test\'s)', 'cgroups', /no usable cgroups under .*empty-cgroup/, /mount cgroup2/, async () => {
    mkdirSync(join(dir, 'empty-cgroup'), { recursive: true });
    return { file: writeConfig(), opts: { paths: { ...paths, cgroupRoot: join(dir, 'empty-cgroup') } } };
  }],
  ['nft not installed (a binary path that does not exist)', 'nftables', /does-not-exist\/nft --version did not run/, /apt-get install -y nftables/, async () => ({ file: writeConfig(), opts: { nftBinary: join(dir, 'does-not-exist', 'nft') } })],
];

function badKeyConfig(): string {
  const file = writeConfig({}, 'bad-key.yaml');
  writeFileSync(file, readFileSync(file, 'utf8').replace('  vm: {image:', '  vm: {imagee: x, image:'));
  return file;
}

const outputs: string[] = [];

describe('each prerequisite broken in turn', () => {
  test.each(ROWS)('%s: %s fails with its detail and fix, exit 1', async (_name, id, detail, fix, make) => {
    const { file, opts, undo } = await make();
    try {
      const { plain, json, code } = await both(file, opts);
      outputs.push(plain.output, JSON.stringify(json));
      expect(code, plain.output).toBe(1);
      const got = plain.results.find((r) => r.id === id && r.status === 'fail');
      expect(got, plain.output).toBeDefined();
      expect(got!.detail).toMatch(detail);
      expect(got!.fix).toMatch(fix);
      // The plain report names it on a ✗ line, its fix under it.
      expect(plain.output).toContain(`✗ ${id}: ${got!.detail}\n    fix: ${got!.fix}\n`);
      // Its own run: the same finding and fix (a measured figure, e.g. the clock's skew, may differ by a second).
      const inJson = json.checks.find((c) => c.id === id && c.status === 'fail');
      expect(inJson).toEqual({ id, status: 'fail', detail: expect.stringMatching(detail), fix: got!.fix });
      // Broken is only what the row broke: every other failure would be a check that is not independent.
      expect(plain.results.filter((r) => r.status === 'fail').map((r) => r.id)).toEqual([id]);
    } finally {
      await undo?.();
    }
  });

  test('no report holds a secret: not the host token, the App key, or the webhook secret', () => {
    expect(outputs.length).toBe(ROWS.length * 2);
    const key = readFileSync(join(dir, 'app.pem'), 'utf8').split('\n')[1]!;
    for (const out of outputs) {
      expect(out).not.toContain(TOKEN);
      expect(out).not.toContain(key);
      expect(out).not.toContain('doctor-webhook-secret');
    }
  });
});

describe('a Redis user that may not CONFIG GET (a host\'s ACL user)', () => {
  test('persistence is "cannot check" (warn, exit 0), eviction still read from INFO; the password is in no report', async () => {
    const password = 'doctor-acl-password-0123456789';
    writeFileSync(join(dir, 'redis.password'), password, { mode: 0o600 });
    await adminDo(async (r) => {
      await r.call('ACL', 'SETUSER', 'doctor-host', 'on', `>${password}`, '~*', '&*', '+@all', '-@admin', '-@dangerous', '+info');
      await r.config('SET', 'appendonly', 'no');
    });
    try {
      const file = writeConfig({ redisUrl: redis.url.replace('redis://', 'redis://doctor-host@') });
      writeFileSync(file, readFileSync(file, 'utf8').replace(/redis: \{url: "([^"]+)", /, `redis: {url: "$1", passwordFile: ${join(dir, 'redis.password')}, `));
      const { plain, code } = await both(file);
      expect(code, plain.output).toBe(0);
      const byId = Object.fromEntries(plain.results.map((r) => [r.id, r]));
      expect(byId['redis-persistence']).toMatchObject({ status: 'warn', detail: expect.stringMatching(/may not CONFIG GET save: cannot check/), fix: expect.stringMatching(/CONFIG GET save.*admin/) });
      expect(byId['redis-eviction']).toMatchObject({ status: 'ok' });
      expect(plain.output).toMatch(/^! redis-persistence: /m);
      expect(plain.output).not.toContain(password);
    } finally {
      await adminDo(async (r) => { await r.call('ACL', 'DELUSER', 'doctor-host'); await r.config('SET', 'appendonly', 'yes'); });
    }
  });
});

describe('the CLI (dist/)', () => {
  const cli = (...args: string[]) => execa('node', ['dist/main/cli.js', ...args], { reject: false, timeout: 30_000 });

  /** A control-only file: its checks need none of this machine's VM parts, so they run as they would on any control box. */
  function controlOnly(): string {
    const text = readFileSync(writeConfig({}, 'full.yaml'), 'utf8').replace(/^agent:[\s\S]*$/m, '');
    const file = join(dir, 'control-only.yaml');
    writeFileSync(file, text);
    return file;
  }

  test('exit 0 on a healthy control file; exit 1 with a secret open to others; --json agrees', async () => {
    const file = controlOnly();
    const good = await cli('doctor', '--config', file);
    expect(good.exitCode, String(good.stdout) + String(good.stderr)).toBe(0);
    expect(String(good.stdout)).toMatch(/^✓ github-app: .*accepts App 7/m);
    expect(String(good.stdout)).not.toMatch(/kvm|dns-upstreams/);
    chmodSync(join(dir, 'webhook.secret'), 0o644);
    try {
      const bad = await cli('doctor', '--config', file);
      expect(bad.exitCode).toBe(1);
      expect(String(bad.stdout)).toMatch(/^✗ secret-files: github\.webhookSecretFile .*webhook\.secret: mode 0644, owner uid \d+: readable by others\n {4}fix: chmod 600 .*webhook\.secret$/m);
      const json = await cli('doctor', '--config', file, '--json');
      expect(json.exitCode).toBe(1);
      const parsed = JSON.parse(String(json.stdout)) as { ok: boolean; checks: Array<{ id: string; status: string; fix?: string }> };
      expect(parsed.ok).toBe(false);
      expect(parsed.checks.find((c) => c.id === 'secret-files')).toMatchObject({ status: 'fail', fix: expect.stringMatching(/^chmod 600 /) });
    } finally {
      chmodSync(join(dir, 'webhook.secret'), 0o600);
    }
  });

  test('exit 2 when the config cannot be read: a missing file, YAML that does not parse', async () => {
    const missing = await cli('doctor', '--config', join(dir, 'nope.yaml'));
    expect(missing.exitCode).toBe(2);
    expect(String(missing.stderr)).toMatch(/nope\.yaml.*cannot read: ENOENT/s);
    const garbage = join(dir, 'garbage.yaml');
    writeFileSync(garbage, 'agent: [unclosed\n');
    const bad = await cli('doctor', '--config', garbage);
    expect(bad.exitCode).toBe(2);
    expect(String(bad.stderr)).toMatch(/not a readable config:\n {2}- YAML/);
  });
});
