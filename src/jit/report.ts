import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/schema.js';
import { phaseForVmEnd, type JobPhase, type VmEnd } from '../domain/job-phase.js';
import type { GitHubClient } from '../github/index.js';
import { readJobRecord } from '../jobs/record.js';
import { describeRefusal, jobMoves } from '../jobs/transition.js';
import type { JobMetrics } from '../metrics/job-metrics.js';
import type { Keys } from '../queue/keys.js';
import { releaseJobAttempt } from './claim.js';
import type { KnownHost } from './host-auth.js';

/**
 * What an agent reports of a job it took: its VM came up, its VM ended (and how), or the agent
 * gave up on it. The agent never writes the control's keys: it reports here, and the control
 * moves the job (jobs/transition.ts). Only the host that minted the job's runner may report on it.
 */
export type JobReport =
  | { kind: 'vm-up'; vmId: string; runnerName: string }
  | {
      kind: 'vm-ended';
      end: VmEnd;
      vmId: string;
      runnerName: string;
      vmMs: number;
      exitCode?: number | null;
      reason?: string;
      /** The job the runner was handed, when the gate saw one. */
      startedJob?: number | null;
      consoleTail?: string;
      egress?: unknown;
    }
  | { kind: 'failed'; reason: string; attempts: number };

export type ReportResult =
  | { kind: 'ok'; phase: JobPhase }
  | { kind: 'unknown-job' }
  | { kind: 'not-yours'; host: string | null }
  | { kind: 'illegal'; message: string };

export interface ReportDeps {
  config: ControlConfig;
  github: GitHubClient;
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** Egress drops from VMs' egress logs (metrics/job-metrics.ts). */
  jobs?: JobMetrics;
}

/** The console tail kept on a record: bounded here too, whatever the agent sent. */
export const CONSOLE_TAIL_MAX = 8192;

export async function reportJob(deps: ReportDeps, host: KnownHost, workflowJobId: number, r: JobReport): Promise<ReportResult> {
  const record = await readJobRecord(deps.redis, deps.keys, workflowJobId);
  if (!record) return { kind: 'unknown-job' };
  // Giving up on a job no host has minted for yet (the control failed every try) is for any host
  // that serves its pool: else the job would read "queued" after Hangar stopped trying.
  const unminted = r.kind === 'failed' && record.host === null && record.pool !== null && host.pools.includes(record.pool);
  if (record.host !== host.name && !unminted) return { kind: 'not-yours', host: record.host };
  const jobs = jobMoves(deps.redis, deps.keys);
  const by = `host:${host.name}`;
  const log = deps.logger.child({ host: host.name, workflowJobId });

  if (r.kind === 'vm-up') {
    const moved = await jobs.move(workflowJobId, { to: 'vm-up', by, why: r.vmId, fields: { vmId: r.vmId, tries: record.tries + 1 }, onlyIf: { field: 'mintedRunner', equals: r.runnerName } });
    return moved.ok ? { kind: 'ok', phase: 'vm-up' } : { kind: 'illegal', message: describeRefusal(moved, 'vm-up') };
  }
  if (r.kind === 'failed') {
    const moved = await jobs.move(workflowJobId, { to: 'failed', by, why: r.reason, fields: { failedAfterAttempts: r.attempts } });
    if (moved.ok) log.warn({ reason: r.reason, attempts: r.attempts }, 'job failed: Hangar gave up on it');
    return moved.ok ? { kind: 'ok', phase: 'failed' } : { kind: 'illegal', message: describeRefusal(moved, 'failed') };
  }

  const fields: Record<string, string | number> = { vmOutcome: r.end, vmMs: Math.round(r.vmMs) };
  if (r.exitCode !== undefined && r.exitCode !== null) fields.vmExitCode = r.exitCode;
  if (r.reason) fields.vmReason = r.reason;
  if (r.consoleTail) fields.consoleTail = r.consoleTail.slice(-CONSOLE_TAIL_MAX);
  if (r.egress !== undefined) fields.egress = JSON.stringify(r.egress);
  // Refused at start: the gate moved the job already; this only adds how its VM ended.
  if (r.end === 'refused-at-start') {
    await jobs.note(workflowJobId, { by, what: 'vm-ended', why: r.end, fields });
    if (record.pool && r.egress !== undefined) deps.jobs?.egress(record.pool, r.egress);
    return { kind: 'ok', phase: 'refused-at-start' };
  }
  const to = phaseForVmEnd(r.end);
  // A VM that ran no job, or vanished: its runner is deleted below, so it is spent, and the job
  // is owed a runner again (mint-policy.ts: a job minted for before is owed none while that one lives).
  const spent = r.end === 'not-run' || r.end === 'lost';
  if (spent) fields.spentRunner = r.runnerName;
  const moved = await jobs.move(workflowJobId, {
    to, by, why: r.reason ?? r.end, fields, onlyIf: { field: 'mintedRunner', equals: r.runnerName }, ...(spent ? { remove: ['mintedRunner'] } : {}),
  });
  if (!moved.ok) {
    // Refused: the record stays as it was; the stream keeps what was reported.
    await jobs.note(workflowJobId, { by, what: 'vm-ended', why: `${r.end} (${r.vmMs} ms): ${describeRefusal(moved, to)}` });
    return { kind: 'illegal', message: describeRefusal(moved, to) };
  }
  // Counted with the move (a repeated report is refused above and counts nothing).
  if (record.pool && r.egress !== undefined) deps.jobs?.egress(record.pool, r.egress);
  // Its runner never ran a job: it must not linger registered, offline, waiting for one; and the
  // job attempt is free for whichever host takes its next try.
  if (spent) {
    await removeRunner(deps, log, workflowJobId, record.repo, record.pool, r.runnerName);
    await releaseJobAttempt(deps.redis, deps.keys, workflowJobId, record.runAttempt, host.name);
  }
  if (r.end !== 'ran') log.warn({ end: r.end, reason: r.reason, exitCode: r.exitCode }, 'job VM ended without running its job to the end');
  return { kind: 'ok', phase: to };
}

async function removeRunner(deps: ReportDeps, log: Logger, workflowJobId: number, repository: string, poolName: string | null, name: string): Promise<void> {
  const pool = deps.config.pools.find((p) => p.name === poolName);
  const [owner, repo] = repository.split('/') as [string, string];
  const scope = pool?.scope === 'org' ? { scope: 'org' as const, owner } : { scope: 'repo' as const, owner, repo };
  try {
    const runner = (await deps.github.listRunners({ ...scope, namePrefix: name })).find((x) => x.name === name);
    if (runner) await deps.github.deleteRunner({ ...scope, runnerId: runner.id });
    await jobMoves(deps.redis, deps.keys).note(workflowJobId, { by: 'control', what: runner ? 'runner-deleted' : 'runner-gone', why: name });
    log.info({ runnerName: name, found: Boolean(runner) }, 'runner of a VM that ran no job removed');
  } catch (err) {
    log.error({ runnerName: name, err: (err as Error).message }, 'runner of a VM that ran no job could not be removed');
  }
}
