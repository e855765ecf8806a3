/**
 * cgroup v1 without systemd (the development and CI machines): Hangar builds the slice
 * itself as `<root>/<controller>/<slice>` in each hierarchy it needs. cpuacct is its own
 * hierarchy on some hosts and co-mounted with cpu on others: both work, duplicates are
 * joined once.
 */
import { realpath } from 'node:fs/promises';
import { join } from 'node:path';
import { type Backend, type CapsUsage, type CgroupLimits, CFS_PERIOD_US, quotaUs, weightToShares } from './backend.js';
import { CapsError, ensureDir, exists, killAndRemove, readKeyed, readNumber, writeIfPresent, writeValue } from './cgroup-fs.js';

type Controller = 'cpu' | 'cpuacct' | 'memory' | 'pids';
const REQUIRED: Controller[] = ['cpu', 'memory', 'pids'];

/** Mount point of each controller's hierarchy; co-mounted controllers share one. */
export type V1Hierarchies = Map<Controller, string>;

export async function findV1Hierarchies(root: string): Promise<V1Hierarchies | null> {
  const found: V1Hierarchies = new Map();
  for (const c of [...REQUIRED, 'cpuacct'] as Controller[]) {
    const dir = join(root, c);
    // cpu,cpuacct co-mounted appears as a symlink `cpu -> cpu,cpuacct`: resolve to dedupe.
    if (await exists(join(dir, 'cgroup.procs'))) found.set(c, await realpath(dir));
  }
  return REQUIRED.every((c) => found.has(c)) ? found : null;
}

export class V1Backend implements Backend {
  readonly mode = 'v1' as const;
  readonly hierarchicalEvents = false;
  readonly sliceDirs: string[];
  readonly vmParents: string[];
  readonly memoryIndex: number;
  private readonly mounts: string[];

  constructor(
    private readonly hierarchies: V1Hierarchies,
    private readonly sliceName: string,
  ) {
    this.mounts = [...new Set(hierarchies.values())];
    this.sliceDirs = this.mounts.map((m) => join(m, sliceName));
    this.vmParents = this.sliceDirs;
    this.memoryIndex = this.mounts.indexOf(hierarchies.get('memory')!);
  }

  async ensureSlice(limits: CgroupLimits): Promise<void> {
    for (const dir of this.sliceDirs) await ensureDir(dir);
    // Children must count against the slice's memory limit; always 1 on recent kernels.
    const memSlice = this.dirFor('memory', this.sliceDirs);
    if ((await readNumber(join(memSlice, 'memory.use_hierarchy'))) === 0) {
      await writeValue(join(memSlice, 'memory.use_hierarchy'), 1);
    }
    await this.applyLimits(this.sliceDirs, limits);
  }

  async applyLimits(dirs: string[], limits: CgroupLimits): Promise<void> {
    const cpu = this.dirFor('cpu', dirs);
    if (limits.cpuQuotaPercent !== undefined) {
      await writeValue(join(cpu, 'cpu.cfs_period_us'), CFS_PERIOD_US);
      await writeValue(join(cpu, 'cpu.cfs_quota_us'), quotaUs(limits.cpuQuotaPercent));
    }
    if (limits.cpuWeight !== undefined) await writeValue(join(cpu, 'cpu.shares'), weightToShares(limits.cpuWeight));
    if (limits.memoryMaxBytes !== undefined) await setMemoryLimit(this.dirFor('memory', dirs), limits.memoryMaxBytes);
    if (limits.tasksMax !== undefined) await writeValue(join(this.dirFor('pids', dirs), 'pids.max'), limits.tasksMax);
  }

  async readUsage(dirs: string[]): Promise<CapsUsage> {
    const mem = this.dirFor('memory', dirs);
    const acct = this.hierarchies.has('cpuacct') ? this.dirFor('cpuacct', dirs) : this.dirFor('cpu', dirs);
    const cpuStat = await readKeyed(join(this.dirFor('cpu', dirs), 'cpu.stat'));
    const oom = await readKeyed(join(mem, 'memory.oom_control'));
    return {
      cpuUsageNs: (await readNumber(join(acct, 'cpuacct.usage'))) ?? 0,
      memoryBytes: (await readNumber(join(mem, 'memory.usage_in_bytes'))) ?? 0,
      memoryMaxBytes: await readNumber(join(mem, 'memory.limit_in_bytes')),
      tasks: (await readNumber(join(this.dirFor('pids', dirs), 'pids.current'))) ?? 0,
      throttledPeriods: cpuStat.get('nr_throttled') ?? 0,
      oomKills: oom.get('oom_kill') ?? 0,
    };
  }

  async readCpuQuota(dirs: string[]): Promise<{ quotaUs: number | null; periodUs: number | null }> {
    const cpu = this.dirFor('cpu', dirs);
    // -1 is v1's "no quota".
    const quota = await readNumber(join(cpu, 'cpu.cfs_quota_us'));
    return { quotaUs: quota !== null && quota > 0 ? quota : null, periodUs: await readNumber(join(cpu, 'cpu.cfs_period_us')) };
  }

  async removeSlice(): Promise<void> {
    for (const dir of this.sliceDirs) await killAndRemove(dir);
  }

  /** The directory among `dirs` (parallel to this.mounts) that lives in controller `c`'s hierarchy. */
  private dirFor(c: Controller, dirs: string[]): string {
    const mount = this.hierarchies.get(c);
    const dir = mount === undefined ? undefined : dirs[this.mounts.indexOf(mount)];
    if (dir === undefined) throw new CapsError('caps-unavailable', `cgroup v1 controller ${c} is not mounted`);
    return dir;
  }
}

/**
 * memory.memsw.limit_in_bytes (memory + swap) must never be below memory.limit_in_bytes, so
 * the order of the two writes depends on whether the limit goes up or down. Setting both to
 * the same value means a VM cannot use swap: it would only make an OOM slower and the host
 * slower with it.
 */
async function setMemoryLimit(dir: string, bytes: number): Promise<void> {
  const mem = join(dir, 'memory.limit_in_bytes');
  const memsw = join(dir, 'memory.memsw.limit_in_bytes');
  try {
    await writeValue(mem, bytes);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
    await writeIfPresent(memsw, bytes);
    await writeValue(mem, bytes);
  }
  await writeIfPresent(memsw, bytes);
}
