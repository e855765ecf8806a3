import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DriverError } from '../../src/vm/errors.js';
import { probeAccelerator } from '../../src/vm/qemu-microvm/accel.js';
import { createQemuMicrovmDriver } from '../../src/vm/qemu-microvm/driver.js';
import { kvmProbe } from '../helpers/kvm.js';
import { driverConformance } from './conformance.js';
import { ensureTestImage, type TestImage } from './ensure-image.js';
import { ensureUser, processesWith, sleep, waitForConsole } from './helpers.js';

const RUN_AS = 'hangar-vm';

// Made before any suite's hooks run: the conformance suite's driver drops QEMU to this user.
beforeAll(() => ensureUser(RUN_AS));

// The machines here have no hardware virtualisation (PLATFORM.md): TCG.
driverConformance('qemu-microvm (tcg)', (stateDir) => createQemuMicrovmDriver({ stateDir, accel: 'tcg', runAs: RUN_AS }));

/** A cgroup can be removed once its last process is reaped, a moment after the kill. */
async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      return await rmdir(dir);
    } catch (err) {
      if (i >= 50) throw err;
      await sleep(100);
    }
  }
}

describe.sequential('qemu-microvm specifics', () => {
  let image: TestImage;
  let root: string;
  beforeAll(async () => {
    image = await ensureTestImage();
    root = await mkdtemp(join(tmpdir(), 'hangar-qemu-'));
  }, 600_000);
  afterAll(async () => {
    expect(await processesWith(root)).toEqual([]);
    await rm(root, { recursive: true, force: true });
  });

  const base = (over: Record<string, unknown> = {}) => ({
    id: `q-${randomUUID().slice(0, 8)}`, kernel: image.kernel, initrd: image.initrd, memoryMiB: 256, vcpus: 1,
    timeoutMs: 60_000, ...over,
  });

  test('QEMU runs as the unprivileged user and joins the cgroup before it starts', async () => {
    const cg = `/sys/fs/cgroup/pids/hangar-test-${randomUUID().slice(0, 8)}`;
    await mkdir(cg);
    const d = createQemuMicrovmDriver({ stateDir: join(root, 'cg'), accel: 'tcg', runAs: RUN_AS });
    try {
      const h = await d.create(base({ cgroupProcsFiles: [`${cg}/cgroup.procs`], guestFiles: { cmd: 'sleep 600' } }));
      expect((await readFile(`${cg}/cgroup.procs`, 'utf8')).split('\n')).toContain(String(h.pid));
      await waitForConsole(h.consoleLog, 'HANGAR-RUNNER-START');
      const status = await readFile(`/proc/${h.pid}/status`, 'utf8');
      const uid = (await execa('id', ['-u', RUN_AS])).stdout.trim();
      expect(/^Uid:\s+(\d+)/m.exec(status)?.[1]).toBe(uid);
      await d.destroy(h.id);
      await rmdir(cg); // destroy waited for the reap: no zombie keeps the cgroup busy
    } finally {
      for (const h of await d.list()) await d.destroy(h.id);
      if (existsSync(cg)) await removeCgroup(cg);
    }
  }, 90_000);

  test('a cgroup it cannot join means no VM at all', async () => {
    const stateDir = join(root, 'cg-bad');
    const d = createQemuMicrovmDriver({ stateDir, accel: 'tcg' });
    const err = await d.create(base({ cgroupProcsFiles: ['/sys/fs/cgroup/pids/does-not-exist/cgroup.procs'] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).code).toBe('spawn-failed');
    expect(await processesWith(stateDir)).toEqual([]);
    expect(await d.list()).toEqual([]);
  }, 30_000);

  test('a missing image is refused before anything starts', async () => {
    const stateDir = join(root, 'missing');
    const d = createQemuMicrovmDriver({ stateDir, accel: 'tcg' });
    const err = await d.create(base({ kernel: join(root, 'no-vmlinux') })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).code).toBe('image-missing');
    expect(await d.list()).toEqual([]);
  });

  test('the guest reads its root disk overlay and the network config from fw_cfg', async () => {
    const tap = `hgt${randomUUID().slice(0, 8)}`;
    await execa('ip', ['tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    try {
      await execa('ip', ['addr', 'add', '10.213.77.1/30', 'dev', tap]);
      await execa('ip', ['link', 'set', tap, 'up']);
      const disk = join(root, 'disk.raw');
      await execa('sh', ['-c', `printf HANGAR-ROOT-DISK > ${disk}; truncate -s 1M ${disk}`]);
      const d = createQemuMicrovmDriver({ stateDir: join(root, 'net'), accel: 'tcg', runAs: RUN_AS });
      const cmd = 'head -c 16 /dev/vda; echo; ip -4 addr show; ping -c 1 -W 5 10.213.77.1 && echo PING-OK';
      const h = await d.create(base({
        rootDisk: disk,
        network: { tap, mac: '52:54:00:12:34:56' },
        guestFiles: { cmd, net: 'IP=10.213.77.2/30 GW=10.213.77.1 DNS=10.213.77.1 MTU=1400' },
      }));
      expect((await d.wait(h.id)).kind).toBe('exited');
      const text = await readFile(h.consoleLog, 'utf8');
      expect(text).toContain('HANGAR-ROOT-DISK');
      expect(text).toContain('10.213.77.2/30');
      expect(text).toMatch(/mtu 1400/); // the guest's NIC takes the MTU the host gives (guest-net.sh)
      expect(text).toContain('PING-OK');
      await d.destroy(h.id);
    } finally {
      await execa('ip', ['link', 'del', tap], { reject: false });
    }
  }, 90_000);

  test('after the agent is kill -9ed, a new one finds the VM, re-attaches its console and re-arms its time cap', async () => {
    const stateDir = join(root, 'crash');
    const id = 'crashed-agent-vm';
    const child = execa(fileURLToPath(new URL('../../node_modules/.bin/vite-node', import.meta.url)),
      [fileURLToPath(new URL('fixtures/agent-child.ts', import.meta.url)), stateDir, id, image.kernel, image.initrd,
        'sleep 3; echo AFTER-RESTART; sleep 600', '18000'],
      { reject: false, buffer: false });
    const pid = await new Promise<number>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { const m = /CREATED (\d+)/.exec(d.toString()); if (m) resolve(Number(m[1])); });
      void child.then((r) => reject(new Error(`agent child ended: ${r.exitCode} ${String(r.stderr ?? '')}`)));
    });
    child.kill('SIGKILL');
    await child;
    const d = createQemuMicrovmDriver({ stateDir, accel: 'tcg' });
    const [h] = await d.list();
    expect(h).toMatchObject({ id, pid });
    await waitForConsole(h!.consoleLog, 'AFTER-RESTART', 60_000); // written after the crash: re-attached
    expect(await d.wait(id)).toEqual({ kind: 'timeout' }); // the 18 s cap survived the crash
    await d.destroy(id);
    expect(await processesWith(stateDir)).toEqual([]);
  }, 90_000);

  test('probeAccelerator: TCG boots the image; KVM is reported either way with a reason', async () => {
    const tcg = await probeAccelerator({ accel: 'tcg', kernel: image.kernel, initrd: image.initrd });
    expect(tcg).toMatchObject({ accel: 'tcg', ok: true });
    expect(tcg.bootMs).toBeGreaterThan(0);
    // KVM: the system lane's one probe of this image (test/helpers/accel-probe.ts), not another here.
    const kvm = kvmProbe();
    expect(kvm.accel).toBe('kvm');
    if (!kvm.ok) expect(kvm.reason).toMatch(/\S/);
  }, 60_000);

  test('accel kvm is refused clearly when KVM cannot boot the image', async () => {
    if (kvmProbe().ok) return; // a host with working KVM: nothing to refuse
    // The run's probe already waited its 8 s for a guest that never reaches /init here; the
    // driver's own probe needs no more than a second to reach the same verdict and refuse.
    const d = createQemuMicrovmDriver({ stateDir: join(root, 'kvm'), accel: 'kvm', probeTimeoutMs: 1000 });
    const err = await d.create(base()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DriverError);
    expect((err as DriverError).code).toBe('accel-unusable');
    expect((err as DriverError).message).toMatch(/KVM does not boot a guest here: .+\(use accel: tcg, or auto\)/);
    expect(existsSync(join(root, 'kvm', 'q'))).toBe(false);
  }, 60_000);
});
