/**
 * ansible/site.yml applied to sidekick of ansible/inventory.example.yml, with its target a
 * Debian root made here by debootstrap (ansible_connection=community.general.chroot; no
 * systemd runs in it, so the handlers and starts are skipped, by design). A second inventory
 * only points sidekick at the root and at this test's files: the tarball ansible/pack.sh makes
 * from this checkout's dist/, this machine's node binary, a stand-in image folder (three small
 * files: what is checked is the copy, not a boot), a CA certificate and the credentials. The
 * slice caps, slots and the rest of sidekick's config are the example inventory's own.
 * Root (debootstrap, chroot): the system lane. Needs debootstrap, ansible (test/setup.sh), a
 * built dist/ and Debian's archive at the mirror this machine's apt uses. About 65 s once the
 * run's Debian root is made, and about 70 s more to debootstrap it (the first such file of a run).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { parseUnit, unitValues } from '../../src/caps/systemd-unit.js';
import { certificate, chrootTarget, playbook, recap as recapOf, run } from '../helpers/ansible-target.js';
import { freshDebianRoot } from '../helpers/debian-root.js';

let target: Awaited<ReturnType<typeof freshDebianRoot>>;
let root: string;
let work: string;
let token: string;
let redisPassword: string;
let first: { code: number; out: string };
let again: () => ReturnType<typeof run>;
const at = (p: string) => join(root, p);
const recap = (out: string) => recapOf('sidekick', out);

beforeAll(async () => {
  const t = await chrootTarget();
  ({ target, root, work } = t);
  const { tarball, image } = t;
  // redis.tls.caFile and agent.controlCaFile must be certificates.
  const ca = await certificate(work, 'ca', 'hangar-test-ca');
  token = randomBytes(24).toString('hex');
  redisPassword = `redis-${randomBytes(12).toString('hex')}`;
  writeFileSync(join(work, 'token'), `${token}\n`, { mode: 0o600 });
  writeFileSync(join(work, 'redis-password'), redisPassword, { mode: 0o600 });
  const sha = createHash('sha256').update(token).digest('hex');
  again = playbook('sidekick', work, {
    ansible_connection: 'community.general.chroot',
    ansible_host: root,
    hangar_tarball: tarball,
    hangar_node_binary: process.execPath,
    hangar_image_src: image,
    hangar_files: [{ src: ca.cert, dest: '/etc/hangar/redis-ca.pem' }, { src: ca.cert, dest: '/etc/hangar/control.pem' }],
    hangar_credentials: [{ name: 'host-token', src: join(work, 'token') }, { name: 'redis-password', src: join(work, 'redis-password') }],
    hangar_hosts: [
      { name: 'sidekick', role: 'build', pools: ['build'], tokenSha256: sha },
      { name: 'cloudbox', role: 'deploy', pools: ['build', 'deploy'], tokenSha256: 'f'.repeat(64) },
    ],
  });
  first = await again();
}, 300_000);

afterAll(() => target?.remove());

describe('the build_host role in a debootstrapped root', () => {
  test('the playbook ran through, and said no secret', () => {
    expect(first.code, first.out.slice(-4000)).toBe(0);
    const [, changed, unreachable, failed] = recap(first.out)!;
    expect([unreachable, failed]).toEqual([0, 0]);
    expect(changed).toBeGreaterThan(10);
    expect(first.out).not.toContain(token);
    expect(first.out).not.toContain(redisPassword);
  });

  test('users: hangar (system, no login) and QEMU\'s hangar-vm in group kvm', () => {
    const passwd = readFileSync(at('etc/passwd'), 'utf8');
    for (const user of ['hangar', 'hangar-vm']) {
      const entry = passwd.split('\n').find((l) => l.startsWith(`${user}:`))?.split(':');
      expect(entry, user).toBeDefined();
      expect(Number(entry![2]), `${user} is a system user`).toBeLessThan(1000);
      expect(entry![6]).toBe('/usr/sbin/nologin');
    }
    const kvm = readFileSync(at('etc/group'), 'utf8').split('\n').find((l) => l.startsWith('kvm:'));
    expect(kvm?.split(':')[3]?.split(',')).toContain('hangar-vm');
  });

  test('packages: QEMU, nftables and the rest are installed in the root', async () => {
    const r = await run('chroot', [root, 'dpkg-query', '-W', '-f', '${Package} ${db:Status-Status}\n', 'qemu-system-x86', 'qemu-utils', 'nftables', 'iproute2', 'procps', 'ca-certificates']);
    expect(r.code, r.out).toBe(0);
    expect(r.out.trim().split('\n').sort()).toEqual(['ca-certificates installed', 'iproute2 installed', 'nftables installed', 'procps installed', 'qemu-system-x86 installed', 'qemu-utils installed']);
  });

  test('credentials: root-owned, 0600, in a 0700 folder, as given', () => {
    const dir = statSync(at('etc/hangar/credentials'));
    expect([dir.uid, dir.mode & 0o777]).toEqual([0, 0o700]);
    for (const [name, want] of [['host-token', `${token}\n`], ['redis-password', redisPassword]] as const) {
      const s = statSync(at(`etc/hangar/credentials/${name}`));
      expect([name, s.uid, s.gid, s.mode & 0o777]).toEqual([name, 0, 0, 0o600]);
      expect(readFileSync(at(`etc/hangar/credentials/${name}`), 'utf8')).toBe(want);
    }
  });

  test('the config: sidekick\'s from the inventory, with the slice caps it names and QEMU\'s user', () => {
    const s = statSync(at('etc/hangar/hangar.yaml'));
    expect([s.uid, s.mode & 0o777]).toEqual([0, 0o644]);
    const config = parse(readFileSync(at('etc/hangar/hangar.yaml'), 'utf8'));
    expect(config.agent).toMatchObject({
      host: 'sidekick', slots: 4, tokenFile: 'credential:host-token', drainTimeoutSeconds: 600,
      caps: { cpuQuotaPercent: 300, memoryMaxMiB: 12288 }, vm: { runAs: 'hangar-vm', image: '/var/lib/hangar/image' },
    });
    expect(config.redis.passwordFile).toBe('credential:redis-password');
    expect(config.github).toBeUndefined();
  });

  test('Hangar: the release, its current link, node from the controller and /usr/bin/hangar that runs in the root', async () => {
    expect(readlinkSync(at('opt/hangar/current'))).toMatch(/^releases\/[\d.]+$/);
    expect(existsSync(at('opt/hangar/current/dist/main/cli.js'))).toBe(true);
    expect(existsSync(at('opt/hangar/current/node_modules/bullmq/package.json'))).toBe(true);
    expect(statSync(at('opt/hangar/bin/node')).mode & 0o777).toBe(0o755);
    expect(statSync(at('usr/bin/hangar')).mode & 0o777).toBe(0o755);
    const help = await run('chroot', [root, '/usr/bin/hangar', '--help']);
    expect(help.code, help.out).toBe(0);
    expect(help.out).toMatch(/units\s+systemd units for this host/);
    // The tarball's own version, as its package.json says (build-info.json shipped beside it).
    const version = await run('chroot', [root, '/usr/bin/hangar', '--version']);
    expect(version.code, version.out).toBe(0);
    expect(version.out.trim()).toMatch(new RegExp(`^${JSON.parse(readFileSync(at('opt/hangar/current/package.json'), 'utf8')).version.replace(/\./g, '\\.')}( \\(|$)`));
    // The config as the agent would read it, in the root: its files (token's sha256, CA, image) check out.
    const check = await run('chroot', [root, '/usr/bin/hangar', 'config', 'check', '/etc/hangar/hangar.yaml']);
    expect(check.code, check.out).toBe(0);
  });

  test('the image folder, copied from the controller', () => {
    for (const f of ['vmlinux', 'initramfs.cpio', 'manifest.json']) {
      expect(readFileSync(at(`var/lib/hangar/image/${f}`), 'utf8')).toBe(readFileSync(join(work, 'image', f), 'utf8'));
    }
  });

  test('units: the agent and the slice (no control on a build host), rendered with the inventory\'s caps, the agent enabled', () => {
    const unit = (name: string) => parseUnit(readFileSync(at(`etc/systemd/system/${name}`), 'utf8'));
    expect(existsSync(at('etc/systemd/system/hangar-control.service'))).toBe(false);
    const slice = unit('hangar-runners.slice');
    expect(unitValues(slice, 'Slice', 'CPUQuota')).toEqual(['300%']);
    expect(unitValues(slice, 'Slice', 'MemoryMax')).toEqual(['12G']);
    const agent = unit('hangar-agent.service');
    expect(unitValues(agent, 'Service', 'ExecStart')).toEqual(['/usr/bin/hangar agent --config /etc/hangar/hangar.yaml']);
    expect(unitValues(agent, 'Service', 'KillMode')).toEqual(['mixed']);
    expect(unitValues(agent, 'Service', 'TimeoutStopSec')).toEqual(['660s']);
    expect(unitValues(agent, 'Service', 'LoadCredential')).toEqual([
      'host-token:/etc/hangar/credentials/host-token', 'redis-password:/etc/hangar/credentials/redis-password',
    ]);
    const wants = at('etc/systemd/system/multi-user.target.wants/hangar-agent.service');
    expect(lstatSync(wants).isSymbolicLink()).toBe(true);
    expect(readlinkSync(wants)).toBe('/etc/systemd/system/hangar-agent.service');
  });

  test('systemd-analyze verify --root passes on the units it rendered (and would notice a mistake)', async () => {
    const verify = (...units: string[]) => run('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...units.map((u) => `/etc/systemd/system/${u}`)], { env: { SYSTEMD_LOG_COLOR: '0' } });
    const good = await verify('hangar-agent.service', 'hangar-runners.slice');
    expect(good.out.trim()).toBe('');
    expect(good.code).toBe(0);
    writeFileSync(at('etc/systemd/system/hangar-broken.service'), '[Service]\nExecStart=/usr/bin/hangar-nope\nMemoryMax=lots\n');
    const bad = await verify('hangar-broken.service');
    expect(bad.out).toMatch(/Invalid memory limit 'lots'/);
    expect(bad.out).toMatch(/hangar-nope is not executable/);
  });

  test('sysctls and journald limits', () => {
    expect(readFileSync(at('etc/sysctl.d/60-hangar.conf'), 'utf8')).toMatch(/^net\.ipv4\.ip_forward = 1$/m);
    expect(readFileSync(at('etc/systemd/journald.conf.d/60-hangar.conf'), 'utf8')).toMatch(/^\[Journal\]\nSystemMaxUse=1G$/m);
  });

  test('a second run changes nothing', async () => {
    const second = await again();
    expect(second.code, second.out.slice(-4000)).toBe(0);
    expect(recap(second.out)?.slice(1)).toEqual([0, 0, 0]);
  }, 180_000);
});
