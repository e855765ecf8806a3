import type { Redis } from 'ioredis';
import { FINAL_PHASES, JOB_PHASES, isJobPhase, type JobPhase } from '../domain/job-phase.js';
import type { WorkflowJobEvent } from '../domain/workflow-job.js';
import type { Decision } from '../domain/policy.js';
import type { Keys } from '../queue/keys.js';

/**
 * A job's record: one Redis hash per workflow job, owned by this module. The intake creates it
 * (intake-record.ts), everything else changes it through a transition (transition.ts), and every
 * read goes through `readJobRecord` here, so its fields are named and typed in one place.
 *
 * Fields as stored:
 * - `job`: JSON of what never changes (StaticFields), written once by the intake;
 * - GitHub's side, from its webhooks: `state` (queued → in_progress → completed, forward only),
 *   `rank`, `runnerId`, `runnerName` (the runner GitHub gave the job), `conclusion`, `<state>At`, `ev:<action>`;
 * - Hangar's side: `phase`, `phaseAt`, `phaseBy`, `phaseWhy`, `at:<phase>` (last time in it);
 *   `host`, `mintedRunner`, `mintedAt` (the runner minted for it), `spentRunner` (one refused at start);
 *   the gate's `startRunner`/`startHost`/`startAt`/`startDecision`/`startRefusal`/`startedJob`
 *   (on the record of the job that started: the one GitHub handed the runner);
 *   the VM's end `vmOutcome`/`vmExitCode`/`vmMs`/`vmReason`/`consoleTail`/`egress`, `tries`;
 *   refusals `mintRefusal`/`vetRefusal`, and `runCancelled`/`runCancelledFor`;
 *   reconcile's `stuck` (when it was last flagged stuck, ms) and `stuckWhy` (domain/stuck-jobs.ts);
 *   `vmId` (the latest VM's), `startAt` (the gate's answer), `runEvent` (the run's event, e.g.
 *   `schedule`, from the first reader of the run: the vetter, the mint or the gate).
 */

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

export interface VmEndFields {
  outcome: string;
  exitCode: number | null;
  ms: number | null;
  reason: string | null;
  /** The end of the VM's console, bounded and with secrets redacted (failed VMs only). */
  consoleTail: string | null;
}

export interface JobRecord extends StaticFields {
  workflowJobId: number;
  /** GitHub's state of the job, from its webhooks. */
  state: 'queued' | 'in_progress' | 'completed';
  /** Hangar's phase (domain/job-phase.ts); null for a record written before phases existed. */
  phase: JobPhase | null;
  phaseAt: number | null;
  phaseBy: string | null;
  phaseWhy: string | null;
  /** The runner GitHub gave the job (its webhooks say), and the one Hangar minted for it (they can differ). */
  runnerName: string | null;
  mintedRunner: string | null;
  /** When its latest runner was minted (ms). */
  mintedAt: number | null;
  spentRunner: string | null;
  /** The host that minted its runner. */
  host: string | null;
  conclusion: string | null;
  /** The job the runner minted for this one was handed, as the gate saw it. */
  startedJob: number | null;
  /** When the gate answered for this job (it was the one a runner was handed), and what it answered. */
  startAt: number | null;
  startDecision: 'allow' | 'deny' | null;
  startRefusal: string | null;
  mintRefusal: string | null;
  vetRefusal: string | null;
  /** GitHub's answer when Hangar cancelled the job's run, and for which refusal. */
  runCancelled: string | null;
  runCancelledFor: string | null;
  vm: VmEndFields | null;
  /** The VM's egress log (JSON from the host's own table), when its VM ended. */
  egress: unknown;
  /** When reconcile last flagged it stuck (a new reason), and why (domain/stuck-jobs.ts). */
  stuck: number | null;
  stuckWhy: string | null;
  /** VMs booted for it so far. */
  tries: number;
  /** The latest VM's id (set with `vm-up`). */
  vmId: string | null;
  /** The run's event (`push`, `pull_request`, `schedule`…), once something read the run. */
  runEvent: string | null;
  /** The last time it entered each phase (`at:<phase>`, ms). */
  at: Partial<Record<JobPhase, number>>;
  /** When GitHub's webhooks said each state (`<state>At`, ms; the delivery's arrival). */
  githubAt: { queued: number | null; inProgress: number | null; completed: number | null };
  createdAt: number;
  updatedAt: number;
}

export async function readJobRecord(redis: Redis, k: Keys, workflowJobId: number): Promise<JobRecord | null> {
  return toRecord(workflowJobId, await redis.hgetall(k.job(workflowJobId)));
}

/** Removes index entries of jobs whose last event is older than `keepSeconds` (their records have expired). */
export async function trimJobIndex(redis: Redis, k: Keys, keepSeconds = 14 * 24 * 3600, now = Date.now()): Promise<number> {
  return redis.zremrangebyscore(k.jobIndex, '-inf', now - keepSeconds * 1000);
}

const num = (s: string | undefined): number | null => (s === undefined || s === '' || Number.isNaN(Number(s)) ? null : Number(s));
const str = (s: string | undefined): string | null => (s === undefined || s === '' ? null : s);

