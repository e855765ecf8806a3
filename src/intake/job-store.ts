import type { Redis } from 'ioredis';
import type { Decision } from '../domain/policy.js';
import { STATE_RANK, queueEffect } from '../domain/lifecycle.js';
import type { WorkflowJobEvent } from '../domain/workflow-job.js';
import type { PoolJobData } from '../queue/contracts.js';
import type { Keys } from '../queue/keys.js';

/**
 * Records one verified `workflow_job` event in a single atomic script: delivery dedupe,
 * event dedupe (job id + action), the job record (state only moves forward), the decision
 * audit entry and the queue command in the outbox. Either all of it is stored or none, so a
 * 202 always means "stored" and a Redis failure means "nothing stored, GitHub may redeliver".
 *
 * The record is one hash: what never changes (repo, run, labels, decision…) as one JSON field
 * `job`, written once; what moves (state, timestamps, runner, conclusion) as fields of their own;
 * and `ev:<action>` per event seen, which is the event dedupe and lives as long as the record.
 * This shape is about Redis's CPU per delivery: splitting the JSON into ~16 hash fields inside
 * the script (cjson) cost more than the rest of the script together (see docs/benchmarks.md).
 */
export type RecordOutcome = 'created' | 'advanced' | 'stale' | 'duplicate-delivery' | 'duplicate-event';

const script = (deliveryTtlSeconds: number, keepSeconds: number) => `
local action, rank, now, effect, jobId = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5]
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ${deliveryTtlSeconds}) then return 'duplicate-delivery' end
local seen = redis.call('HMGET', KEYS[2], 'rank', 'ev:' .. action)
if seen[2] then return 'duplicate-event' end
local created = not seen[1]
local fields = {'ev:' .. action, now}
if created then
  for _, v in ipairs({'job', ARGV[6], 'pool', ARGV[9], 'createdAt', now}) do fields[#fields + 1] = v end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '10000', '*', 'workflowJobId', jobId, 'at', now,
    'repo', ARGV[7], 'decision', ARGV[8], 'pool', ARGV[9], 'reason', ARGV[10], 'headBranch', ARGV[11])
end
local outcome = 'stale'
if rank > tonumber(seen[1] or '0') then
  for _, v in ipairs({'state', action, 'rank', rank, 'updatedAt', now, action .. 'At', now}) do fields[#fields + 1] = v end
  for i = 13, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('ZADD', KEYS[3], now, jobId)
  -- The outbox entry carries what the relay needs, so it never reads the record back.
  if effect == 'enqueue' then
    redis.call('XADD', KEYS[5], '*', 'op', effect, 'workflowJobId', jobId, 'data', ARGV[12])
  elseif effect == 'cancel' then
    local pool = created and ARGV[9] or redis.call('HGET', KEYS[2], 'pool')
    redis.call('XADD', KEYS[5], '*', 'op', effect, 'workflowJobId', jobId, 'pool', pool or '')
  end
  outcome = created and 'created' or 'advanced'
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ${keepSeconds})
return outcome
`;

/** The part of a record that never changes after the first event (stored as JSON). */
export type StaticFields = Pick<
  WorkflowJobEvent,
  'repo' | 'owner' | 'repoId' | 'visibility' | 'runId' | 'runAttempt' | 'jobName' | 'workflowName' | 'labels' | 'headBranch' | 'headSha' | 'installationId'
> & {
  decision: Decision['kind'];
  pool: string | null;
  reason: string | null;
  firstDeliveryId: string;
};

export interface JobStoreOptions {
  deliveryTtlSeconds: number;
  /** How long a job record is kept after its last event (the dashboard's history). */
  keepSeconds?: number;
}

export class JobStore {
  private readonly run: (...args: (string | number)[]) => Promise<RecordOutcome>;
  private corked = false;
  /** record() calls so far: the intake's load, which paces the outbox relay (outbox-worker.ts). */
  calls = 0;

  constructor(
    private readonly redis: Redis,
    private readonly k: Keys,
    opts: JobStoreOptions,
  ) {
    const keepSeconds = opts.keepSeconds ?? 14 * 24 * 3600;
    for (const [name, n] of [['deliveryTtlSeconds', opts.deliveryTtlSeconds], ['keepSeconds', keepSeconds]] as const) {
      if (!Number.isInteger(n) || n <= 0) throw new Error(`JobStore: ${name} must be a positive integer, got ${n}`);
    }
    // The TTLs are part of the script's text: fewer arguments to build and send per delivery.
    const command = `hangarRecordEvent_${opts.deliveryTtlSeconds}_${keepSeconds}`;
    redis.defineCommand(command, { numberOfKeys: 5, lua: script(opts.deliveryTtlSeconds, keepSeconds) });
    this.run = (redis as unknown as Record<string, (...a: (string | number)[]) => Promise<RecordOutcome>>)[command]!.bind(redis);
  }

