import type { PoolConfig, HostConfig } from '../config/schema.js';
import { FINAL_PHASES, OPERATOR_RETRY_FROM, type JobPhase } from '../domain/job-phase.js';
import { parseRunnerName } from '../domain/mint-policy.js';
import { stuckWhy, WAITING_PHASES, type HostView as StuckHost, type StuckWhy } from '../domain/stuck-jobs.js';
import type { JobEvent } from '../jobs/events.js';
import type { JobRecord } from '../jobs/record.js';
import type { HostUsage, HostView, JobDetail, JobEventView, JobResult, JobView, PhaseTimes, PoolView, RefusalView, RefusalWhere } from './api-types.js';

/**
 * The contract's views (api-types.ts) made from job records, heartbeats and the config. Pure:
 * no Redis, no clock but the `now` passed in.
 */

/** Phases in which the job's VM ended, or Hangar gave up on it. */
const END_PHASES: readonly JobPhase[] = ['ran', 'not-run', 'timed-out', 'lost', 'failed', 'refused-at-start'];
const RUNNING_PHASES: readonly JobPhase[] = ['vm-up', 'started'];

export const isLive = (r: JobRecord): boolean => r.phase !== null && !FINAL_PHASES.includes(r.phase);

/** A waiting job, as pools count it: GitHub still holds it queued and Hangar has no VM up for it. */
export const isWaiting = (r: JobRecord): boolean => r.state === 'queued' && r.phase !== null && WAITING_PHASES.includes(r.phase);
export const isRunning = (r: JobRecord): boolean => r.phase !== null && RUNNING_PHASES.includes(r.phase) && r.state !== 'completed';

export function phaseTimes(r: JobRecord): PhaseTimes {
  const ends = END_PHASES.map((p) => r.at[p]).filter((t): t is number => t !== undefined && t >= (r.at['vm-up'] ?? r.at.minted ?? 0));
  const finishedCandidates = [...ends, ...(r.githubAt.completed !== null ? [r.githubAt.completed] : []), ...(r.phase === 'cancelled' && r.at.cancelled ? [r.at.cancelled] : [])];
  return {
    queued: r.at.queued ?? r.githubAt.queued ?? r.createdAt,
    minted: r.at.minted ?? r.mintedAt ?? null,
    vmUp: r.at['vm-up'] ?? null,
    started: r.at.started ?? null,
    finished: finishedCandidates.length > 0 && !isLive(r) ? Math.min(...finishedCandidates) : (r.githubAt.completed ?? null),
  };
}

const CONCLUSION_WORD: Record<string, JobResult> = { success: 'succeeded', failure: 'failed', cancelled: 'cancelled' };

export function resultOf(r: JobRecord): JobResult {
  if (refusalOf(r) !== null && r.conclusion !== 'success') return 'refused';
  if (r.state === 'completed') return CONCLUSION_WORD[r.conclusion ?? ''] ?? r.conclusion ?? 'cancelled';
  if (r.phase === 'failed' || r.phase === 'timed-out') return 'failed';
  if (r.phase === 'cancelled') return 'cancelled';
  if (r.phase !== null && RUNNING_PHASES.includes(r.phase)) return 'running';
  if (r.phase === 'ran') return 'running';
  return 'waiting';
}

/** Where and why a job was refused: the first refusal on its record (intake, vet, mint, start). */
export function refusalOf(r: JobRecord): { where: RefusalWhere; why: string; at: number } | null {
  if (r.decision === 'reject') return { where: 'intake', why: r.reason ?? 'rejected', at: r.at.refused ?? r.createdAt };
  if (r.vetRefusal) return { where: 'vet', why: r.vetRefusal, at: r.at.refused ?? r.updatedAt };
  if (r.mintRefusal) return { where: 'mint', why: r.mintRefusal, at: r.at.refused ?? r.updatedAt };
  if (r.startRefusal) return { where: 'start', why: r.startRefusal, at: r.startAt ?? r.updatedAt };
  // Refused by the mint's sweep before this change wrote mintRefusal beside it (records kept 14 days).
  if (r.phase === 'refused' && r.runCancelledFor) return { where: 'mint', why: r.runCancelledFor, at: r.at.refused ?? r.updatedAt };
  return null;
}

export function jobView(r: JobRecord): JobView {
  return {
    workflowJobId: r.workflowJobId,
    runId: r.runId,
    runAttempt: r.runAttempt,
    repo: r.repo,
    owner: r.owner,
    workflow: r.workflowName ?? null,
    jobName: r.jobName,
    labels: [...r.labels],
    headBranch: r.headBranch ?? null,
    event: r.runEvent,
    pool: r.pool,
    host: r.host,
    vm: r.vmId,
    phase: r.phase,
    phaseBy: r.phaseBy,
    phaseWhy: r.phaseWhy,
    state: r.state,
    conclusion: r.conclusion,
    times: phaseTimes(r),
    github: { queuedAt: r.githubAt.queued, inProgressAt: r.githubAt.inProgress, completedAt: r.githubAt.completed },
    result: resultOf(r),
    stuckWhy: isWaiting(r) ? ((r.stuckWhy as StuckWhy | null) ?? null) : null,
    tries: r.tries,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
  };
}

export function refusalView(r: JobRecord): RefusalView | null {
  const f = refusalOf(r);
  if (!f) return null;
  return { workflowJobId: r.workflowJobId, repo: r.repo, jobName: r.jobName, workflow: r.workflowName ?? null, headBranch: r.headBranch ?? null, where: f.where, why: f.why, at: f.at };
}

