import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig, PoolConfig } from '../config/schema.js';
import type { MintHost } from '../domain/mint-policy.js';
import { cancelRunOnRefusal, checkStartRunner, decideStart, parseRunnerName, type StartDecision, type StartRefusal } from '../domain/start-policy.js';
import { withBudgetPriority, type GitHubClient, type WorkflowJob } from '../github/index.js';
import { readJobRecord } from '../jobs/record.js';
import { jobMoves, type Move, type TransitionResult } from '../jobs/transition.js';
import type { JobMetrics } from '../metrics/job-metrics.js';
import type { Keys } from '../queue/keys.js';

/**
 * The control's half of the gate at job start. A runner's job-started hook asked its agent
 * "may the job I was given run here?"; the agent names the runner (it knows which VM asked, from
 * the tap the request came in on) and passes the guest's hints (repository, run, attempt). The
 * hints only say where to look: the answer comes from GitHub's facts — the job of that run
 * attempt that GitHub shows on *this* runner, its labels, its run's event, branch and head
 * repository, the repository's visibility — and the runner's pool as the control minted it.
 * Anything that does not answer in time is a refusal.
 */
export interface StartHints {
  repository?: string | undefined;
  runId?: number | undefined;
  runAttempt?: number | undefined;
}

export interface StartQuestion {
  runnerName: string;
  hints: StartHints;
}

export type StartAnswer = StartDecision & { workflowJobId?: number };

export interface GateDeps {
  config: ControlConfig;
  github: GitHubClient;
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** How long GitHub may take to answer before the job is refused. */
  githubTimeoutMs?: number;
  /** Jobs started and refused at start (metrics/job-metrics.ts). */
  jobs?: JobMetrics;
}

/** What the metrics need of a job the gate answered for: the one GitHub handed the runner. */
interface StartFacts { pool: string; repository: string; jobName: string; event: string; workflowJobId: number }

const REPO = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/;

export async function askStartGate(deps: GateDeps, host: MintHost, q: StartQuestion): Promise<StartAnswer> {
  // First call on the rate budget: a runner waits in its hook, and no answer in time is a refusal.
  const answer = await withBudgetPriority('start', () => decideForRunner(deps, host, q));
  const moved = answer.mintedFor !== undefined ? await moveMintedFor(deps, host, answer.mintedFor, q.runnerName, answer) : null;
  if (deps.jobs) await count(deps, deps.jobs, answer, moved).catch((err: Error) => deps.logger.debug({ err: err.message }, 'metrics: gate answer not counted'));
  const { mintedFor: _, facts: __, ...rest } = answer;
  return rest;
}

/**
 * Counted once per runner: only when the move of the job it was minted for went through (a
 * second ask for the same runner finds the move made and counts nothing). A refusal of a runner
 * Hangar has no job for moves nothing and is counted as it is answered.
 */
async function count(deps: GateDeps, jobs: JobMetrics, a: Answered, moved: TransitionResult | null): Promise<void> {
  if (moved && !moved.ok) return;
  if (a.kind === 'deny') return jobs.refused('start', a.reason);
  if (!a.facts) return;
  const started = await readJobRecord(deps.redis, deps.keys, a.facts.workflowJobId);
  jobs.started({ pool: a.facts.pool, repo: a.facts.repository, jobName: a.facts.jobName, event: a.facts.event }, started?.createdAt ?? null);
}

type Answered = StartAnswer & { mintedFor?: number; facts?: StartFacts };

/**
 * The phase of the job the runner was minted for: `started` when the gate allowed the job its
 * runner was handed (whichever job that was), `refused-at-start` when it refused it. A refused
 * runner fails whatever job it was handed and is gone: the job it was minted for has not had its
 * runner. Forgetting the mint (spent) keeps it owed one (mint-policy's runnerOwed), or the job
 * would be stranded when a runner minted for another job took it meanwhile. Compare and set: a
 * newer mint for the job is left alone.
 */
