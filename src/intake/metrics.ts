import { Counter, Histogram, type Registry } from 'prom-client';
import { jobMetrics, type JobMetrics } from '../metrics/job-metrics.js';

/** Intake's Prometheus metrics. Labels are bounded sets: results, decision kinds, reasons, pools. */
export interface IntakeMetrics {
  deliveries: Counter<'result'>;
  decisions: Counter<'kind' | 'reason' | 'pool'>;
  latency: Histogram<'result'>;
  /** Refusals at intake, jobs completed (shared with the control's other routes). */
  jobs: JobMetrics;
}

export function intakeMetrics(registry: Registry, namespace: string): IntakeMetrics {
  return {
    jobs: jobMetrics(registry, namespace),
    deliveries: new Counter({
      name: 'hangar_webhook_deliveries_total',
      help: 'Webhook deliveries received, by result',
      labelNames: ['result'],
      registers: [registry],
    }),
    decisions: new Counter({
      name: 'hangar_policy_decisions_total',
      help: 'Policy decisions on newly seen workflow jobs',
      labelNames: ['kind', 'reason', 'pool'],
      registers: [registry],
    }),
    latency: new Histogram({
      name: 'hangar_intake_duration_seconds',
      help: 'Time from a webhook request to its answer',
      labelNames: ['result'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
  };
}
