/**
 * What a host's heartbeat says of its capped runner slice and its VMs' boots, beside its slots:
 * the agent reads its cgroups (caps/slice-usage.ts), the control stores it with the heartbeat
 * (jit/report-route.ts) and serves it (the dashboard's Hosts, /metrics). Pure.
 */

/** The runner slice against its caps. */
export interface HostUsage {
  /** CPU the slice used since the last sample, in percent of its CPUQuota (of the host's CPUs without one); null on the first sample. */
  cpuPercent: number | null;
  memoryBytes: number;
  /** The slice's MemoryMax; null when unlimited. */
  memoryMaxBytes: number | null;
  /** The slice's CPUQuota in cores (1.5 = 150 %); null when unlimited. */
  cpuQuotaCores: number | null;
}

/** Cumulative boots of this agent's VMs since it started, in the buckets of VM_BOOT_BUCKETS (domain/arc-metrics.ts). */
export interface BootSnapshot {
  count: number;
  sumSeconds: number;
  /** Boots at or under each bucket's bound, cumulative, one per bound. */
  buckets: number[];
}

export interface CpuSample {
  /** CPU time the slice used since it was made, ns. */
  cpuUsageNs: number;
  /** When it was read, ms. */
  atMs: number;
}

/**
 * CPU in percent of `cores` between two samples; null without an earlier one, or when the
 * counter went back (the slice was made anew) or no time passed.
 */
export function cpuPercent(prev: CpuSample | null, cur: CpuSample, cores: number): number | null {
  if (!prev || cores <= 0) return null;
  const wallNs = (cur.atMs - prev.atMs) * 1e6;
  const usedNs = cur.cpuUsageNs - prev.cpuUsageNs;
  if (wallNs <= 0 || usedNs < 0) return null;
  return Math.round((usedNs / wallNs / cores) * 1000) / 10;
}

/** The quota in cores from a CFS quota and period (µs); null for no quota (v2 `max`, v1 -1). */
export function quotaCores(quotaUs: number | null, periodUs: number | null): number | null {
  if (quotaUs === null || periodUs === null || quotaUs <= 0 || periodUs <= 0) return null;
  return quotaUs / periodUs;
}

/** A boot added to a snapshot (a new snapshot; the bounds are VM_BOOT_BUCKETS). */
export function addBoot(s: BootSnapshot, seconds: number, bounds: readonly number[]): BootSnapshot {
  return {
    count: s.count + 1,
    sumSeconds: s.sumSeconds + seconds,
    buckets: bounds.map((le, i) => (s.buckets[i] ?? 0) + (seconds <= le ? 1 : 0)),
  };
}

export const emptyBoots = (bounds: readonly number[]): BootSnapshot => ({ count: 0, sumSeconds: 0, buckets: bounds.map(() => 0) });
