import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { createCaps } from '../../src/caps/create-caps.js';
import { SliceUsage } from '../../src/caps/slice-usage.js';

/**
 * The heartbeat's slice usage read from cgroup files: fake cgroup trees in a temp dir, laid out
 * as the kernel lays them out (v2: one directory with cpu.stat, cpu.max, memory.current,
 * memory.max; v1: one per hierarchy with cpuacct.usage, cpu.cfs_quota_us, memory.usage_in_bytes,
 * memory.limit_in_bytes), so no root and no real cgroup is needed.
 */
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'hangar-cgroup-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const SLICE = 'hangar-runners.slice';
const opts = { cpuQuotaPercent: 150, memoryMaxBytes: 2 * 1024 ** 3, tasksMax: 100 };

describe('cgroup v2', () => {
  function v2(cpuMax: string, usageUsec: number, memory: number, memoryMax: string) {
    return tree({
      'cgroup.controllers': 'cpuset cpu io memory pids\n',
      'self-cgroup': '0::/user.slice/session-1.scope\n',
      [`${SLICE}/cgroup.controllers`]: 'cpu memory pids\n',
      [`${SLICE}/cpu.max`]: `${cpuMax}\n`,
      [`${SLICE}/cpu.stat`]: `usage_usec ${usageUsec}\nuser_usec 1\nsystem_usec 1\nnr_periods 10\nnr_throttled 2\nthrottled_usec 5\n`,
      [`${SLICE}/memory.current`]: `${memory}\n`,
      [`${SLICE}/memory.max`]: `${memoryMax}\n`,
      [`${SLICE}/memory.events`]: 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n',
      [`${SLICE}/pids.current`]: '7\n',
    });
  }

  test('CPU in percent of the quota between two samples, memory against MemoryMax', async () => {
    const root = v2('150000 100000', 10_000_000, 300 << 20, String(1 << 30));
    const caps = await createCaps({ ...opts, mode: 'v2', root, procSelfCgroup: join(root, 'self-cgroup') });
    const s = new SliceUsage(caps, 2);
    expect(await s.sample(1_000)).toEqual({ cpuPercent: null, memoryBytes: 300 << 20, memoryMaxBytes: 1 << 30, cpuQuotaCores: 1.5 });
    // 0.75 core-seconds used over one second, against a quota of 1.5 cores: 50 %.
    writeFileSync(join(root, SLICE, 'cpu.stat'), 'usage_usec 10750000\nnr_throttled 2\n');
    writeFileSync(join(root, SLICE, 'memory.current'), String(400 << 20));
    expect(await s.sample(2_000)).toEqual({ cpuPercent: 50, memoryBytes: 400 << 20, memoryMaxBytes: 1 << 30, cpuQuotaCores: 1.5 });
  });

  test('no quota and no MemoryMax (`max`): null caps, CPU against the host\'s CPUs', async () => {
    const root = v2('max 100000', 0, 1024, 'max');
    const caps = await createCaps({ ...opts, mode: 'v2', root, procSelfCgroup: join(root, 'self-cgroup') });
    const s = new SliceUsage(caps, 4);
    await s.sample(0);
    writeFileSync(join(root, SLICE, 'cpu.stat'), 'usage_usec 2000000\n');
    // Two core-seconds over one second on a 4-CPU host.
    expect(await s.sample(1_000)).toEqual({ cpuPercent: 50, memoryBytes: 1024, memoryMaxBytes: null, cpuQuotaCores: null });
  });
});

describe('cgroup v1', () => {
  function v1(quota: number, usageNs: number, memory: number, limit: string) {
    const files: Record<string, string> = {};
    for (const c of ['cpu', 'cpuacct', 'memory', 'pids']) files[`${c}/cgroup.procs`] = '';
    Object.assign(files, {
      [`cpu/${SLICE}/cpu.cfs_quota_us`]: `${quota}\n`,
      [`cpu/${SLICE}/cpu.cfs_period_us`]: '100000\n',
      [`cpu/${SLICE}/cpu.stat`]: 'nr_periods 4\nnr_throttled 1\nthrottled_time 9\n',
      [`cpuacct/${SLICE}/cpuacct.usage`]: `${usageNs}\n`,
      [`memory/${SLICE}/memory.usage_in_bytes`]: `${memory}\n`,
      [`memory/${SLICE}/memory.limit_in_bytes`]: `${limit}\n`,
      [`memory/${SLICE}/memory.oom_control`]: 'oom_kill_disable 0\nunder_oom 0\noom_kill 0\n',
      [`pids/${SLICE}/pids.current`]: '3\n',
    });
    return tree(files);
  }

  test('the same figures from the v1 hierarchies', async () => {
    const root = v1(50_000, 1e9, 5 << 20, String(256 << 20));
    const caps = await createCaps({ ...opts, mode: 'v1', root });
    const s = new SliceUsage(caps, 2);
    expect(await s.sample(0)).toEqual({ cpuPercent: null, memoryBytes: 5 << 20, memoryMaxBytes: 256 << 20, cpuQuotaCores: 0.5 });
    // A quarter core-second over half a second, against half a core: 100 %.
    writeFileSync(join(root, 'cpuacct', SLICE, 'cpuacct.usage'), String(1e9 + 2.5e8));
    expect((await s.sample(500)).cpuPercent).toBe(100);
  });

  test('v1\'s unlimited (-1 quota, a page-rounded LONG_MAX limit) reads as no cap', async () => {
    const root = v1(-1, 0, 1, '9223372036854771712');
    const caps = await createCaps({ ...opts, mode: 'v1', root });
    expect(await new SliceUsage(caps, 2).sample(0)).toMatchObject({ memoryMaxBytes: null, cpuQuotaCores: null });
  });
});
