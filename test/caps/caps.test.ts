/**
 * Real cgroups, as root: each run makes its own slice (hangar-test-<random>.slice) and never
 * touches anything outside it. These machines have cgroup v1 only (PLATFORM.md), so this is
 * the v1 backend; v2's layout is checked on a fixture in v2-layout.test.ts.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CapsError, createCaps, type Caps } from '../../src/caps/create-caps.js';
import { joinCgroupCommand } from '../../src/caps/join-command.js';

const ROOT = '/sys/fs/cgroup';
const MiB = 1024 * 1024;
const slice = `hangar-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}.slice`;
const children: ChildProcess[] = [];
let caps: Caps;

const read = (...p: string[]) => readFileSync(join(ROOT, ...p), 'utf8').trim();

/** Starts `script` inside the VM cgroup (joined before exec, as QEMU will be). */
function startIn(procsFiles: string[], script: string): ChildProcess {
  const { command, args } = joinCgroupCommand(procsFiles, '/bin/sh', ['-c', script]);
  const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return child;
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

async function until<T>(probe: () => T | Promise<T>, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  // Fail loudly, not skip, where this cannot run: a green run must mean caps were tested.
  expect(process.getuid?.(), 'caps tests need root (they write cgroupfs)').toBe(0);
  expect(existsSync(join(ROOT, 'memory', 'cgroup.procs')), 'caps tests need cgroup v1 at /sys/fs/cgroup/{cpu,memory,pids}').toBe(true);
  caps = await createCaps({ mode: 'auto', sliceName: slice, cpuQuotaPercent: 150, memoryMaxBytes: 512 * MiB, tasksMax: 256 });
  await caps.ensureSlice();
});

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await caps?.removeSlice();
  for (const c of ['cpu', 'cpuacct', 'memory', 'pids']) expect(existsSync(join(ROOT, c, slice)), `${c}/${slice} left behind`).toBe(false);
});

