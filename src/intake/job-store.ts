import type { Redis } from 'ioredis';
import type { Decision } from '../domain/policy.js';
import { STATE_RANK, queueEffect } from '../domain/lifecycle.js';
import type { WorkflowJobEvent } from '../domain/workflow-job.js';
import type { Keys } from '../queue/keys.js';

/**
 * Records one verified `workflow_job` event in a single atomic script: delivery dedupe,
 * event dedupe (job id + action), the job record (state only moves forward), the decision
 * audit entry and the queue command in the outbox. Either all of it is stored or none, so a
 * 202 always means "stored" and a Redis failure means "nothing stored, GitHub may redeliver".
 */
export type RecordOutcome = 'created' | 'advanced' | 'stale' | 'duplicate-delivery' | 'duplicate-event';

const SCRIPT = `
local AUDITED = { repo = true, decision = true, pool = true, reason = true, headBranch = true }
local ttl, state, rank, now = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local effect, jobId, keepSeconds = ARGV[5], ARGV[6], tonumber(ARGV[7])
local function pairsOf(json)
  local out = {}
  for k, v in pairs(cjson.decode(json)) do out[#out + 1] = k; out[#out + 1] = tostring(v) end
  return out
end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ttl) then return 'duplicate-delivery' end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl) then return 'duplicate-event' end
local created = redis.call('EXISTS', KEYS[3]) == 0
local old = tonumber(redis.call('HGET', KEYS[3], 'rank') or '0')
if created then
  local fields = pairsOf(ARGV[8])
  redis.call('HSET', KEYS[3], 'createdAt', now, unpack(fields))
  local audit = {'workflowJobId', jobId, 'at', now}
  for i = 1, #fields, 2 do
    if AUDITED[fields[i]] then audit[#audit + 1] = fields[i]; audit[#audit + 1] = fields[i + 1] end
  end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', '10000', '*', unpack(audit))
end
if rank <= old then return 'stale' end
local updates = pairsOf(ARGV[9])
for _, v in ipairs({'state', state, 'rank', rank, 'updatedAt', now, state .. 'At', now}) do updates[#updates + 1] = v end
redis.call('HSET', KEYS[3], unpack(updates))
redis.call('EXPIRE', KEYS[3], keepSeconds)
redis.call('ZADD', KEYS[4], now, jobId)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', tonumber(now) - keepSeconds * 1000)
if effect ~= 'none' then
  redis.call('XADD', KEYS[6], '*', 'op', effect, 'workflowJobId', jobId)
end
if created then return 'created' end
return 'advanced'
`;

export interface JobStoreOptions {
  deliveryTtlSeconds: number;
  /** How long a job record is kept after its last event (the dashboard's history). */
  keepSeconds?: number;
}

export class JobStore {
  private readonly keepSeconds: number;

  constructor(
    private readonly redis: Redis,
    private readonly k: Keys,
    private readonly opts: JobStoreOptions,
  ) {
    this.keepSeconds = opts.keepSeconds ?? 14 * 24 * 3600;
    redis.defineCommand('hangarRecordEvent', { numberOfKeys: 6, lua: SCRIPT });
  }

  async record(deliveryId: string, ev: WorkflowJobEvent, decision: Decision, now = Date.now()): Promise<RecordOutcome> {
    // Two JSON arguments rather than ~40: building and writing each argument is most of the
    // client's cost per delivery. Numbers travel as strings: Lua's tostring would round ids past 14 digits.
    const staticFields = JSON.stringify({
      repo: ev.repo,
      owner: ev.owner,
      repoId: String(ev.repoId),
      visibility: ev.visibility,
      runId: String(ev.runId),
      runAttempt: String(ev.runAttempt),
      jobName: ev.jobName,
      workflowName: ev.workflowName ?? '',
      labels: JSON.stringify(ev.labels),
      headBranch: ev.headBranch ?? '',
      headSha: ev.headSha,
      installationId: ev.installationId === null ? '' : String(ev.installationId),
      decision: decision.kind,
      pool: decision.kind === 'accept' ? decision.pool : '',
      reason: decision.kind === 'reject' ? decision.reason : '',
      firstDeliveryId: deliveryId,
    });
    const updates = JSON.stringify({
      ...(ev.runnerId !== null ? { runnerId: String(ev.runnerId) } : {}),
      ...(ev.runnerName !== null ? { runnerName: ev.runnerName } : {}),
      ...(ev.conclusion !== null ? { conclusion: ev.conclusion } : {}),
    });
    const k = this.k;
    const run = (this.redis as unknown as Record<string, (...a: (string | number)[]) => Promise<RecordOutcome>>).hangarRecordEvent!;
    return run.call(
      this.redis,
      k.delivery(deliveryId), k.event(ev.workflowJobId, ev.action), k.job(ev.workflowJobId), k.jobIndex, k.decisions, k.outbox,
      this.opts.deliveryTtlSeconds, ev.action, STATE_RANK[ev.action], now,
      queueEffect(ev.action, decision), ev.workflowJobId, this.keepSeconds, staticFields, updates,
    );
  }
}


/** A job record as stored, read back (the relay, `hangar` commands and the dashboard use it). */
export interface JobRecord {
  workflowJobId: number;
  repo: string;
  owner: string;
  visibility: string;
  runId: number;
  runAttempt: number;
  jobName: string;
  workflowName: string | null;
  labels: string[];
  headBranch: string | null;
  installationId: number | null;
  decision: 'accept' | 'reject' | 'ignore';
  pool: string | null;
  reason: string | null;
  state: 'queued' | 'in_progress' | 'completed';
  runnerName: string | null;
  conclusion: string | null;
  createdAt: number;
  updatedAt: number;
}

export async function readJobRecord(redis: Redis, k: Keys, workflowJobId: number): Promise<JobRecord | null> {
  return toRecord(workflowJobId, await redis.hgetall(k.job(workflowJobId)));
}

/** Several records in one round trip (the outbox relay reads a batch at a time). */
export async function readJobRecords(redis: Redis, k: Keys, ids: readonly number[]): Promise<Map<number, JobRecord>> {
  const pipe = redis.pipeline();
  for (const id of ids) pipe.hgetall(k.job(id));
  const replies = (await pipe.exec()) ?? [];
  const out = new Map<number, JobRecord>();
  replies.forEach(([err, h], i) => {
    if (err) throw err;
    const rec = toRecord(ids[i]!, h as Record<string, string>);
    if (rec) out.set(ids[i]!, rec);
  });
  return out;
}

function toRecord(workflowJobId: number, h: Record<string, string>): JobRecord | null {
  if (!h.state) return null;
  const orNull = (v: string | undefined) => (v ? v : null);
  return {
    workflowJobId,
    repo: h.repo ?? '',
    owner: h.owner ?? '',
    visibility: h.visibility ?? '',
    runId: Number(h.runId),
    runAttempt: Number(h.runAttempt),
    jobName: h.jobName ?? '',
    workflowName: orNull(h.workflowName),
    labels: JSON.parse(h.labels ?? '[]') as string[],
    headBranch: orNull(h.headBranch),
    installationId: h.installationId ? Number(h.installationId) : null,
    decision: h.decision as JobRecord['decision'],
    pool: orNull(h.pool),
    reason: orNull(h.reason),
    state: h.state as JobRecord['state'],
    runnerName: orNull(h.runnerName),
    conclusion: orNull(h.conclusion),
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
  };
}
