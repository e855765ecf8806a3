import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/schema.js';
import { installationIdOf } from '../config/installation-id.js';
import type { GitHubClient } from '../github/index.js';
import type { JobStore } from '../jobs/intake-record.js';
import type { Keys } from '../queue/keys.js';
import type { PoolQueues } from '../queue/pool-queues.js';
import { createDeliveriesLoop } from './deliveries.js';
import { hostsLoop } from './hosts.js';
import type { AnyLoop } from './loop.js';
import { owedJobsLoop } from './owed-jobs.js';
import { queuedRunsLoop } from './queued-runs.js';
import { runnersLoop } from './runners.js';
import { stuckJobsLoop } from './stuck-jobs.js';
import type { JobMetrics } from '../metrics/job-metrics.js';

/** What every loop may use: the control's own connections and client, nothing of the agents'. */
export interface LoopDeps {
  config: ControlConfig;
  redis: Redis;
  keys: Keys;
  github: GitHubClient;
  /** The intake's record path: a pulled delivery or a found queued job goes in exactly like a webhook. */
  store: JobStore;
  logger: Logger;
  installationId: string;
  /** Refusals at intake and completed jobs of pulled deliveries (metrics/job-metrics.ts), when the control has a registry. */
  jobs?: JobMetrics;
  /** The pools' queues, for the loops that put a job back in one (owed-jobs). */
  queues?: PoolQueues;
}

export function loopDeps(d: Omit<LoopDeps, 'installationId'>): LoopDeps {
  return { ...d, installationId: installationIdOf(d.config) };
}

/** The control's reconcile loops, in the order a `--once` pass runs them. */
export function createLoops(d: LoopDeps): AnyLoop[] {
  // `reconcile.enabled: false` with a pulling intake: the deliveries loop only (it is the intake).
  if (!d.config.reconcile.enabled) return [createDeliveriesLoop(d)];
  // Jobs in first (what GitHub announced, then what it did not), then hosts, runners, and what is stuck.
  const loops: AnyLoop[] = [createDeliveriesLoop(d), queuedRunsLoop(d), hostsLoop(d), runnersLoop(d), stuckJobsLoop(d)];
  // Jobs whose runner ran another job, still queued on GitHub: back in their queue.
  if (d.queues) loops.push(owedJobsLoop({ ...d, queues: d.queues }));
  return loops;
}
