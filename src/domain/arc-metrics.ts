import type { JobPhase } from './job-phase.js';

/**
 * What Hangar's /metrics says in actions-runner-controller's words (its gha-runner-scale-set
 * listener, cmd/ghalistener/metrics), so ARC's published Grafana dashboard reads a Hangar
 * installation: a pool is a scale set (`name`), the installation's Redis prefix its `namespace`.
 * Pure: the numbers from the phases of the job records and the hosts' heartbeats, tested from tables.
 */

/** ARC's default buckets for gha_job_startup_duration_seconds and gha_job_execution_duration_seconds. */
export const ARC_RUNTIME_BUCKETS: readonly number[] = [
  0.01, 0.05, 0.1, 0.5, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 15, 18, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100,
  110, 120, 150, 180, 210, 240, 300, 360, 420, 480, 540, 600, 900, 1200, 1800, 2400, 3000, 3600,
];

/** Buckets of a VM's boot (create → the guest's first metadata request), on the agent and relayed by the control. */
export const VM_BOOT_BUCKETS: readonly number[] = [0.5, 1, 1.5, 2, 3, 4, 5, 7.5, 10, 15, 20, 30, 60];

/** ARC's scale-set labels: the gauges' label set. */
export const SCALE_SET_LABELS = ['enterprise', 'organization', 'repository', 'name', 'namespace'] as const;
/** ARC's default job labels (counters and histograms), plus `name`/`namespace`: one control serves every pool. */
export const JOB_LABELS = ['enterprise', 'organization', 'repository', 'job_name', 'event_name', 'name', 'namespace'] as const;
export type JobLabel = (typeof JOB_LABELS)[number] | 'job_result';

/**
 * ARC's `job_result` is the runner service's result (succeeded, failed, canceled, skipped);
 * GitHub's webhook says the conclusion. The four that mean the same map; any other conclusion
 * (timed_out, neutral, action_required, stale) keeps GitHub's spelling.
 */
export function arcJobResult(conclusion: string | null): string {
  switch (conclusion) {
    case 'success': return 'succeeded';
    case 'failure': return 'failed';
    case 'cancelled': return 'canceled';
    case 'skipped': return 'skipped';
    default: return conclusion ?? '';
  }
}

export interface ArcJob {
  pool: string;
  /** `owner/name`. */
  repo: string;
  jobName: string;
  /** The run's event (push, pull_request, schedule, …), as the gate read it from GitHub; '' unknown. */
  event: string;
}

/** ARC's job labels: organization is the owner, repository the name alone (as ARC's OwnerName / RepositoryName). */
export function arcJobLabels(j: ArcJob, namespace: string): Record<(typeof JOB_LABELS)[number], string> {
  const slash = j.repo.indexOf('/');
  return {
    enterprise: '',
    organization: slash < 0 ? '' : j.repo.slice(0, slash),
    repository: slash < 0 ? j.repo : j.repo.slice(slash + 1),
    job_name: j.jobName,
    event_name: j.event,
    name: j.pool,
    namespace,
  };
}

/** ARC's scale-set gauges for one pool. */
export interface PoolGauges {
  assigned: number;
  running: number;
  registered: number;
  busy: number;
  idle: number;
  desired: number;
  min: number;
  max: number;
}

/** Phases of a job accepted into a pool that Hangar still owes (or has given) a runner: ARC's "assigned". */
const ASSIGNED: readonly JobPhase[] = ['queued', 'minted', 'vm-up', 'started', 'refused-at-start', 'not-run', 'lost'];
/** A JIT runner registered for the job that has not started a job yet. */
const IDLE: readonly JobPhase[] = ['minted', 'vm-up'];

export interface PoolJobRow {
  pool: string | null;
  phase: JobPhase | null;
}

export interface HostBeatView {
  pools: readonly string[];
  slots: number;
}

/**
 * Per pool, from the phases of its job records and the live hosts' heartbeats:
 * - assigned: accepted jobs not in a final phase (waiting, being given a runner, or running);
 * - running = busy: jobs the gate allowed on the runner minted for them (`started`);
 * - idle: runners minted (a VM booting or up) that have not started a job; registered = idle + busy;
 * - max: the slots of the live hosts serving the pool (a host serving two pools counts for both);
 *   min: 0 (no warm pool); desired: ARC's own rule, min(min + assigned, max).
 */
export function poolGauges(pools: readonly string[], rows: readonly PoolJobRow[], beats: readonly HostBeatView[]): Record<string, PoolGauges> {
  const out: Record<string, PoolGauges> = {};
  for (const p of pools) {
    const max = beats.filter((b) => b.pools.includes(p)).reduce((n, b) => n + b.slots, 0);
    out[p] = { assigned: 0, running: 0, registered: 0, busy: 0, idle: 0, desired: 0, min: 0, max };
  }
  for (const r of rows) {
    const g = r.pool === null || r.phase === null ? undefined : out[r.pool];
    if (!g || !r.phase) continue;
    if (ASSIGNED.includes(r.phase)) g.assigned++;
    if (r.phase === 'started') g.running++;
    if (IDLE.includes(r.phase)) g.idle++;
  }
  for (const g of Object.values(out)) {
    g.busy = g.running;
    g.registered = g.idle + g.busy;
    g.desired = Math.min(g.min + g.assigned, g.max);
  }
  return out;
}

/** A VM's egress drops, from the egress log its agent reported at its end. */
export interface EgressDrops {
  /** Denied connection attempts, one per destination, protocol and port (lines kept + lines only counted). */
  destinations: number;
  /** Packets of those attempts (the kept lines only). */
  packets: number;
  /** DNS queries the forwarder refused. */
  dnsQueries: number;
}

const count = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.min(Math.floor(v), 1e9) : 0);

/**
 * Reads the egress log (agent/guest-network.ts EgressRecord: `denied[]` with `packets`,
 * `deniedOverflow`, `dns.names[]` with `denied`). It came from an agent: anything that is not
 * that shape counts nothing, and every number is bounded.
 */
export function egressDrops(egress: unknown): EgressDrops {
  const out: EgressDrops = { destinations: 0, packets: 0, dnsQueries: 0 };
  if (!egress || typeof egress !== 'object') return out;
  const e = egress as { denied?: unknown; deniedOverflow?: unknown; dns?: { names?: unknown } };
  const denied = Array.isArray(e.denied) ? e.denied.slice(0, 10_000) : [];
  out.destinations = denied.length + count(e.deniedOverflow);
  for (const d of denied) out.packets += count((d as { packets?: unknown } | null)?.packets);
  const names = Array.isArray(e.dns?.names) ? e.dns.names.slice(0, 10_000) : [];
  for (const n of names) out.dnsQueries += count((n as { denied?: unknown } | null)?.denied);
  return out;
}