  async record(deliveryId: string, ev: WorkflowJobEvent, decision: Decision, now = Date.now()): Promise<RecordOutcome> {
    this.calls++;
    const pool = decision.kind === 'accept' ? decision.pool : null;
    const reason = decision.kind === 'reject' ? decision.reason : null;
    const fields: StaticFields = {
      repo: ev.repo,
      owner: ev.owner,
      repoId: ev.repoId,
      visibility: ev.visibility,
      runId: ev.runId,
      runAttempt: ev.runAttempt,
      jobName: ev.jobName,
      workflowName: ev.workflowName,
      labels: ev.labels,
      headBranch: ev.headBranch,
      headSha: ev.headSha,
      installationId: ev.installationId,
      decision: decision.kind,
      pool,
      reason,
      firstDeliveryId: deliveryId,
    };
    const effect = queueEffect(ev.action, decision, ev.runnerName);
    // The queue entry, when this event enqueues: a job is enqueued only by the event that creates its record.
    const data: PoolJobData | null =
      effect === 'enqueue' && pool !== null
        ? {
            workflowJobId: ev.workflowJobId,
            runId: ev.runId,
            runAttempt: ev.runAttempt,
            repo: ev.repo,
            owner: ev.owner,
            labels: ev.labels,
            pool,
            headBranch: ev.headBranch,
            installationId: ev.installationId,
            queuedAt: now,
          }
        : null;
    const args: (string | number)[] = [
      this.k.delivery(deliveryId), this.k.job(ev.workflowJobId), this.k.jobIndex, this.k.decisions, this.k.outbox,
      ev.action, STATE_RANK[ev.action], now, effect, ev.workflowJobId, JSON.stringify(fields),
      ev.repo, decision.kind, pool ?? '', reason ?? '', ev.headBranch ?? '', data ? JSON.stringify(data) : '',
    ];
    if (ev.runnerId !== null) args.push('runnerId', ev.runnerId);
    if (ev.runnerName !== null) args.push('runnerName', ev.runnerName);
    if (ev.conclusion !== null) args.push('conclusion', ev.conclusion);
    this.coalesceWrites();
    return this.run(...args);
  }

  /**
   * Deliveries that arrive in one event-loop turn share one socket write: the connection is
   * corked until the turn's I/O is done. Unlike ioredis's auto-pipelining, this never holds a
   * command back until the previous batch is answered. (Each its own write() was about a sixth
   * of the main thread's time under load.)
   */
  private coalesceWrites(): void {
    const socket = this.redis.stream;
    if (this.corked || this.redis.status !== 'ready' || !socket) return;
    this.corked = true;
    socket.cork();
    setImmediate(() => {
      this.corked = false;
      socket.uncork();
    });
  }
}

/** Removes index entries of jobs whose last event is older than `keepSeconds` (their records have expired). */
export async function trimJobIndex(redis: Redis, k: Keys, keepSeconds = 14 * 24 * 3600, now = Date.now()): Promise<number> {
  return redis.zremrangebyscore(k.jobIndex, '-inf', now - keepSeconds * 1000);
}

/** A job record as stored, read back (the relay, `hangar` commands and the dashboard use it). */
export interface JobRecord extends StaticFields {
  workflowJobId: number;
  state: 'queued' | 'in_progress' | 'completed';
  /** The runner GitHub gave the job (its webhooks say), and the one Hangar minted for it (they can differ). */
  runnerName: string | null;
  mintedRunner: string | null;
  conclusion: string | null;
  createdAt: number;
  updatedAt: number;
}

export async function readJobRecord(redis: Redis, k: Keys, workflowJobId: number): Promise<JobRecord | null> {
  return toRecord(workflowJobId, await redis.hgetall(k.job(workflowJobId)));
}

function toRecord(workflowJobId: number, h: Record<string, string>): JobRecord | null {
  if (!h.state || !h.job) return null;
  return {
    ...(JSON.parse(h.job) as StaticFields),
    workflowJobId,
    state: h.state as JobRecord['state'],
    runnerName: h.runnerName || null,
    mintedRunner: h.mintedRunner || null,
    conclusion: h.conclusion || null,
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
  };
}
