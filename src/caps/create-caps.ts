/**
 * Caps: every VM of a host in its own cgroup under one runner slice, so CI can exhaust only
 * what the slice allows and never starve what else the host serves.
 *
 * Only cgroups Hangar made are ever touched: VM cgroups are named `hangar-vm-<id>` and live
 * under the slice; listVmCgroups() and removal look at nothing else.
 */
import { join } from 'node:path';
import { type Backend, type CapsUsage, type CgroupLimits } from './backend.js';
import { CapsError, childCgroups, ensureDir, exists, killAndRemove } from './cgroup-fs.js';
import { quotaCores } from '../domain/host-usage.js';
import { V1Backend, findV1Hierarchies } from './v1.js';
import { V2Backend, findV2Mount, selfCgroupV2, v2HasControllers } from './v2.js';

export type { CapsUsage, CgroupLimits } from './backend.js';
export { CapsError } from './cgroup-fs.js';

export const DEFAULT_SLICE = 'hangar-runners.slice';
export const VM_CGROUP_PREFIX = 'hangar-vm-';
/** VM ids become directory names: no slashes, no dots, nothing a path could escape with. */
const VM_ID = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const SLICE = /^[A-Za-z0-9][A-Za-z0-9_-]*\.slice$/;

export interface CapsOptions {
  mode: 'auto' | 'v2' | 'v1';
  /** Where cgroupfs is mounted. */
  root?: string;
  /** Tests use a unique name per run; production keeps the default. */
  sliceName?: string;
  cpuQuotaPercent: number;
  memoryMaxBytes: number;
  tasksMax: number;
  /** Where to read this process's cgroup (v2); tests point it at a fixture. */
  procSelfCgroup?: string;
}

export interface VmCgroupLimits {
  /** Guest RAM plus QEMU's own overhead. */
  memoryMaxBytes: number;
  /** systemd's scale, 1..10000 (default 100). */
  cpuWeight?: number;
  tasksMax?: number;
}

export interface VmCgroup {
  vmId: string;
  /** The VM's cgroup directory (on v1: the one in the memory hierarchy). */
  path: string;
  /** Every cgroup.procs file the VM's process must join: one per v1 hierarchy, one on v2. */
  procsFiles: string[];
}

export interface Caps {
  readonly mode: 'v1' | 'v2';
  readonly sliceName: string;
  /** Makes the slice and sets its limits; safe to call at every start. */
  ensureSlice(): Promise<void>;
  /** Makes (or re-limits) the VM's cgroup. Calling it twice with one id yields one cgroup. */
  createVmCgroup(vmId: string, limits: VmCgroupLimits): Promise<VmCgroup>;
  /** Slice-wide usage, or one VM's; null for a VM that has no cgroup. */
  usage(): Promise<CapsUsage>;
  usage(vmId: string): Promise<CapsUsage | null>;
  /** The slice's CPUQuota in cores; null when it has none. */
  cpuQuotaCores(): Promise<number | null>;
  /** Kills whatever is left in the VM's cgroup and removes it. An unknown id is success. */
  removeVmCgroup(vmId: string): Promise<void>;
  /** Ids of the VM cgroups under the slice: leftovers after a crash, at agent start. */
  listVmCgroups(): Promise<string[]>;
  /** Removes every VM cgroup and the slice (when Hangar built it). For tests and uninstall. */
  removeSlice(): Promise<void>;
}

/** The leaf name of a VM's cgroup. */
export function vmCgroupName(vmId: string): string {
  if (!VM_ID.test(vmId)) throw new CapsError('caps-invalid', `VM id ${JSON.stringify(vmId)} is not usable as a cgroup name (expected ${VM_ID.source})`);
  return VM_CGROUP_PREFIX + vmId;
}

/** Picks the cgroup flavour: v2 only when its mount offers cpu, memory and pids. */
export async function createCaps(opts: CapsOptions): Promise<Caps> {
  const root = opts.root ?? '/sys/fs/cgroup';
  const sliceName = opts.sliceName ?? DEFAULT_SLICE;
  if (!SLICE.test(sliceName)) throw new CapsError('caps-invalid', `slice name ${JSON.stringify(sliceName)} must look like name.slice`);
  const backend = await pickBackend(opts, root, sliceName);
  return new CgroupCaps(backend, sliceName, {
    cpuQuotaPercent: opts.cpuQuotaPercent,
    memoryMaxBytes: opts.memoryMaxBytes,
    tasksMax: opts.tasksMax,
  });
}

