/**
 * What differs between cgroup v1 and v2 hides behind this small interface; create-caps.ts
 * holds what is the same (naming, listing, removal).
 */

/** Limits for one cgroup. Absent fields leave the kernel's default (no limit). */
export interface CgroupLimits {
  /** Hard CPU cap in percent of one core (150 = 1.5 cores). */
  cpuQuotaPercent?: number;
  /** Relative CPU share among siblings, systemd's scale: 1..10000, default 100. */
  cpuWeight?: number;
  memoryMaxBytes?: number;
  tasksMax?: number;
}

export interface CapsUsage {
  /** CPU time used, in nanoseconds, since the cgroup was made. */
  cpuUsageNs: number;
  memoryBytes: number;
  /** null when unlimited. */
  memoryMaxBytes: number | null;
  tasks: number;
  /** CFS periods in which the cgroup hit its quota (nr_throttled). */
  throttledPeriods: number;
  /** Tasks the OOM killer killed in this cgroup. */
  oomKills: number;
}

export interface Backend {
  readonly mode: 'v1' | 'v2';
  /** Directories that together are the slice, read for slice-wide usage: one per v1 hierarchy, one on v2. */
  readonly sliceDirs: string[];
  /**
   * Where VM cgroups are made, parallel to sliceDirs. The slice itself on v1; on v2 under
   * systemd, the agent's delegated cgroup inside the slice (systemd owns the slice's files).
   */
  readonly vmParents: string[];
  /** Index into vmParents of the memory controller's directory (the one a VM's `path` names). */
  readonly memoryIndex: number;
  /** Whether the slice's events (oom_kill) already count its children. v1 counts locally only. */
  readonly hierarchicalEvents: boolean;
  /** Makes the slice and sets its limits; idempotent. */
  ensureSlice(limits: CgroupLimits): Promise<void>;
  /** Sets limits on a cgroup that exists in every one of `dirs`. */
  applyLimits(dirs: string[], limits: CgroupLimits): Promise<void>;
  readUsage(dirs: string[]): Promise<CapsUsage>;
  /** The CFS quota and period of a cgroup, µs; quota null when it has none. */
  readCpuQuota(dirs: string[]): Promise<{ quotaUs: number | null; periodUs: number | null }>;
  /** Removes the slice directories this backend made (and nothing it was given). */
  removeSlice(): Promise<void>;
}

/** systemd's CPUWeight → v1 cpu.shares mapping: weight 100 (the default) is 1024 shares. */
export function weightToShares(weight: number): number {
  return Math.max(2, Math.min(262_144, Math.round((weight * 1024) / 100)));
}

/** CFS period used for quotas: the kernel's default, 100 ms. */
export const CFS_PERIOD_US = 100_000;

export function quotaUs(percent: number): number {
  return Math.round((percent * CFS_PERIOD_US) / 100);
}
