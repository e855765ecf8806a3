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
  /** Stream of every decision and phase move of a job, with who and why (jobs/events.ts). */
  events: string;
  /** Stream of queue commands written atomically with the job record (see queue/outbox.ts). */
  outbox: string;
  /** Which host holds the one runner of a job attempt (jit/claim.ts). */
  mintClaim(workflowJobId: number, runAttempt: number): string;
  /** A host's heartbeat, written by the control from the agent's report (jit/report-route.ts); expires with its agent. */
  host(name: string): string;
  /** Where the run vetter has read the events stream up to (gate/run-vetter.ts). */
  vetCursor: string;
  /** The reconcile leader lock (`<token>|<replica>`) and the fencing token counter (reconcile/leader.ts). */
  leader: string;
  leaderToken: string;
  /** A reconcile loop's own state between passes (a cursor), so the next leader carries on. */
  reconcileState(loop: string): string;
  /** The rate budget every GitHub call draws from, shared by all control replicas. */
  rateBudget: string;
  /** A workflow run's facts that never change (queue/run-facts.ts), so it is read from GitHub once. */
  runFacts(runId: number): string;
  /** Set while a repository's open runs count as swept (jit/sweep.ts), so mints close together list them once. */
  swept(repository: string): string;
  /** The operator drained this host (dashboard): JSON `{at, why}`; the heartbeat's answer tells its agent. */
  hostDrain(name: string): string;
  /** Hash of revoked host tokens, tokenSha256 → JSON `{host, at}` (`hangar host remove`; jit/host-revocation.ts). */
  hostsRevoked: string;
  /** A dashboard session, by the sha256 of its id (the id itself is only in the browser's cookie); TTL = the session's life. */
  dashboardSession(idSha256: string): string;
  /** Billed seconds of every job a Hangar runner ran, per calendar month (UTC `YYYY-MM`): the savings' ledger. */
  savingsLedger(month: string): string;
}

export function keys(prefix: string): Keys {
  return {
    prefix,
    delivery: (id) => `${prefix}:delivery:${id}`,
    job: (id) => `${prefix}:job:${id}`,
    jobIndex: `${prefix}:jobs`,
    events: `${prefix}:events`,
    outbox: `${prefix}:outbox`,
    mintClaim: (id, attempt) => `${prefix}:mint:${id}:${attempt}`,
    vetCursor: `${prefix}:vet:cursor`,
    host: (name) => `${prefix}:host:${name}`,
    leader: `${prefix}:reconcile:leader`,
    leaderToken: `${prefix}:reconcile:token`,
    reconcileState: (loop) => `${prefix}:reconcile:state:${loop}`,
    rateBudget: `${prefix}:github:budget`,
    runFacts: (id) => `${prefix}:run:${id}`,
    swept: (repository) => `${prefix}:swept:${repository.toLowerCase()}`,
    hostDrain: (name) => `${prefix}:drain:${name}`,
    hostsRevoked: `${prefix}:hosts:revoked`,
    dashboardSession: (h) => `${prefix}:dash:session:${h}`,
    savingsLedger: (month) => `${prefix}:dash:savings:${month}`,
  };
}

/** BullMQ queue name of a pool. BullMQ names may not contain `:`; pool names cannot. */
export const queueName = (pool: string): string => `pool-${pool}`;

/** BullMQ job id of a workflow job: one queue entry per workflow job, whatever repeats. */
export const queueJobId = (workflowJobId: number): string => `wj-${workflowJobId}`;
