import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig, PoolConfig } from '../config/schema.js';
import type { MintHost } from '../domain/mint-policy.js';
import { cancelRunOnRefusal, checkStartRunner, decideStart, parseRunnerName, type StartDecision, type StartRefusal } from '../domain/start-policy.js';
import type { GitHubClient, WorkflowJob } from '../github/index.js';
import { readJobRecord } from '../intake/job-store.js';
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
}

const REPO = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/;

export async function askStartGate(deps: GateDeps, host: MintHost, q: StartQuestion): Promise<StartAnswer> {
  const answer = await decideForRunner(deps, host, q);
  if (answer.kind === 'deny' && answer.mintedFor !== undefined) await spendRunner(deps, answer.mintedFor, q.runnerName);
  const { mintedFor: _, ...rest } = answer;
  return rest;
}

/**
 * A refused runner fails whatever job it was handed and is gone: the job it was minted for has
 * not had its runner. Forgetting the mint keeps it owed one (mint-policy's runnerOwed), or the
 * job would be stranded when a runner minted for another job took it meanwhile. Compare and
 * delete: a newer mint for the job is left alone.
 */
async function spendRunner(deps: GateDeps, workflowJobId: number, runnerName: string): Promise<void> {
  const key = deps.keys.job(workflowJobId);
  await deps.redis.eval(
    "if redis.call('HGET', KEYS[1], 'mintedRunner') == ARGV[1] then redis.call('HDEL', KEYS[1], 'mintedRunner'); redis.call('HSET', KEYS[1], 'spentRunner', ARGV[1]) end return 1",
    1, key, runnerName,
  );
}

async function decideForRunner(deps: GateDeps, host: MintHost, q: StartQuestion): Promise<StartAnswer & { mintedFor?: number }> {
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
  const answer = await finish(deps, log, t0, host, q.runnerName, decision, job);
  if (decision.kind === 'deny' && cancelRunOnRefusal(decision.reason)) {
    // After the answer, so the hook prints its reason at once; the job fails either way.
    void cancelRefusedRun(deps, log, repository, run.id, job.id, decision.reason);
  }
  return { ...answer, ...spent };
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
    github.getRun(owner, repo, runId),
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

async function finish(deps: GateDeps, log: Logger, t0: number, host: MintHost, runnerName: string, d: StartDecision, job: WorkflowJob | null): Promise<StartAnswer> {
  const now = Date.now();
  const tx = deps.redis.multi();
  if (job && (await deps.redis.exists(deps.keys.job(job.id)))) {
    const fields: Record<string, string | number> = { startRunner: runnerName, startHost: host.name, startAt: now, startDecision: d.kind };
    if (d.kind === 'deny') fields.startRefusal = d.reason;
    tx.hset(deps.keys.job(job.id), fields);
  }
  tx.xadd(
    deps.keys.decisions, 'MAXLEN', '~', '10000', '*',
    'workflowJobId', String(job?.id ?? ''), 'at', String(now),
    'decision', d.kind === 'allow' ? 'allowed-at-start' : 'refused-at-start',
    'reason', d.kind === 'deny' ? d.reason : '', 'host', host.name, 'runnerName', runnerName,
  );
  await tx.exec();
  const decideMs = now - t0;
  if (d.kind === 'deny') log.warn({ reason: d.reason, workflowJobId: job?.id, decideMs }, 'job refused at start');
  else log.info({ workflowJobId: job?.id, decideMs }, 'job allowed at start');
  return job ? { ...d, workflowJobId: job.id } : d;
}

async function cancelRefusedRun(deps: GateDeps, log: Logger, repository: string, runId: number, workflowJobId: number, reason: StartRefusal): Promise<void> {
  const [owner, repo] = repository.split('/') as [string, string];
  try {
    const result = await deps.github.cancelRun(owner, repo, runId);
    if (await deps.redis.exists(deps.keys.job(workflowJobId))) await deps.redis.hset(deps.keys.job(workflowJobId), { runCancelled: result, runCancelledFor: reason });
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