async function moveMintedFor(deps: GateDeps, host: MintHost, workflowJobId: number, runnerName: string, a: StartAnswer): Promise<TransitionResult> {
  const onlyIf = { field: 'mintedRunner', equals: runnerName };
  const startedJob = a.workflowJobId ?? '';
  const move: Move =
    a.kind === 'allow'
      ? { to: 'started', by: `host:${host.name}`, why: 'allowed-at-start', fields: { startedJob }, onlyIf }
      : { to: 'refused-at-start', by: `host:${host.name}`, why: a.reason, fields: { startedJob, spentRunner: runnerName, startRefusal: a.reason }, remove: ['mintedRunner'], onlyIf };
  return jobMoves(deps.redis, deps.keys).moveOrNote(workflowJobId, move);
}

async function decideForRunner(deps: GateDeps, host: MintHost, q: StartQuestion): Promise<Answered> {
  const t0 = Date.now();
  const log = deps.logger.child({ host: host.name, runnerName: q.runnerName });
  const minted = await mintedFor(deps, host, q.runnerName);
  if (minted.kind === 'deny') return finish(deps, log, t0, host, q.runnerName, minted, null);
  const { pool, record } = minted;
  const spent = { mintedFor: record.workflowJobId };
  const [owner] = record.repo.split('/') as [string, string];
  // A repository-scoped runner can only be given jobs of its repository; an organization's, any
  // repository of the organization (which one: the guest's hint, checked against GitHub).
  const repository = pool.scope === 'repo' ? record.repo : q.hints.repository;
  if (!repository || !REPO.test(repository) || repository.split('/')[0]!.toLowerCase() !== owner.toLowerCase() || !q.hints.runId || !q.hints.runAttempt) {
    return { ...(await finish(deps, log, t0, host, q.runnerName, deny('job-not-on-runner'), null)), ...spent };
  }
  const facts = await withTimeout(githubFacts(deps.github, repository, q.hints.runId, q.hints.runAttempt, q.runnerName), deps.githubTimeoutMs ?? 10_000);
  if (facts.kind === 'timeout' || facts.kind === 'error') {
    log.warn({ why: facts.kind, err: facts.kind === 'error' ? facts.message : undefined }, 'gate: GitHub did not answer; refusing');
    return { ...(await finish(deps, log, t0, host, q.runnerName, deny('github-unreachable'), null)), ...spent };
  }
  if (!facts.value) return { ...(await finish(deps, log, t0, host, q.runnerName, deny('job-not-on-runner'), null)), ...spent };
  const { job, run, visibility } = facts.value;
  const decision = decideStart(
    { repository, visibility, labels: job.labels, event: run.event, headBranch: run.headBranch, headRepository: run.headRepositoryFullName },
    pool,
    deps.config,
  );
  const answer = await finish(deps, log, t0, host, q.runnerName, decision, job, run.event);
  if (decision.kind === 'deny' && cancelRunOnRefusal(decision.reason)) {
    // After the answer, so the hook prints its reason at once; the job fails either way.
    void cancelRefusedRun(deps, log, repository, run.id, job.id, decision.reason);
  }
  const started: StartFacts = { pool: pool.name, repository, jobName: job.name, event: run.event, workflowJobId: job.id };
  return { ...answer, ...spent, facts: started };
}

type Minted = { kind: 'ok'; pool: PoolConfig; record: { repo: string; workflowJobId: number } } | { kind: 'deny'; reason: StartRefusal };

/** The runner must be one the control minted for this host, in a pool the host still serves. */
async function mintedFor(deps: GateDeps, host: MintHost, runnerName: string): Promise<Minted> {
  const parsed = parseRunnerName(runnerName);
  const record = parsed ? await readJobRecord(deps.redis, deps.keys, parsed.workflowJobId) : null;
  const checked = checkStartRunner(host, runnerName, record, deps.config.pools);
  if (checked.kind === 'deny') return checked;
  return { kind: 'ok', pool: checked.pool as PoolConfig, record: record! };
}

