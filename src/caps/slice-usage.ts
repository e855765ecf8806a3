import { availableParallelism } from 'node:os';
import { cpuPercent, type CpuSample, type HostUsage } from '../domain/host-usage.js';
import type { Caps } from './create-caps.js';

/**
 * The runner slice's usage for the heartbeat: memory now against MemoryMax, and CPU since the
 * previous sample against the slice's CPUQuota (or the host's CPUs when it has none). One
 * sampler per agent; the first sample has no interval yet, so no CPU figure.
 */
export class SliceUsage {
  private prev: CpuSample | null = null;

  constructor(
    private readonly caps: Pick<Caps, 'usage' | 'cpuQuotaCores'>,
    private readonly hostCpus = availableParallelism(),
  ) {}

  async sample(now = Date.now()): Promise<HostUsage> {
    const [u, cores] = await Promise.all([this.caps.usage(), this.caps.cpuQuotaCores()]);
    const cur = { cpuUsageNs: u.cpuUsageNs, atMs: now };
    const percent = cpuPercent(this.prev, cur, cores ?? this.hostCpus);
    this.prev = cur;
    return { cpuPercent: percent, memoryBytes: u.memoryBytes, memoryMaxBytes: u.memoryMaxBytes, cpuQuotaCores: cores };
  }
}