export type RetryHow = { how: 'requeued' | 'rerun' } | { how: null; why: string };

/** What retry would do with this job (the action answers 409 with `why` when `how` is null). */
export function retryPlan(r: JobRecord): RetryHow {
  if (r.phase !== null && OPERATOR_RETRY_FROM.includes(r.phase) && r.state === 'queued') return { how: 'requeued' };
  if (r.state === 'completed' && r.conclusion === 'failure') return { how: 'rerun' };
  if (r.state === 'completed') return { how: null, why: `GitHub finished it as ${r.conclusion ?? 'unknown'}: only a failed job is re-run` };
  return { how: null, why: `it has not failed (phase ${r.phase ?? 'none'}, GitHub: ${r.state})` };
}

export const canCancel = (r: JobRecord): boolean => isWaiting(r);

export function jobDetail(r: JobRecord, events: readonly JobEvent[]): JobDetail {
  const ref = refusalOf(r);
  return {
    ...jobView(r),
    headSha: r.headSha ?? null,
    visibility: r.visibility,
    runnerName: r.runnerName,
    mintedRunner: r.mintedRunner,
    phases: { ...r.at },
    vmEnd: r.vm ? { outcome: r.vm.outcome, exitCode: r.vm.exitCode, ms: r.vm.ms, reason: r.vm.reason } : null,
    consoleTail: r.vm?.consoleTail ?? null,
    egress: r.egress ?? null,
    refusal: ref ? { where: ref.where, why: ref.why } : null,
    actions: { cancel: canCancel(r), retry: retryPlan(r).how !== null },
    events: events.map(eventView),
  };
}

export const eventView = (e: JobEvent): JobEventView => ({ id: e.id, at: e.at, type: e.type, by: e.by, fields: { ...e.fields } });

/** A heartbeat as the control stores it (jit/report-route.ts). Everything optional: read defensively. */
export interface Beat {
  slots?: number;
  busy?: number;
  vms?: { vmId: string; workflowJobId: number }[];
  usage?: unknown;
  draining?: boolean;
  driver?: string;
  accel?: string;
  at?: number;
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** The slice's usage as the heartbeat carries it (jit/report-route.ts `usage`). */
function usageOf(b: Beat): HostUsage | null {
  const u = b.usage as Record<string, unknown> | null | undefined;
  if (!u || typeof u !== 'object') return null;
  const usage: HostUsage = {
    cpuPercent: numOrNull(u.cpuPercent),
    memoryBytes: numOrNull(u.memoryBytes),
    memoryMaxBytes: numOrNull(u.memoryMaxBytes),
    cpuQuotaCores: numOrNull(u.cpuQuotaCores),
  };
  return Object.values(usage).some((v) => v !== null) ? usage : null;
}

export function hostView(h: HostConfig, beat: Beat | null, drained: boolean): HostView {
  const accel = beat?.accel === 'kvm' || beat?.accel === 'tcg' ? beat.accel : null;
  return {
    name: h.name,
    role: h.role,
    pools: [...h.pools],
    up: beat !== null,
    lastBeatAt: beat ? (numOrNull(beat.at) ?? null) : null,
    draining: beat?.draining === true,
    drained,
    slots: beat ? { used: numOrNull(beat.busy) ?? 0, total: numOrNull(beat.slots) ?? 0 } : null,
    vms: beat?.vms ? beat.vms.map((v) => ({ vmId: String(v.vmId), workflowJobId: Number(v.workflowJobId) })) : [],
    driver: typeof beat?.driver === 'string' ? beat.driver : null,
    accelerator: accel,
    usage: beat ? usageOf(beat) : null,
  };
}

/** The stuck-jobs reasoning's view of the hosts (a drained host is taking no new job). */
export const stuckHosts = (hosts: readonly HostView[]): StuckHost[] =>
  hosts.map((h) => ({ name: h.name, pools: h.pools, beat: h.up && h.slots ? { slots: h.slots.total, busy: h.slots.used, draining: h.draining || h.drained } : null }));

export function poolView(p: PoolConfig, jobs: Iterable<JobRecord>, hosts: readonly HostView[], configPools: readonly string[]): PoolView {
  let waiting = 0;
  let running = 0;
  let oldest: JobRecord | null = null;
  for (const r of jobs) {
    if (r.pool !== p.name) continue;
    if (isWaiting(r)) {
      waiting++;
      if (!oldest || r.createdAt < oldest.createdAt) oldest = r;
    } else if (isRunning(r)) running++;
  }
  return {
    name: p.name,
    labels: [...p.labels],
    deploy: p.deploy !== undefined,
    hosts: hosts.filter((h) => h.pools.includes(p.name)).map((h) => h.name),
    waiting,
    running,
    oldestWaiting: oldest ? { workflowJobId: oldest.workflowJobId, since: oldest.createdAt, why: stuckWhy(oldest, configPools, stuckHosts(hosts)) } : null,
  };
}

/** A job GitHub ran on a Hangar runner, and how long (in_progress → completed), for the savings. */
export function billedRun(r: JobRecord): { ms: number; completedAt: number } | null {
  if (r.state !== 'completed' || r.githubAt.completed === null || r.githubAt.inProgress === null) return null;
  if (!r.runnerName || parseRunnerName(r.runnerName) === null) return null;
  return { ms: Math.max(0, r.githubAt.completed - r.githubAt.inProgress), completedAt: r.githubAt.completed };
}
