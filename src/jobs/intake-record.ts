import type { Redis } from 'ioredis';
import type { Decision } from '../domain/policy.js';
import { movesInto } from '../domain/job-phase.js';
import { STATE_RANK, queueEffect } from '../domain/lifecycle.js';
import type { WorkflowJobEvent } from '../domain/workflow-job.js';
import type { PoolJobData } from '../queue/contracts.js';
import type { Keys } from '../queue/keys.js';
import type { Fence } from '../reconcile/leader.js';
import { EVENTS_MAXLEN } from './events.js';
import { readJobRecord, type JobRecord, type StaticFields } from './record.js';

/**
 * Records one verified `workflow_job` event in a single atomic script: delivery dedupe,
 * event dedupe (job id + action), the job record (GitHub's state only moves forward; Hangar's
 * phase starts `queued` or `refused`), the decision and GitHub's moves in the events stream
 * (events.ts), and the queue command in the outbox. Either all of it is stored or none, so a
 * 202 always means "stored" and a Redis failure means "nothing stored, GitHub may redeliver".
 *
 * The record is one hash: what never changes (repo, run, labels, decision…) as one JSON field
 * `job`, written once; what moves (state, timestamps, runner, conclusion) as fields of their own;
 * and `ev:<action>` per event seen, which is the event dedupe and lives as long as the record.
 * This shape is about Redis's CPU per delivery: splitting the JSON into ~16 hash fields inside
 * the script (cjson) cost more than the rest of the script together (see docs/benchmarks.md).
 */
export type RecordOutcome = 'created' | 'advanced' | 'stale' | 'duplicate-delivery' | 'duplicate-event' | 'fenced';

const script = (deliveryTtlSeconds: number, keepSeconds: number) => `
local action, rank, now, effect, jobId, runnerName = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5], ARGV[12]
-- A delivery the reconciler pulled is written only while its replica still leads (reconcile/leader.ts).
if KEYS[6] ~= '' and redis.call('GET', KEYS[6]) ~= ARGV[14] then return 'fenced' end
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ${deliveryTtlSeconds}) then return 'duplicate-delivery' end
local seen = redis.call('HMGET', KEYS[2], 'rank', 'ev:' .. action)
if seen[2] then return 'duplicate-event' end
local created = not seen[1]
-- A job first seen in progress or completed was never Hangar's to start: it never queues.
local firstPhase = ARGV[8] ~= 'accept' and 'refused' or (effect == 'enqueue' and 'queued' or 'cancelled')
local firstWhy = ARGV[10] ~= '' and ARGV[10] or (firstPhase == 'queued' and 'accepted' or 'first-seen-' .. action)
local fields = {'ev:' .. action, now}
if created then
  for _, v in ipairs({'job', ARGV[6], 'pool', ARGV[9], 'createdAt', now, 'phase', firstPhase, 'phaseAt', now, 'phaseBy', 'intake',
    'phaseWhy', firstWhy, 'at:' .. firstPhase, now}) do fields[#fields + 1] = v end
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '${EVENTS_MAXLEN}', '*', 'workflowJobId', jobId, 'at', now, 'type', 'decision', 'by', 'intake',
    'repo', ARGV[7], 'decision', ARGV[8], 'pool', ARGV[9], 'reason', ARGV[10], 'headBranch', ARGV[11], 'to', firstPhase)
end
local outcome = 'stale'
if rank > tonumber(seen[1] or '0') then
  for _, v in ipairs({'state', action, 'rank', rank, 'updatedAt', now, action .. 'At', now}) do fields[#fields + 1] = v end
  for i = 15, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('ZADD', KEYS[3], now, jobId)
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '${EVENTS_MAXLEN}', '*', 'workflowJobId', jobId, 'at', now, 'type', 'github', 'by', 'intake',
    'state', action, 'runnerName', runnerName)
  -- The outbox entry carries what the relay needs, so it never reads the record back.
  if effect == 'enqueue' then
    redis.call('XADD', KEYS[5], '*', 'op', effect, 'workflowJobId', jobId, 'data', ARGV[13])
  elseif effect == 'cancel' then
    local pool = created and ARGV[9] or redis.call('HGET', KEYS[2], 'pool')
    redis.call('XADD', KEYS[5], '*', 'op', effect, 'workflowJobId', jobId, 'pool', pool or '')
    -- GitHub finished the job before Hangar had to (cancelled, or a runner not Hangar's ran it).
    local phase = created and firstPhase or redis.call('HGET', KEYS[2], 'phase') or ''
    if string.find(',${movesInto('cancelled').join(',')},', ',' .. phase .. ',', 1, true) then
      for _, v in ipairs({'phase', 'cancelled', 'phaseAt', now, 'phaseBy', 'intake', 'phaseWhy', 'completed-on-github', 'at:cancelled', now}) do fields[#fields + 1] = v end
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', '${EVENTS_MAXLEN}', '*', 'workflowJobId', jobId, 'at', now, 'type', 'move', 'by', 'intake',
        'from', phase, 'to', 'cancelled', 'why', 'completed-on-github')
    end
  end
  outcome = created and 'created' or 'advanced'
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], ${keepSeconds})
return outcome
`;

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
    redis.defineCommand(command, { numberOfKeys: 6, lua: script(opts.deliveryTtlSeconds, keepSeconds) });
    this.run = (redis as unknown as Record<string, (...a: (string | number)[]) => Promise<RecordOutcome>>)[command]!.bind(redis);
  }
  /** The record of a job, as the intake's readers see it (record.ts). */
  read(workflowJobId: number): Promise<JobRecord | null> {
    return readJobRecord(this.redis, this.k, workflowJobId);
  }


  /** With `fence` (a reconcile leader's), nothing is written once another replica leads: `fenced`. */
  async record(deliveryId: string, ev: WorkflowJobEvent, decision: Decision, now = Date.now(), fence?: Fence): Promise<RecordOutcome> {
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
      this.k.delivery(deliveryId), this.k.job(ev.workflowJobId), this.k.jobIndex, this.k.events, this.k.outbox, fence?.key ?? '',
      ev.action, STATE_RANK[ev.action], now, effect, ev.workflowJobId, JSON.stringify(fields),
      ev.repo, decision.kind, pool ?? '', reason ?? '', ev.headBranch ?? '', ev.runnerName ?? '', data ? JSON.stringify(data) : '',
      fence?.value ?? '',
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

