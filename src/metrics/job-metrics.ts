import { Counter, Histogram, type Registry } from 'prom-client';
import { ARC_RUNTIME_BUCKETS, JOB_LABELS, arcJobLabels, arcJobResult, egressDrops, type ArcJob } from '../domain/arc-metrics.js';

/**
 * The control's counters and histograms of what happens to jobs. Each is counted by the replica
 * that made the move, at the moment its atomic write succeeded (a move the transition table
 * refuses counts nothing), so one event is counted once across replicas and Prometheus sums the
 * replicas: `sum(rate(gha_started_jobs_total[5m]))`.
 *
 * - `gha_started_jobs_total`, `gha_job_startup_duration_seconds`: the gate allowed a job on the
 *   runner minted for a job of the pool (the move to `started`); startup is the started job's
 *   queued time (its record's creation at intake) to that answer, as ARC's scale-set assign →
 *   runner assign. `hangar_pickup_seconds{pool}` is the same interval with finer buckets.
 * - `gha_completed_jobs_total`, `gha_job_execution_duration_seconds`: GitHub's `completed` webhook
 *   recorded for a job the gate had allowed on a Hangar runner (ARC too skips jobs no runner took);
 *   execution is the gate's answer to that webhook.
 * - `hangar_refusals_total{stage,reason}`: intake (policy), vet (the run looked up after intake),
 *   mint (a runner asked for, or the sweep before one), start (the gate).
 * - `hangar_egress_drops_total{pool,kind}`: from a VM's egress log at its end.
 */
export type RefusalStage = 'intake' | 'vet' | 'mint' | 'start';

export interface JobMetrics {
  started(job: ArcJob, queuedAt: number | null, now?: number): void;
  completed(job: ArcJob, conclusion: string | null, startAt: number, now?: number): void;
  refused(stage: RefusalStage, reason: string): void;
  egress(pool: string, egress: unknown): void;
}

const byRegistry = new WeakMap<Registry, JobMetrics>();

/** The job metrics of one registry (made once: every route and unit of a control shares them). */
export function jobMetrics(registry: Registry, namespace: string): JobMetrics {
  let m = byRegistry.get(registry);
  if (!m) byRegistry.set(registry, (m = create(registry, namespace)));
  return m;
}

function create(registry: Registry, namespace: string): JobMetrics {
  const registers = [registry];
  const jobLabels = [...JOB_LABELS];
  const startedTotal = new Counter({ name: 'gha_started_jobs_total', help: 'Total number of jobs started.', labelNames: jobLabels, registers });
  const completedTotal = new Counter({ name: 'gha_completed_jobs_total', help: 'Total number of jobs completed.', labelNames: [...jobLabels, 'job_result'], registers });
  const startup = new Histogram({
    name: 'gha_job_startup_duration_seconds',
    help: 'Time spent waiting for workflow job to get started on the runner owned by the scale set (in seconds).',
    labelNames: jobLabels, buckets: [...ARC_RUNTIME_BUCKETS], registers,
  });
  const execution = new Histogram({
    name: 'gha_job_execution_duration_seconds',
    help: 'Time spent executing workflow jobs by the scale set (in seconds).',
    labelNames: [...jobLabels, 'job_result'], buckets: [...ARC_RUNTIME_BUCKETS], registers,
  });
  const pickup = new Histogram({
    name: 'hangar_pickup_seconds',
    help: 'From a job recorded queued at intake to the gate allowing it on a Hangar runner',
    labelNames: ['pool'], buckets: [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, 120, 300, 600, 1800, 3600], registers,
  });
  const refusals = new Counter({ name: 'hangar_refusals_total', help: 'Jobs (and runner requests) refused, by stage (intake, vet, mint, start) and reason', labelNames: ['stage', 'reason'], registers });
  const drops = new Counter({
    name: 'hangar_egress_drops_total',
    help: 'What VMs were refused, from their egress logs at VM end: destinations (address, protocol, port), their packets, DNS queries',
    labelNames: ['pool', 'kind'], registers,
  });
  return {
    started(job, queuedAt, now = Date.now()) {
      const l = arcJobLabels(job, namespace);
      startedTotal.inc(l);
      if (queuedAt === null) return;
      const seconds = Math.max(0, (now - queuedAt) / 1000);
      startup.observe(l, seconds);
      pickup.observe({ pool: job.pool }, seconds);
    },
    completed(job, conclusion, startAt, now = Date.now()) {
      const l = { ...arcJobLabels(job, namespace), job_result: arcJobResult(conclusion) };
      completedTotal.inc(l);
      execution.observe(l, Math.max(0, (now - startAt) / 1000));
    },
    refused(stage, reason) {
      refusals.inc({ stage, reason });
    },
    egress(pool, egress) {
      const d = egressDrops(egress);
      drops.inc({ pool, kind: 'destination' }, d.destinations);
      drops.inc({ pool, kind: 'packet' }, d.packets);
      drops.inc({ pool, kind: 'dns' }, d.dnsQueries);
    },
  };
}
