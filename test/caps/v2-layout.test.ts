/**
 * cgroup v2 cannot run here (the v2 mount has no cpu or memory controller, PLATFORM.md), so
 * this checks only the layout and the files written, on a plain directory standing in for
 * cgroupfs. The real v2 behaviour (OOM, pids) is for a v2 host; the lead's end-to-end run
 * on production hardware covers it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { checkCapsFit } from '../../src/domain/caps-fit.js';
import { CapsError, createCaps } from '../../src/caps/create-caps.js';

const MiB = 1024 * 1024;
let dir: string;
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function fixture(selfPath: string, agentProcs = ''): { root: string; self: string } {
  dir = mkdtempSync(join(tmpdir(), 'hangar-v2-'));
  const root = join(dir, 'cgroup');
  const own = join(root, selfPath);
  for (const d of [root, own, join(root, 'hangar-runners.slice')]) {
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    writeFileSync(join(d, 'cgroup.procs'), '');
  }
  writeFileSync(join(own, 'cgroup.procs'), agentProcs);
  const self = join(dir, 'self-cgroup');
  writeFileSync(self, `0::${selfPath}\n`);
  return { root, self };
}

const opts = { mode: 'auto' as const, cpuQuotaPercent: 150, memoryMaxBytes: 4096 * MiB, tasksMax: 4096 };

describe('cgroup v2 layout', () => {
  test('under systemd: VMs go below the delegated agent cgroup, the agent into a leaf', async () => {
    const { root, self } = fixture('/hangar-runners.slice/hangar-agent.service', '4242\n');
    const caps = await createCaps({ ...opts, root, procSelfCgroup: self });
    expect(caps.mode).toBe('v2');
    await caps.ensureSlice();
    const svc = join(root, 'hangar-runners.slice/hangar-agent.service');
    expect(readFileSync(join(svc, 'hangar-agent/cgroup.procs'), 'utf8')).toBe('4242');
    expect(readFileSync(join(svc, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
    // The slice's limits are systemd's (units/hangar-runners.slice): not written by us.
    expect(() => readFileSync(join(root, 'hangar-runners.slice/memory.max'))).toThrow();

    const vm = await caps.createVmCgroup('job-1', { memoryMaxBytes: 2304 * MiB, cpuWeight: 100, tasksMax: 512 });
    expect(vm.path).toBe(join(svc, 'hangar-vm-job-1'));
    expect(vm.procsFiles).toEqual([join(svc, 'hangar-vm-job-1/cgroup.procs')]);
    expect(readFileSync(join(vm.path, 'memory.max'), 'utf8')).toBe(String(2304 * MiB));
    expect(readFileSync(join(vm.path, 'cpu.weight'), 'utf8')).toBe('100');
    expect(readFileSync(join(vm.path, 'pids.max'), 'utf8')).toBe('512');
    expect(await caps.listVmCgroups()).toEqual(['job-1']); // the hangar-agent leaf is not a VM
  });

  test('after a restart inside the leaf, the delegated cgroup is still the parent', async () => {
    const { root, self } = fixture('/hangar-runners.slice/hangar-agent.service/hangar-agent');
    const caps = await createCaps({ ...opts, root, procSelfCgroup: self });
    const vm = await caps.createVmCgroup('job-2', { memoryMaxBytes: 256 * MiB });
    expect(vm.path).toBe(join(root, 'hangar-runners.slice/hangar-agent.service/hangar-vm-job-2'));
  });

  test('without systemd: Hangar builds the slice and sets its limits', async () => {
    const { root, self } = fixture('/user.slice/session-1.scope');
    const caps = await createCaps({ ...opts, root, procSelfCgroup: self });
    await caps.ensureSlice();
    const slice = join(root, 'hangar-runners.slice');
    expect(readFileSync(join(slice, 'cpu.max'), 'utf8')).toBe('150000 100000');
    expect(readFileSync(join(slice, 'memory.max'), 'utf8')).toBe(String(4096 * MiB));
    expect(readFileSync(join(slice, 'pids.max'), 'utf8')).toBe('4096');
    expect(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8')).toBe('+cpu +memory +pids');
  });

  test('mode v2 without the controllers says how to fix it', async () => {
    const { root, self } = fixture('/hangar-runners.slice/hangar-agent.service');
    writeFileSync(join(root, 'hangar-runners.slice/hangar-agent.service/cgroup.controllers'), 'pids\n');
    const caps = await createCaps({ ...opts, mode: 'v2', root, procSelfCgroup: self });
    await expect(caps.ensureSlice()).rejects.toThrow(/Delegate=yes/);
    await expect(caps.ensureSlice()).rejects.toBeInstanceOf(CapsError);
  });
});

describe('checkCapsFit', () => {
  test.each([
    ['fits exactly', { slots: 2, vmMemoryMiB: 2048, overheadMiB: 256, memoryMaxBytes: 4608 * MiB }, []],
    ['one MiB short', { slots: 2, vmMemoryMiB: 2048, overheadMiB: 256, memoryMaxBytes: 4607 * MiB }, ['caps.memoryMaxMiB']],
    ['tasks over', { slots: 4, vmMemoryMiB: 512, overheadMiB: 0, memoryMaxBytes: 4096 * MiB, tasksMax: 100, vmTasksMax: 64 }, ['caps.tasksMax']],
  ])('%s', (_name, input, paths) => {
    expect(checkCapsFit(input).map((p) => p.path)).toEqual(paths);
  });

  test('the message names the numbers and the fix', () => {
    const [p] = checkCapsFit({ slots: 3, vmMemoryMiB: 2048, overheadMiB: 256, memoryMaxBytes: 4096 * MiB });
    expect(p?.message).toBe(
      "3 slots × (2048 MiB guest + 256 MiB overhead) = 6912 MiB is above the slice's MemoryMax of 4096 MiB: lower slots or vm.memoryMiB, or raise caps.memoryMaxMiB",
    );
  });
});