/**
 * The job of that run attempt that GitHub shows on this runner, in progress, with its run and
 * repository. GitHub's API can show an assignment a moment after the runner has it, so a run
 * that exists but shows no job on the runner is asked again twice (the caller's time bound
 * still holds).
 */
async function githubFacts(github: GitHubClient, repository: string, runId: number, attempt: number, runnerName: string) {
  const [owner, repo] = repository.split('/') as [string, string];
  const [jobs0, run, repoInfo] = await Promise.all([
    github.listJobsForAttempt(owner, repo, runId, attempt),
    github.getRunFacts(owner, repo, runId),
    github.getRepository(owner, repo),
  ]).catch((err: { status?: number }) => {
    // 404: no such run in that repository (a hint that lies); anything else is GitHub failing.
    if (err.status === 404) return [[], null, null] as const;
    throw err;
  });
  if (!run || !repoInfo) return null;
  const onRunner = (jobs: readonly WorkflowJob[]) => jobs.find((j) => j.runnerName === runnerName && j.status === 'in_progress');
  let job = onRunner(jobs0);
  for (const pause of [500, 1500]) {
    if (job) break;
    await new Promise((res) => setTimeout(res, pause));
    job = onRunner(await github.listJobsForAttempt(owner, repo, runId, attempt));
  }
  return job ? { job, run, visibility: repoInfo.visibility } : null;
}

async function finish(deps: GateDeps, log: Logger, t0: number, host: MintHost, runnerName: string, d: StartDecision, job: WorkflowJob | null, runEvent?: string): Promise<StartAnswer> {
  const now = Date.now();
  // On the record of the job that started (it need not be the one the runner was minted for).
  const fields: Record<string, string | number> = { startRunner: runnerName, startHost: host.name, startAt: now, startDecision: d.kind, ...(runEvent ? { runEvent } : {}) };
  if (d.kind === 'deny') fields.startRefusal = d.reason;
  await jobMoves(deps.redis, deps.keys).note(job?.id ?? null, {
    by: `host:${host.name}`,
    what: d.kind === 'allow' ? 'allowed-at-start' : 'refused-at-start',
    why: d.kind === 'deny' ? d.reason : runnerName,
    fields,
  }, now);
  const decideMs = now - t0;
  if (d.kind === 'deny') log.warn({ reason: d.reason, workflowJobId: job?.id, decideMs }, 'job refused at start');
  else log.info({ workflowJobId: job?.id, decideMs }, 'job allowed at start');
  return job ? { ...d, workflowJobId: job.id } : d;
}

async function cancelRefusedRun(deps: GateDeps, log: Logger, repository: string, runId: number, workflowJobId: number, reason: StartRefusal): Promise<void> {
  const [owner, repo] = repository.split('/') as [string, string];
  try {
    const result = await deps.github.cancelRun(owner, repo, runId);
    await jobMoves(deps.redis, deps.keys).note(workflowJobId, { by: 'gate', what: 'run-cancelled', why: reason, fields: { runCancelled: result, runCancelledFor: reason } });
    log.warn({ runId, workflowJobId, reason, result }, 'run refused at start cancelled');
  } catch (err) {
    log.error({ runId, workflowJobId, err: (err as Error).message }, 'could not cancel a run refused at start');
  }
}

type Timed<T> = { kind: 'ok'; value: T } | { kind: 'timeout' } | { kind: 'error'; message: string };

function withTimeout<T>(p: Promise<T>, ms: number): Promise<Timed<T>> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Timed<T>>((resolve) => (timer = setTimeout(() => resolve({ kind: 'timeout' }), ms)));
  const settled = p.then((value) => ({ kind: 'ok', value }) as const, (err: Error) => ({ kind: 'error', message: err.message }) as const);
  return Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
}

const deny = (reason: StartRefusal) => ({ kind: 'deny', reason }) as const;