async function pickBackend(opts: CapsOptions, root: string, sliceName: string): Promise<Backend> {
  if (opts.mode !== 'v1') {
    const mount = await findV2Mount(root);
    if (mount && (opts.mode === 'v2' || (await v2HasControllers(mount)))) {
      return new V2Backend(mount, sliceName, await selfCgroupV2(opts.procSelfCgroup));
    }
    if (opts.mode === 'v2') throw new CapsError('caps-unavailable', `no cgroup v2 mount under ${root}`);
  }
  const hierarchies = await findV1Hierarchies(root);
  if (hierarchies) return new V1Backend(hierarchies, sliceName);
  throw new CapsError(
    'caps-unavailable',
    `no usable cgroups under ${root}: need cgroup v2 with cpu, memory and pids controllers, or v1 hierarchies ${root}/{cpu,memory,pids}`,
  );
}

class CgroupCaps implements Caps {
  readonly mode: 'v1' | 'v2';

  constructor(
    private readonly backend: Backend,
    readonly sliceName: string,
    private readonly sliceLimits: CgroupLimits,
  ) {
    this.mode = backend.mode;
  }

  async ensureSlice(): Promise<void> {
    await this.backend.ensureSlice(this.sliceLimits);
  }

  async createVmCgroup(vmId: string, limits: VmCgroupLimits): Promise<VmCgroup> {
    const dirs = this.vmDirs(vmId);
    for (const parent of this.backend.vmParents) {
      if (!(await exists(parent))) throw new CapsError('caps-unavailable', `slice ${parent} does not exist: call ensureSlice() first`);
    }
    for (const dir of dirs) await ensureDir(dir);
    await this.backend.applyLimits(dirs, limits);
    return { vmId, path: dirs[this.backend.memoryIndex]!, procsFiles: dirs.map((d) => join(d, 'cgroup.procs')) };
  }

  usage(): Promise<CapsUsage>;
  usage(vmId: string): Promise<CapsUsage | null>;
  async usage(vmId?: string): Promise<CapsUsage | null> {
    if (vmId !== undefined) {
      const dirs = this.vmDirs(vmId);
      if (!(await exists(dirs[0]!))) return null;
      try {
        return await this.backend.readUsage(dirs);
      } catch (err) {
        // Removed while we read it (its VM ended): as if it had not been there.
        if (!(await exists(dirs[0]!))) return null;
        throw err;
      }
    }
    const slice = await this.backend.readUsage(this.backend.sliceDirs);
    if (this.backend.hierarchicalEvents) return slice;
    // v1 counts OOM kills only in the cgroup whose limit was hit; add the live VMs' so the
    // slice figure means "OOM kills under the slice" on both flavours (removed VMs drop out).
    for (const id of await this.listVmCgroups()) slice.oomKills += (await this.usage(id).catch(() => null))?.oomKills ?? 0;
    return slice;
  }

  async cpuQuotaCores(): Promise<number | null> {
    const q = await this.backend.readCpuQuota(this.backend.sliceDirs);
    return quotaCores(q.quotaUs, q.periodUs);
  }

  async removeVmCgroup(vmId: string): Promise<void> {
    for (const dir of this.vmDirs(vmId)) await killAndRemove(dir);
  }

  async listVmCgroups(): Promise<string[]> {
    const ids = new Set<string>();
    for (const parent of this.backend.vmParents) {
      for (const name of await childCgroups(parent)) {
        const id = name.slice(VM_CGROUP_PREFIX.length);
        if (name.startsWith(VM_CGROUP_PREFIX) && VM_ID.test(id)) ids.add(id);
      }
    }
    return [...ids].sort();
  }

  async removeSlice(): Promise<void> {
    for (const id of await this.listVmCgroups()) await this.removeVmCgroup(id);
    await this.backend.removeSlice();
  }

  private vmDirs(vmId: string): string[] {
    const name = vmCgroupName(vmId);
    return this.backend.vmParents.map((p) => join(p, name));
  }
}
