import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/schema.js';
import type { GitHubClient } from '../github/index.js';
import { readJobRecord } from '../jobs/record.js';
import { describeRefusal, jobMoves } from '../jobs/transition.js';
import type { Keys } from '../queue/keys.js';
import type { PoolQueues } from '../queue/pool-queues.js';
import type { ApiError, HostActionResult, JobActionResult } from './api-types.js';
import type { ReadModel } from './read-model.js';
import { canCancel, retryPlan } from './views.js';

/**
 * The operator's actions, each written to the events stream (`by: operator`, what, why) through
 * jobs/transition.ts. An answer is the result, or an ApiError with the HTTP status to send.
 */
export interface ActionDeps {
  config: ControlConfig;
  redis: Redis;
  keys: Keys;
  github: GitHubClient;
  queues: PoolQueues;
  model: ReadModel;
  logger: Logger;
}

export type Answer<T> = { ok: true; value: T } | { ok: false; status: number; error: ApiError };

const refuse = (status: number, error: string, message: string): Answer<never> => ({ ok: false, status, error: { error, message } });

/** Drain (or undrain) a host: a flag its heartbeat's answer carries to its agent, and the mint's backstop. */
export async function setDrain(d: ActionDeps, host: string, drain: boolean, why: string): Promise<Answer<HostActionResult>> {
  if (!d.config.hosts.some((h) => h.name === host)) return refuse(404, 'unknown-host', `no host named ${host} in the config`);
  const key = d.keys.hostDrain(host);
  if (drain) await d.redis.set(key, JSON.stringify({ at: Date.now(), why }));
  else await d.redis.del(key);
  await jobMoves(d.redis, d.keys).note(null, { by: 'operator', what: drain ? 'host-drained' : 'host-undrained', why: `${host}: ${why}` });
  d.logger.info({ host, why }, drain ? 'host drained by the operator' : 'host undrained by the operator');
  await d.model.refreshHosts();
  const message = drain
    ? `${host} takes no new jobs from its next heartbeat on; jobs it runs finish`
    : `${host} takes jobs again from its next heartbeat on`;
  return { ok: true, value: { ok: true, host, drained: drain, message } };
}

/** GitHub cancels runs, not jobs: a waiting job's run is cancelled; the webhooks then end its jobs. */
export async function cancelJob(d: ActionDeps, id: number, why: string): Promise<Answer<JobActionResult>> {
  const r = await readJobRecord(d.redis, d.keys, id);
  if (!r) return refuse(404, 'unknown-job', `no record of job ${id}`);
  if (!canCancel(r)) return refuse(409, 'not-waiting', `job ${id} is not waiting (phase ${r.phase ?? 'none'}, GitHub: ${r.state}): only a waiting job is cancelled`);
  const [owner, repo] = r.repo.split('/') as [string, string];
  const result = await d.github.cancelRun(owner, repo, r.runId);
  await jobMoves(d.redis, d.keys).note(id, { by: 'operator', what: 'run-cancelled', why, fields: { runCancelled: result, runCancelledFor: 'operator' } });
  d.logger.info({ workflowJobId: id, runId: r.runId, result }, 'run cancelled by the operator');
  await d.model.reread([id]);
  const message = result === 'cancelled'
    ? `GitHub cancels runs, not jobs: run ${r.runId} of ${r.repo} was cancelled, with every open job of it`
    : `run ${r.runId} of ${r.repo} had completed already`;
  return { ok: true, value: { ok: true, workflowJobId: id, action: 'cancel', how: 'run-cancelled', runId: r.runId, message } };
}

/**
 * A job Hangar failed that GitHub still holds queued gets a new try in its pool's queue; one
 * GitHub finished as failed is re-run on GitHub (a new job of a new run attempt follows).
 */
export async function retryJob(d: ActionDeps, id: number, why: string): Promise<Answer<JobActionResult>> {
  const r = await readJobRecord(d.redis, d.keys, id);
  if (!r) return refuse(404, 'unknown-job', `no record of job ${id}`);
  const plan = retryPlan(r);
  if (plan.how === null) return refuse(409, 'not-retryable', `job ${id} cannot be retried: ${plan.why}`);
  const jobs = jobMoves(d.redis, d.keys);
  const [owner, repo] = r.repo.split('/') as [string, string];
  let message: string;
  if (plan.how === 'rerun') {
    await d.github.rerunJob(owner, repo, id);
    await jobs.note(id, { by: 'operator', what: 'rerun-asked', why });
    message = `GitHub re-runs job ${id} of run ${r.runId} as a new job of a new run attempt`;
  } else {
    if (!r.pool || !d.queues.pools.includes(r.pool)) return refuse(409, 'not-retryable', `job ${id}'s pool ${r.pool ?? '(none)'} is not in the config`);
    const moved = await jobs.move(id, { to: 'queued', by: 'operator', why, operatorRetry: true });
    if (!moved.ok) return refuse(409, 'not-retryable', `job ${id} cannot be retried: ${describeRefusal(moved, 'queued')}`);
    const queued = await d.queues.requeue({
      workflowJobId: id, runId: r.runId, runAttempt: r.runAttempt, repo: r.repo, owner: r.owner, labels: [...r.labels], pool: r.pool,
      headBranch: r.headBranch ?? null, installationId: r.installationId, queuedAt: Date.now(),
    });
    message = `job ${id} is queued again in pool ${r.pool} (${queued})`;
  }
  d.logger.info({ workflowJobId: id, how: plan.how }, 'job retried by the operator');
  await d.model.reread([id]);
  return { ok: true, value: { ok: true, workflowJobId: id, action: 'retry', how: plan.how, runId: r.runId, message } };
}