describe('caps on cgroup v1', () => {
  test('auto picks v1 here; the slice has its limits', () => {
    expect(caps.mode).toBe('v1');
    expect(read('cpu', slice, 'cpu.cfs_period_us')).toBe('100000');
    expect(read('cpu', slice, 'cpu.cfs_quota_us')).toBe('150000');
    expect(read('memory', slice, 'memory.limit_in_bytes')).toBe(String(512 * MiB));
    expect(read('memory', slice, 'memory.memsw.limit_in_bytes')).toBe(String(512 * MiB));
    expect(read('pids', slice, 'pids.max')).toBe('256');
  });

  test('ensureSlice is idempotent and applies changed limits', async () => {
    const again = await createCaps({ mode: 'v1', sliceName: slice, cpuQuotaPercent: 150, memoryMaxBytes: 768 * MiB, tasksMax: 256 });
    await again.ensureSlice(); // raising memory: memsw must go first
    expect(read('memory', slice, 'memory.limit_in_bytes')).toBe(String(768 * MiB));
    await caps.ensureSlice(); // and back down: memory first
    expect(read('memory', slice, 'memory.limit_in_bytes')).toBe(String(512 * MiB));
    expect(read('memory', slice, 'memory.memsw.limit_in_bytes')).toBe(String(512 * MiB));
  });

  test('a VM cgroup has its limits and a process joining procsFiles is in every one', async () => {
    const vm = await caps.createVmCgroup('limits', { memoryMaxBytes: 64 * MiB, cpuWeight: 50, tasksMax: 32 });
    const dir = `${slice}/hangar-vm-limits`;
    expect(vm.path).toBe(join(ROOT, 'memory', dir));
    expect(vm.procsFiles.map((f) => f.split('/')[4]).sort()).toEqual(['cpu', 'cpuacct', 'memory', 'pids']);
    expect(read('memory', dir, 'memory.limit_in_bytes')).toBe(String(64 * MiB));
    expect(read('cpu', dir, 'cpu.shares')).toBe('512');
    expect(read('pids', dir, 'pids.max')).toBe('32');

    const child = startIn(vm.procsFiles, 'exec sleep 30');
    const lines = await until(() => {
      const text = readFileSync(`/proc/${child.pid}/cgroup`, 'utf8');
      return text.split('\n').filter((l) => l.endsWith(`/${dir}`)).length === vm.procsFiles.length ? text : null;
    }, 'the child to join every hierarchy');
    for (const c of ['cpu', 'memory', 'pids']) expect(lines).toMatch(new RegExp(`:${c}:/${dir.replace('.', '\\.')}$`, 'm'));
    expect((await caps.usage('limits'))?.tasks).toBe(1);
    await caps.removeVmCgroup('limits');
    expect((await exited(child)).signal).toBe('SIGKILL');
    expect(existsSync(join(ROOT, 'memory', dir))).toBe(false);
    await caps.removeVmCgroup('limits'); // idempotent
  });

  test('a memory hog is OOM-killed inside its VM cgroup; the slice survives', async () => {
    const vm = await caps.createVmCgroup('hog', { memoryMaxBytes: 32 * MiB });
    // tail buffers its whole "line", and /dev/zero has no newline: it grows until killed.
    const hog = startIn(vm.procsFiles, 'exec tail /dev/zero');
    expect(await exited(hog)).toEqual({ code: null, signal: 'SIGKILL' });
    const vmUsage = await caps.usage('hog');
    expect(vmUsage?.oomKills).toBeGreaterThanOrEqual(1);
    expect(vmUsage?.memoryMaxBytes).toBe(32 * MiB);
    expect((await caps.usage()).oomKills).toBeGreaterThanOrEqual(1);
    console.log(`after OOM: vm ${JSON.stringify(vmUsage)} slice ${JSON.stringify(await caps.usage())}`);

    // The slice and a sibling VM still work.
    const ok = await caps.createVmCgroup('after-hog', { memoryMaxBytes: 64 * MiB });
    expect(await exited(startIn(ok.procsFiles, 'exit 7'))).toEqual({ code: 7, signal: null });
    await caps.removeVmCgroup('hog');
    await caps.removeVmCgroup('after-hog');
  });

  test('a fork bomb stops at pids.max and removeVmCgroup kills what it left', async () => {
    const vm = await caps.createVmCgroup('forks', { memoryMaxBytes: 64 * MiB, tasksMax: 8 });
    // Bounded: 100 sleepers at most, and the cgroup allows 8 tasks.
    const bomb = startIn(vm.procsFiles, 'i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i+1)); done; wait');
    let stderr = '';
    bomb.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const refusedForks = () => Number(/^max (\d+)/m.exec(read('pids', slice, 'hangar-vm-forks', 'pids.events'))?.[1] ?? 0);
    await until(() => refusedForks() > 0, 'a fork refused by pids.max');
    await sleep(200);
    const usage = await caps.usage('forks');
    // dash gives up on the first refused fork, so its sleepers may stay without it.
    expect(usage?.tasks).toBeGreaterThanOrEqual(7);
    expect(usage?.tasks).toBeLessThanOrEqual(8);
    const refused = refusedForks();
    console.log(`fork bomb: ${usage?.tasks} tasks, ${refused} forks refused; sh said: ${stderr.trim().split('\n')[0]}`);

    const pids = readFileSync(vm.procsFiles.find((f) => f.includes('/pids/'))!, 'utf8').trim().split('\n').map(Number);
    await caps.removeVmCgroup('forks');
    for (const pid of pids) expect(existsSync(`/proc/${pid}/cmdline`) && readFileSync(`/proc/${pid}/stat`, 'utf8').split(' ')[2] !== 'Z').toBe(false);
    for (const c of ['cpu', 'memory', 'pids']) expect(existsSync(join(ROOT, c, slice, 'hangar-vm-forks'))).toBe(false);
  });

  test('listVmCgroups finds leftovers after a restart and ignores what Hangar did not make', async () => {
    await caps.createVmCgroup('left-1', { memoryMaxBytes: 64 * MiB });
    await caps.createVmCgroup('left-2', { memoryMaxBytes: 64 * MiB });
    const { mkdir, rmdir } = await import('node:fs/promises');
    await mkdir(join(ROOT, 'memory', slice, 'someone-else'));
    const restarted = await createCaps({ mode: 'auto', sliceName: slice, cpuQuotaPercent: 150, memoryMaxBytes: 512 * MiB, tasksMax: 256 });
    expect(await restarted.listVmCgroups()).toEqual(['left-1', 'left-2']);
    for (const id of await restarted.listVmCgroups()) await restarted.removeVmCgroup(id);
    expect(await restarted.listVmCgroups()).toEqual([]);
    await rmdir(join(ROOT, 'memory', slice, 'someone-else'));
  });

  test('slice usage reads the slice files', async () => {
    const u = await caps.usage();
    expect(u.memoryMaxBytes).toBe(512 * MiB);
    expect(u.cpuUsageNs).toBeGreaterThan(0); // the earlier tests' processes ran in it
    // Killed sleepers whose shell died are reaped by PID 1, not by us; until then the
    // slice's pids counter still holds them (their VM cgroup is already gone).
    await until(async () => (await caps.usage()).tasks === 0, 'orphans reaped by PID 1');
  });

  test('slice usage read while VM cgroups come and go never fails (a cgroup removed mid-read reads as gone, not ENODEV)', async () => {
    // The agent's heartbeat reads the slice while jobs end; a failed read left the heartbeat without caps.
    const until = Date.now() + 3_000;
    let reads = 0;
    let cycles = 0;
    const failures: string[] = [];
    const reader = (async () => {
      while (Date.now() < until) {
        await caps.usage().then(() => reads++, (err: Error) => failures.push(err.message));
        await caps.usage(`race-${cycles}`).catch((err: Error) => failures.push(err.message));
      }
    })();
    while (Date.now() < until) {
      const id = `race-${cycles++}`;
      await caps.createVmCgroup(id, { memoryMaxBytes: 64 * MiB });
      await caps.removeVmCgroup(id);
    }
    await reader;
    expect(failures.slice(0, 3)).toEqual([]);
    expect(cycles).toBeGreaterThan(50);
    expect(reads).toBeGreaterThan(50);
  });

  test('the CPU quota holds a busy VM to its share', async () => {
    const tight = await createCaps({ mode: 'v1', sliceName: `tight-${slice}`, cpuQuotaPercent: 20, memoryMaxBytes: 256 * MiB, tasksMax: 64 });
    try {
      await tight.ensureSlice();
      const vm = await tight.createVmCgroup('busy', { memoryMaxBytes: 64 * MiB });
      const busy = startIn(vm.procsFiles, 'while :; do :; done');
      await until(async () => ((await tight.usage('busy'))?.tasks ?? 0) > 0, 'the busy loop to join');
      const t0 = process.hrtime.bigint();
      const before = (await tight.usage()).cpuUsageNs;
      await sleep(1000);
      const u = await tight.usage();
      const share = (u.cpuUsageNs - before) / Number(process.hrtime.bigint() - t0);
      console.log(`20% quota: busy loop got ${(share * 100).toFixed(1)}% of a core, ${u.throttledPeriods} periods throttled`);
      expect(share).toBeLessThan(0.3);
      expect(u.throttledPeriods).toBeGreaterThan(5);
      busy.kill('SIGKILL');
    } finally {
      await tight.removeSlice();
    }
  });

  test('VM ids that could escape the slice are refused', async () => {
    for (const bad of ['../x', 'a/b', '', '.hidden', 'x'.repeat(70)]) {
      await expect(caps.createVmCgroup(bad, { memoryMaxBytes: MiB })).rejects.toBeInstanceOf(CapsError);
    }
  });
});
