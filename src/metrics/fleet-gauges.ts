import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { VM_BOOT_BUCKETS, poolGauges, type PoolGauges } from '../domain/arc-metrics.js';
import type { BootSnapshot, HostUsage } from '../domain/host-usage.js';
import { jobPhases } from '../jobs/record.js';
import type { Keys } from '../queue/keys.js';

/**
 * The control's gauges, read from Redis at scrape time: ARC's scale-set gauges per pool (from
 * the phases of the job records) and each host's slots, VMs, slice usage and VM boots (from its
 * heartbeat). Every replica would read the same numbers, and ARC's dashboard sums them
 * (`sum(gha_assigned_jobs{…})`), so only the reconcile leader serves them: `leads()` false → no
 * series at all. (Reconcile off: every replica serves them; run one replica then, or use max().)
 */
export interface FleetGaugeDeps {
  redis: Redis;
  keys: Keys;
  pools: readonly string[];
  hosts: readonly { name: string; role: string; pools: readonly string[] }[];
  /** This replica serves the gauges (it leads reconcile, or there is no reconcile). */
  leads: () => boolean;
}

/** The job records counted: those GitHub moved in the last 3 days (reconcile's open window). */
const WINDOW_MS = 3 * 24 * 3600 * 1000;
/** One read serves every gauge of a scrape. */
const FRESH_MS = 500;

interface StoredBeat {
  slots?: number;
  busy?: number;
  vms?: unknown[];
  usage?: HostUsage | null;
  boots?: BootSnapshot;
  draining?: boolean;
}

interface Snapshot {
  pools: Record<string, PoolGauges>;
  beats: Map<string, StoredBeat>;
}