export function toRecord(workflowJobId: number, h: Record<string, string>): JobRecord | null {
  if (!h.state || !h.job) return null;
  const vm: VmEndFields | null = h.vmOutcome
    ? { outcome: h.vmOutcome, exitCode: num(h.vmExitCode), ms: num(h.vmMs), reason: str(h.vmReason), consoleTail: str(h.consoleTail) }
    : null;
  return {
    ...(JSON.parse(h.job) as StaticFields),
    workflowJobId,
    state: h.state as JobRecord['state'],
    phase: isJobPhase(h.phase) ? h.phase : null,
    phaseAt: num(h.phaseAt),
    phaseBy: str(h.phaseBy),
    phaseWhy: str(h.phaseWhy),
    runnerName: str(h.runnerName),
    mintedRunner: str(h.mintedRunner),
    mintedAt: num(h.mintedAt),
    spentRunner: str(h.spentRunner),
    host: str(h.host),
    conclusion: str(h.conclusion),
    startedJob: num(h.startedJob),
    startAt: num(h.startAt),
    startDecision: h.startDecision === 'allow' || h.startDecision === 'deny' ? h.startDecision : null,
    startRefusal: str(h.startRefusal),
    mintRefusal: str(h.mintRefusal),
    vetRefusal: str(h.vetRefusal),
    runCancelled: str(h.runCancelled),
    runCancelledFor: str(h.runCancelledFor),
    vm,
    egress: h.egress ? (JSON.parse(h.egress) as unknown) : null,
    stuck: num(h.stuck),
    stuckWhy: str(h.stuckWhy),
    tries: num(h.tries) ?? 0,
    vmId: str(h.vmId),
    runEvent: str(h.runEvent),
    at: phaseTimes(h),
    githubAt: { queued: num(h.queuedAt), inProgress: num(h.in_progressAt), completed: num(h.completedAt) },
    createdAt: Number(h.createdAt),
    updatedAt: Number(h.updatedAt),
  };
}

function phaseTimes(h: Record<string, string>): Partial<Record<JobPhase, number>> {
  const at: Partial<Record<JobPhase, number>> = {};
  for (const p of JOB_PHASES) {
    const t = num(h[`at:${p}`]);
    if (t !== null) at[p] = t;
  }
  return at;
}

/** Records of these jobs (null where there is none), read in pipelined batches of 500. */
export async function readJobRecords(redis: Redis, k: Keys, ids: readonly number[]): Promise<(JobRecord | null)[]> {
  const out: (JobRecord | null)[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const batch = ids.slice(i, i + 500);
    const pipe = redis.pipeline();
    for (const id of batch) pipe.hgetall(k.job(id));
    const rows = (await pipe.exec()) ?? [];
    rows.forEach(([err, h], j) => {
      if (err) throw err;
      out.push(toRecord(batch[j]!, h as Record<string, string>));
    });
  }
  return out;
}

/** The ids of the `limit` jobs GitHub moved last, newest first. */
export async function recentJobIds(redis: Redis, k: Keys, limit: number): Promise<number[]> {
  return (await redis.zrevrange(k.jobIndex, 0, limit - 1)).map(Number);
}

const SET_RUN_EVENT = `if redis.call('EXISTS', KEYS[1]) == 1 and not redis.call('HGET', KEYS[1], 'runEvent') then redis.call('HSET', KEYS[1], 'runEvent', ARGV[1]) end return 1`;

/**
 * Keeps the run's event on a job's record (the webhook does not carry it; whoever reads the run
 * first says it). Written once, no event in the stream: it is a fact about the run, not a move.
 */
export async function keepRunEvent(redis: Redis, k: Keys, workflowJobId: number, event: string): Promise<void> {
  await redis.eval(SET_RUN_EVENT, 1, k.job(workflowJobId), event);
}

/**
 * Records of jobs Hangar may still act on (a phase that is not final), among those GitHub moved in
 * the last `withinMs`: what reconcile's loops look at. Read in pipelined batches.
 */
export async function openJobRecords(redis: Redis, k: Keys, withinMs: number, now = Date.now()): Promise<JobRecord[]> {
  const ids = (await redis.zrangebyscore(k.jobIndex, now - withinMs, '+inf')).map(Number);
  return (await readJobRecords(redis, k, ids)).filter((r): r is JobRecord => r?.phase != null && !FINAL_PHASES.includes(r.phase));
}

/**
 * Pool and phase of every job GitHub moved in the last `withinMs` (two fields per record, read
 * in pipelined batches): what the control's gauges count (metrics/fleet-gauges.ts).
 */
export async function jobPhases(redis: Redis, k: Keys, withinMs: number, now = Date.now()): Promise<{ workflowJobId: number; pool: string | null; phase: JobPhase | null }[]> {
  const ids = (await redis.zrangebyscore(k.jobIndex, now - withinMs, '+inf')).map(Number);
  const out: { workflowJobId: number; pool: string | null; phase: JobPhase | null }[] = [];
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    const pipe = redis.pipeline();
    for (const id of batch) pipe.hmget(k.job(id), 'pool', 'phase');
    const rows = (await pipe.exec()) ?? [];
    rows.forEach(([err, v], j) => {
      if (err) throw err;
      const [pool, phase] = v as [string | null, string | null];
      out.push({ workflowJobId: batch[j]!, pool: pool || null, phase: isJobPhase(phase) ? phase : null });
    });
  }
  return out;
}
