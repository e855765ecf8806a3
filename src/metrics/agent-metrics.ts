import { Gauge, Histogram, Registry } from 'prom-client';
import { VM_BOOT_BUCKETS } from '../domain/arc-metrics.js';
import { addBoot, emptyBoots, type BootSnapshot, type HostUsage } from '../domain/host-usage.js';

/**
 * The agent's own series on its `GET /metrics` (beside the isolation table's counters,
 * main/agent-network.ts): VMs running, slots, VM boot seconds, and its runner slice's CPU and
 * memory (as its last heartbeat sampled them, so a scrape does not shorten the CPU interval).
 * The boots also travel in the heartbeat (`boots`), so the control serves them for an agent
 * Prometheus cannot reach (a home box behind NAT).
 */
export interface AgentState {
  slots: { total: number; busy: number };
  vms: number;
}

export class AgentMetrics {
  readonly registry = new Registry();
  private snapshot: BootSnapshot = emptyBoots(VM_BOOT_BUCKETS);
  private usage: HostUsage | null = null;
  private state: (() => AgentState) | null = null;
  private readonly boot: Histogram;

  constructor() {
    const registers = [this.registry];
    this.boot = new Histogram({
      name: 'hangar_agent_vm_boot_seconds', help: 'VM boot: create to the guest\'s first metadata request (its /init up, its network on)',
      buckets: [...VM_BOOT_BUCKETS], registers,
    });
    const read = () => this.state?.() ?? null;
    new Gauge({
      name: 'hangar_agent_vms_running', help: 'VMs this agent runs now', registers,
      collect() {
        const s = read();
        if (s) this.set(s.vms);
      },
    });
    new Gauge({
      name: 'hangar_agent_slots', help: 'This host\'s VM slots, total and busy', labelNames: ['state'], registers,
      collect() {
        const s = read();
        if (!s) return;
        this.set({ state: 'total' }, s.slots.total);
        this.set({ state: 'busy' }, s.slots.busy);
      },
    });
    const usage = (name: string, help: string, pick: (u: HostUsage) => number | null) => {
      const self = this;
      new Gauge({
        name, help, registers,
        collect() {
          this.reset();
          const v = self.usage ? pick(self.usage) : null;
          if (v !== null) this.set(v);
        },
      });
    };
    usage('hangar_agent_slice_cpu_percent', 'CPU the runner slice used between the last two samples, in percent of its CPUQuota (of the host\'s CPUs without one)', (u) => u.cpuPercent);
    usage('hangar_agent_slice_memory_bytes', 'Memory the runner slice uses', (u) => u.memoryBytes);
    usage('hangar_agent_slice_memory_max_bytes', 'The runner slice\'s MemoryMax', (u) => u.memoryMaxBytes);
    usage('hangar_agent_slice_cpu_quota_cores', 'The runner slice\'s CPUQuota, in cores', (u) => u.cpuQuotaCores);
  }

  /** Where the gauges read slots and VMs (the agent, once it runs). */
  bind(state: () => AgentState): void {
    this.state = state;
  }

  booted(seconds: number): void {
    if (!Number.isFinite(seconds) || seconds < 0) return;
    this.boot.observe(seconds);
    this.snapshot = addBoot(this.snapshot, seconds, VM_BOOT_BUCKETS);
  }

  /** The slice's usage as the heartbeat just sampled it. */
  sampled(u: HostUsage | null): void {
    this.usage = u;
  }

  get boots(): BootSnapshot {
    return this.snapshot;
  }
}
