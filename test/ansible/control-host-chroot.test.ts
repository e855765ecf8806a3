/**
 * ansible/site.yml applied to cloudbox of ansible/inventory.example.yml (the control, Redis and
 * the deploy agent on one box) with a debootstrapped Debian root as its target, as
 * build-host-chroot.test.ts does for sidekick: the control role and the deploy_host role
 * together, from one config. The slice is given here: a chroot has no CPU or memory facts
 * (ansible/README.md). Root (debootstrap, chroot): the system lane. About 70 s (Redis and QEMU
 * installed from Debian's archive) once the run's Debian root exists (test/helpers/debian-root.ts).
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseUnit, unitValues } from '../../src/caps/systemd-unit.js';
import { certificate, chrootTarget, playbook, recap, run } from '../helpers/ansible-target.js';
import { freshDebianRoot } from '../helpers/debian-root.js';

const CREDENTIALS = ['github-app-key', 'webhook-secret', 'operator-token', 'host-token', 'control-key'];
let target: Awaited<ReturnType<typeof freshDebianRoot>>;
let root: string;
let work: string;
let secrets: Record<string, string>;
let first: { code: number; out: string };
const at = (p: string) => join(root, p);

beforeAll(async () => {
  const t = await chrootTarget();
  ({ target, root, work } = t);
  const { tarball, image } = t;
  // The private listener's certificate (agent.controlCaFile too) and its key, a matching pair.
  const listener = await certificate(work, 'control', '10.8.0.1');
  secrets = {
    'github-app-key': generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    'webhook-secret': randomBytes(20).toString('hex'),
    'operator-token': randomBytes(20).toString('hex'),
    'host-token': randomBytes(24).toString('hex'),
    'control-key': readFileSync(listener.key, 'utf8'),
  };
  for (const name of CREDENTIALS) writeFileSync(join(work, name), secrets[name]!, { mode: 0o600 });
  const sha = createHash('sha256').update(secrets['host-token']!).digest('hex');
  first = await playbook('cloudbox', work, {
    ansible_connection: 'community.general.chroot',
    ansible_host: root,
    hangar_tarball: tarball,
    hangar_node_binary: process.execPath,
    hangar_image_src: image,
    hangar_slice_cpu_quota_percent: 100,
    hangar_slice_memory_max_mib: 6144,
    hangar_files: [{ src: listener.cert, dest: '/etc/hangar/control.pem' }],
    hangar_credentials: CREDENTIALS.map((name) => ({ name, src: join(work, name) })),
    hangar_hosts: [
      { name: 'sidekick', role: 'build', pools: ['build'], tokenSha256: 'e'.repeat(64) },
      { name: 'cloudbox', role: 'deploy', pools: ['build', 'deploy'], tokenSha256: sha },
    ],
  })();
}, 300_000);

afterAll(() => target?.remove());

describe('the control and deploy_host roles on one box', () => {
  test('the playbook ran through, and said no secret', () => {
    expect(first.code, first.out.slice(-4000)).toBe(0);
    expect(recap('cloudbox', first.out)?.slice(2)).toEqual([0, 0]);
    for (const name of CREDENTIALS) expect(first.out, name).not.toContain(secrets[name]!.trim().split('\n')[1] ?? secrets[name]);
  });

  test('Redis keeps every job: noeviction and AOF in its config; enabled with the two services', () => {
    const conf = readFileSync(at('etc/redis/redis.conf'), 'utf8');
    expect(conf).toMatch(/^maxmemory-policy noeviction$/m);
    expect(conf).toMatch(/^appendonly yes$/m);
    for (const unit of ['redis-server.service', 'hangar-control.service', 'hangar-agent.service']) {
      expect(lstatSync(at(`etc/systemd/system/multi-user.target.wants/${unit}`)).isSymbolicLink(), unit).toBe(true);
    }
  });

  test('credentials: each root-owned and 0600', () => {
    for (const name of CREDENTIALS) {
      const s = statSync(at(`etc/hangar/credentials/${name}`));
      expect([name, s.uid, s.mode & 0o777]).toEqual([name, 0, 0o600]);
    }
  });

  test('three units from one config: each service handed the credentials its sections name; verify --root passes', async () => {
    const unit = (name: string) => parseUnit(readFileSync(at(`etc/systemd/system/${name}`), 'utf8'));
    const control = unit('hangar-control.service');
    expect(unitValues(control, 'Service', 'ExecStart')).toEqual(['/usr/bin/hangar control --config /etc/hangar/hangar.yaml']);
    expect(unitValues(control, 'Service', 'LoadCredential').map((v) => v.split(':')[0]).sort()).toEqual(['control-key', 'github-app-key', 'operator-token', 'webhook-secret']);
    expect(unitValues(unit('hangar-agent.service'), 'Service', 'LoadCredential')).toEqual(['host-token:/etc/hangar/credentials/host-token']);
    expect(unitValues(unit('hangar-runners.slice'), 'Slice', 'CPUQuota')).toEqual(['100%']);
    expect(unitValues(unit('hangar-runners.slice'), 'Slice', 'MemoryMax')).toEqual(['6G']);
    const units = ['hangar-control.service', 'hangar-agent.service', 'hangar-runners.slice'].map((u) => `/etc/systemd/system/${u}`);
    const verify = await run('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...units], { env: { SYSTEMD_LOG_COLOR: '0' } });
    expect(verify.out.trim()).toBe('');
    expect(verify.code).toBe(0);
  });
});