export function fleetGauges(registry: Registry, d: FleetGaugeDeps): void {
  let cached: { at: number; p: Promise<Snapshot | null> } | null = null;
  const read = (): Promise<Snapshot | null> => {
    if (!d.leads()) return Promise.resolve(null);
    if (cached && Date.now() - cached.at < FRESH_MS) return cached.p;
    const p = snapshot(d).catch(() => null);
    cached = { at: Date.now(), p };
    return p;
  };
  const scale = (name: string, help: string, pick: (g: PoolGauges) => number) =>
    new Gauge({
      name, help, labelNames: ['enterprise', 'organization', 'repository', 'name', 'namespace'], registers: [registry],
      async collect() {
        const s = await read();
        this.reset();
        if (!s) return;
        for (const [pool, g] of Object.entries(s.pools)) this.set({ enterprise: '', organization: '', repository: '', name: pool, namespace: d.keys.prefix }, pick(g));
      },
    });
  scale('gha_assigned_jobs', 'Number of jobs assigned to this scale set.', (g) => g.assigned);
  scale('gha_running_jobs', 'Number of jobs running (or about to be run).', (g) => g.running);
  scale('gha_registered_runners', 'Number of runners registered by the scale set.', (g) => g.registered);
  scale('gha_busy_runners', 'Number of registered runners running a job.', (g) => g.busy);
  scale('gha_idle_runners', 'Number of registered runners not running a job.', (g) => g.idle);
  scale('gha_min_runners', 'Minimum number of runners.', (g) => g.min);
  scale('gha_max_runners', 'Maximum number of runners.', (g) => g.max);
  scale('gha_desired_runners', 'Number of runners desired by the scale set.', (g) => g.desired);

  const host = (name: string, help: string, pick: (b: StoredBeat) => number | null | undefined, extra: string[] = []) =>
    new Gauge({
      name, help, labelNames: ['host', ...extra], registers: [registry],
      async collect() {
        const s = await read();
        this.reset();
        if (!s) return;
        for (const [h, b] of s.beats) {
          const v = pick(b);
          if (typeof v === 'number' && Number.isFinite(v)) this.set({ host: h }, v);
        }
      },
    });
  new Gauge({
    name: 'hangar_host_up', help: 'A host whose heartbeat is there (1) or expired (0), by role', labelNames: ['host', 'role'], registers: [registry],
    async collect() {
      const s = await read();
      this.reset();
      if (!s) return;
      for (const h of d.hosts) this.set({ host: h.name, role: h.role }, s.beats.has(h.name) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'hangar_host_slots', help: 'A live host\'s VM slots, total and busy, from its heartbeat', labelNames: ['host', 'state'], registers: [registry],
    async collect() {
      const s = await read();
      this.reset();
      if (!s) return;
      for (const [h, b] of s.beats) {
        this.set({ host: h, state: 'total' }, b.slots ?? 0);
        this.set({ host: h, state: 'busy' }, b.busy ?? 0);
      }
    },
  });
  host('hangar_vms_running', 'VMs a live host runs now, from its heartbeat', (b) => b.vms?.length ?? 0);
  host('hangar_host_slice_cpu_percent', 'CPU the host\'s runner slice used, in percent of its CPUQuota (of the host\'s CPUs without one)', (b) => b.usage?.cpuPercent);
  host('hangar_host_slice_memory_bytes', 'Memory the host\'s runner slice uses', (b) => b.usage?.memoryBytes);
  host('hangar_host_slice_memory_max_bytes', 'The host\'s runner slice MemoryMax', (b) => b.usage?.memoryMaxBytes);
  host('hangar_host_slice_cpu_quota_cores', 'The host\'s runner slice CPUQuota, in cores', (b) => b.usage?.cpuQuotaCores);
  registry.registerMetric(bootHistogram(read) as never);
}

/**
 * `hangar_vm_boot_seconds{host}`: each agent's cumulative boot histogram as its heartbeat carries
 * it, served as a histogram (Prometheus's `histogram_quantile` and `rate` work on it; it resets
 * when an agent restarts, as a counter does). An agent behind NAT that Prometheus cannot reach
 * still shows its boots here.
 */
function bootHistogram(read: () => Promise<Snapshot | null>) {
  const name = 'hangar_vm_boot_seconds';
  const help = 'VM boot, create to the guest\'s first metadata request, per host (relayed from its agent\'s heartbeat)';
  const get = async () => {
    const s = await read();
    const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    for (const [host, b] of s?.beats ?? []) {
      const boots = b.boots;
      if (!boots || boots.buckets.length !== VM_BOOT_BUCKETS.length) continue;
      VM_BOOT_BUCKETS.forEach((le, i) => values.push({ metricName: `${name}_bucket`, labels: { host, le }, value: boots.buckets[i]! }));
      values.push({ metricName: `${name}_bucket`, labels: { host, le: '+Inf' }, value: boots.count });
      values.push({ metricName: `${name}_sum`, labels: { host }, value: boots.sumSeconds });
      values.push({ metricName: `${name}_count`, labels: { host }, value: boots.count });
    }
    return { name, help, type: 'histogram', aggregator: 'sum', values };
  };
  return { name, help, type: 'histogram', aggregator: 'sum', get, reset: () => undefined };
}

async function snapshot(d: FleetGaugeDeps): Promise<Snapshot> {
  const [rows, raw] = await Promise.all([
    jobPhases(d.redis, d.keys, WINDOW_MS),
    d.hosts.length ? d.redis.mget(...d.hosts.map((h) => d.keys.host(h.name))) : Promise.resolve([] as (string | null)[]),
  ]);
  const beats = new Map<string, StoredBeat>();
  d.hosts.forEach((h, i) => {
    const text = raw[i];
    if (!text) return;
    try {
      beats.set(h.name, JSON.parse(text) as StoredBeat);
    } catch {
      // A heartbeat the control wrote itself; unreadable only if something else wrote the key.
    }
  });
  const live = d.hosts.filter((h) => beats.has(h.name)).map((h) => ({ pools: h.pools, slots: beats.get(h.name)!.slots ?? 0 }));
  return { pools: poolGauges(d.pools, rows, live), beats };
}
