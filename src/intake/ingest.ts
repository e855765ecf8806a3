import type { Counter } from 'prom-client';
import type { Logger } from 'pino';
import { decide, type Decision, type PolicyConfig } from '../domain/policy.js';
import { PayloadError, StoreError } from '../domain/errors.js';
import type { JobStore, RecordOutcome } from '../jobs/intake-record.js';
import type { JobMetrics } from '../metrics/job-metrics.js';
import type { Fence } from '../reconcile/leader.js';
import { parseWorkflowJob } from './parse.js';

/**
 * What happens to one delivery once its sender is trusted: parse → decide → record. The webhook
 * route calls it after the signature and content-type checks; the reconciler's deliveries loop
 * calls it with a delivery fetched from GitHub's API (App JWT over TLS: no HMAC to check), with
 * its fence, so both take exactly the same path and dedupe by the same delivery guid.
 */
export interface IngestDeps {
  policy: PolicyConfig;
  store: JobStore;
  logger: Logger;
  /** `hangar_policy_decisions_total`, when this intake reports to a registry. */
  decisions?: Counter<'kind' | 'reason' | 'pool'>;
  /** Refusals at intake and jobs completed (metrics/job-metrics.ts), when this intake reports to a registry. */
  jobs?: JobMetrics;
}

const DELIVERY_ID = /^[A-Za-z0-9-]{1,100}$/;

/** `X-GitHub-Delivery` if it looks like one (GitHub's are UUIDs), else null. */
export function deliveryIdOf(header: unknown): string | null {
  return typeof header === 'string' && DELIVERY_ID.test(header) ? header : null;
}

export interface Delivered {
  /** `X-GitHub-Delivery`, already checked to look like one; null when absent or malformed. */
  deliveryId: string | null;
  /** `X-GitHub-Event`. */
  event: string | undefined;
  /** The payload, read only when the event is one Hangar acts on (a ping's body is never parsed). */
  payload: () => unknown;
}

export type IngestLabel = 'ping' | 'ignored-event' | 'ignored-action' | 'ignored-hosted' | RecordOutcome;

export interface IngestResult {
  label: IngestLabel;
  decision?: Decision;
}

/**
 * Throws PayloadError (a field named) for a payload Hangar cannot use and StoreError when Redis
 * did not take it; `fenced` (only with `fence`) means nothing was written.
 */
export async function ingestDelivery(d: Delivered, deps: IngestDeps, fence?: Fence): Promise<IngestResult> {
  if (d.event === 'ping') return { label: 'ping' };
  if (d.event !== 'workflow_job') return { label: 'ignored-event' };
  if (d.deliveryId === null) throw new PayloadError('X-GitHub-Delivery', 'missing or not a delivery id');
  const ev = parseWorkflowJob(d.payload());
  if (!ev) return { label: 'ignored-action' };
  const decision = decide(ev, deps.policy);
  const log = deps.logger.child({ deliveryId: d.deliveryId, workflowJobId: ev.workflowJobId, action: ev.action });
  if (decision.kind === 'ignore') {
    log.debug('not a self-hosted job');
    return { label: 'ignored-hosted' };
  }
  let outcome: RecordOutcome;
  try {
    outcome = await deps.store.record(d.deliveryId, ev, decision, Date.now(), fence);
  } catch (err) {
    throw new StoreError('store-unavailable', `redis: ${(err as Error).message}`);
  }
  if (outcome === 'created') {
    deps.decisions?.inc({
      kind: decision.kind,
      reason: decision.kind === 'reject' ? decision.reason : '',
      pool: decision.kind === 'accept' ? decision.pool : '',
    });
    log.info({ repo: ev.repo, decision }, 'workflow job decided');
    if (decision.kind === 'reject') deps.jobs?.refused('intake', decision.reason);
  }
  // Counted by the replica whose script moved GitHub's state to completed (once: state only moves
  // forward), after the answer's work is done: a read of the record, off the webhook's answer.
  if (deps.jobs && outcome === 'advanced' && ev.action === 'completed') void countCompleted(deps, deps.jobs, ev.workflowJobId, ev.conclusion);
  return { label: outcome, decision };
}

/** A job the gate allowed on a Hangar runner completed on GitHub: ARC's completed counter and execution time. */
async function countCompleted(deps: IngestDeps, jobs: JobMetrics, workflowJobId: number, conclusion: string | null): Promise<void> {
  try {
    const r = await deps.store.read(workflowJobId);
    if (!r || r.pool === null || r.startDecision !== 'allow' || r.startAt === null) return;
    jobs.completed({ pool: r.pool, repo: r.repo, jobName: r.jobName, event: r.runEvent ?? '' }, conclusion, r.startAt);
  } catch (err) {
    deps.logger.debug({ workflowJobId, err: (err as Error).message }, 'metrics: completed job not counted');
  }
}
