/**
 * Every Redis key Hangar writes, in one place, under one prefix (config `redis.prefix`), so
 * tests and several installations can share a server and an ACL can scope an agent to its pools.
 */
export interface Keys {
  prefix: string;
  delivery(deliveryId: string): string;
  /** A workflow job's record; it also remembers which of the job's events were seen (dedupe). */
  job(workflowJobId: number): string;
  /** Sorted set of workflow job ids by last update, for listings. */
  jobIndex: string;
  /** Stream of policy decisions (audit; the dashboard reads it). */
  decisions: string;
  /** Stream of queue commands written atomically with the job record (see queue/outbox.ts). */
  outbox: string;
  /** Which host holds the one runner of a job attempt (jit/claim.ts). */
  mintClaim(workflowJobId: number, runAttempt: number): string;
  /** Where the run vetter has read the decisions stream up to (gate/run-vetter.ts). */
  vetCursor: string;
}

export function keys(prefix: string): Keys {
  return {
    prefix,
    delivery: (id) => `${prefix}:delivery:${id}`,
    job: (id) => `${prefix}:job:${id}`,
    jobIndex: `${prefix}:jobs`,
    decisions: `${prefix}:decisions`,
    outbox: `${prefix}:outbox`,
    mintClaim: (id, attempt) => `${prefix}:mint:${id}:${attempt}`,
    vetCursor: `${prefix}:vet:cursor`,
  };
}

/** BullMQ queue name of a pool. BullMQ names may not contain `:`; pool names cannot. */
export const queueName = (pool: string): string => `pool-${pool}`;

/** BullMQ job id of a workflow job: one queue entry per workflow job, whatever repeats. */
export const queueJobId = (workflowJobId: number): string => `wj-${workflowJobId}`;
