/**
 * cgroup v2 (production). Two shapes:
 * - under systemd, hangar-agent.service runs in hangar-runners.slice with Delegate=yes. The
 *   slice's limits are systemd's (units/hangar-runners.slice); the agent may only write below
 *   its own cgroup, so it moves itself into a leaf (`hangar-agent`, v2 forbids processes in
 *   a cgroup that hands controllers to children) and makes VM cgroups beside that leaf.
 * - without systemd, Hangar builds `<mount>/<slice>` itself and sets its limits, as on v1.
 * Which one is decided by where this process already is: inside the slice means delegated.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Backend, type CapsUsage, type CgroupLimits, CFS_PERIOD_US, quotaUs } from './backend.js';
import { CapsError, ensureDir, exists, killAndRemove, readKeyed, readNumber, readPids, readText, writeIfPresent, writeValue } from './cgroup-fs.js';

const CONTROLLERS = ['cpu', 'memory', 'pids'];
/** The leaf the agent moves itself into under a delegated cgroup. */
export const AGENT_LEAF = 'hangar-agent';

/** The v2 mount under `root`: root itself on a pure v2 host, `root/unified` on a hybrid one. */
export async function findV2Mount(root: string): Promise<string | null> {
  for (const dir of [root, join(root, 'unified')]) {
    if (await exists(join(dir, 'cgroup.controllers'))) return dir;
  }
  return null;
}

/** Whether the v2 mount at `mount` offers every controller Hangar needs. */
export async function v2HasControllers(mount: string): Promise<boolean> {
  const have = ((await readText(join(mount, 'cgroup.controllers'))) ?? '').split(/\s+/);
  return CONTROLLERS.every((c) => have.includes(c));
}

/** This process's v2 cgroup path, from the `0::/path` line of /proc/self/cgroup. */
export async function selfCgroupV2(procSelfCgroup = '/proc/self/cgroup'): Promise<string> {
  const line = (await readFile(procSelfCgroup, 'utf8')).split('\n').find((l) => l.startsWith('0::'));
  if (!line) throw new CapsError('caps-unavailable', `${procSelfCgroup} has no cgroup v2 entry`);
  return line.slice(3).trim();
}

export class V2Backend implements Backend {
  readonly mode = 'v2' as const;
  readonly hierarchicalEvents = true;
  readonly sliceDirs: string[];
  readonly vmParents: string[];
  readonly memoryIndex = 0;
  readonly delegated: boolean;

  constructor(
    private readonly mount: string,
    private readonly sliceName: string,
    selfPath: string,
  ) {
    const parts = selfPath.split('/').filter(Boolean);
    const at = parts.indexOf(sliceName);
    this.delegated = at >= 0;
    // Delegated: our own cgroup may be the leaf we moved into on an earlier start.
    const own = parts.at(-1) === AGENT_LEAF ? parts.slice(0, -1) : parts;
    const parent = this.delegated ? join(mount, ...own) : join(mount, sliceName);
    const slice = this.delegated ? join(mount, ...parts.slice(0, at + 1)) : parent;
    this.sliceDirs = [slice];
    this.vmParents = [parent];
  }

  async ensureSlice(limits: CgroupLimits): Promise<void> {
    const parent = this.vmParents[0]!;
    if (this.delegated) {
      await this.moveSelfToLeaf(parent);
    } else {
      await enableControllers(this.mount);
      await ensureDir(parent);
      await this.applyLimits([parent], limits);
    }
    await enableControllers(parent);
  }

  async applyLimits(dirs: string[], limits: CgroupLimits): Promise<void> {
    const dir = dirs[0]!;
    if (limits.cpuQuotaPercent !== undefined) await writeValue(join(dir, 'cpu.max'), `${quotaUs(limits.cpuQuotaPercent)} ${CFS_PERIOD_US}`);
    if (limits.cpuWeight !== undefined) await writeValue(join(dir, 'cpu.weight'), Math.round(limits.cpuWeight));
    if (limits.memoryMaxBytes !== undefined) {
      await writeValue(join(dir, 'memory.max'), limits.memoryMaxBytes);
      // No swap for VMs: it only makes an OOM slower and the host slower with it.
      await writeIfPresent(join(dir, 'memory.swap.max'), 0);
    }
    if (limits.tasksMax !== undefined) await writeValue(join(dir, 'pids.max'), limits.tasksMax);
  }

  async readUsage(dirs: string[]): Promise<CapsUsage> {
    const dir = dirs[0]!;
    const cpu = await readKeyed(join(dir, 'cpu.stat'));
    const events = await readKeyed(join(dir, 'memory.events'));
    return {
      cpuUsageNs: (cpu.get('usage_usec') ?? 0) * 1000,
      memoryBytes: (await readNumber(join(dir, 'memory.current'))) ?? 0,
      memoryMaxBytes: await readNumber(join(dir, 'memory.max')),
      tasks: (await readNumber(join(dir, 'pids.current'))) ?? 0,
      throttledPeriods: cpu.get('nr_throttled') ?? 0,
      oomKills: events.get('oom_kill') ?? 0,
    };
  }

  async readCpuQuota(dirs: string[]): Promise<{ quotaUs: number | null; periodUs: number | null }> {
    // `max 100000` (no quota) or `150000 100000`.
    const [quota, period] = ((await readText(join(dirs[0]!, 'cpu.max'))) ?? '').trim().split(/\s+/);
    const n = (s: string | undefined) => (s && /^\d+$/.test(s) ? Number(s) : null);
    return { quotaUs: n(quota), periodUs: n(period) };
  }

  async removeSlice(): Promise<void> {
    // A delegated slice is systemd's; only the one we built is ours to remove.
    if (!this.delegated) await killAndRemove(this.vmParents[0]!);
  }

  /** Moves every process of the delegated cgroup into its leaf, so controllers can be handed down. */
  private async moveSelfToLeaf(parent: string): Promise<void> {
    const leaf = join(parent, AGENT_LEAF);
    await ensureDir(leaf);
    for (const pid of await readPids(parent)) {
      try {
        await writeValue(join(leaf, 'cgroup.procs'), pid);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    }
  }
}

/** Hands cpu, memory and pids down to the children of `dir`, failing clearly if `dir` lacks them. */
async function enableControllers(dir: string): Promise<void> {
  if (!(await v2HasControllers(dir))) {
    const have = ((await readText(join(dir, 'cgroup.controllers'))) ?? '').trim() || 'none';
    throw new CapsError(
      'caps-unavailable',
      `cgroup ${dir} offers controllers [${have}], Hangar needs ${CONTROLLERS.join(', ')}: ` +
        'under systemd, set Delegate=yes on hangar-agent.service; elsewhere use caps.mode v1',
    );
  }
  await writeValue(join(dir, 'cgroup.subtree_control'), CONTROLLERS.map((c) => `+${c}`).join(' '));
}
