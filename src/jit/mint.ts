import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/schema.js';
import { installationIdOf } from '../config/installation-id.js';
import { checkGitHub, checkRequest, installationLabel, runnerName, type MintDecision, type MintRefusal } from '../domain/mint-policy.js';
import type { GitHubClient, RunnerScope } from '../github/index.js';
import { RunnerBusyError, RunnerNameTakenError } from '../github/index.js';
import { readJobRecord } from '../jobs/record.js';
import { describeRefusal, jobMoves } from '../jobs/transition.js';
import type { JobMetrics } from '../metrics/job-metrics.js';
import type { Keys } from '../queue/keys.js';
import { claimJobAttempt } from './claim.js';
import type { KnownHost } from './host-auth.js';
import { sweepRefusedRuns } from './sweep.js';

/**
 * Mints a just-in-time runner for one job attempt, after checking who asks (host, pool) and
 * what GitHub says now (visibility, fork, job still queued). The JIT config is returned to the
 * caller and nowhere else: not stored, not logged. Refusals are recorded on the job record and
 * in the decisions stream, where the dashboard shows them.
 */
export type MintResult =
  | { kind: 'minted'; runnerName: string; runnerId: number; encodedJitConfig: string }
  | { kind: 'refused'; reason: MintRefusal | 'job-moved-on' }
  | { kind: 'busy'; runnerName: string }
  /** Another host holds this job attempt's runner, and GitHub still shows it. */
  | { kind: 'already-minted'; host: string };

export interface MintDeps {
  config: ControlConfig;
  github: GitHubClient;
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** Refusals at mint (metrics/job-metrics.ts). */
  jobs?: JobMetrics;
}

export async function mintRunner(deps: MintDeps, host: KnownHost, poolName: string, workflowJobId: number): Promise<MintResult> {
  const pool = deps.config.pools.find((p) => p.name === poolName);
  const record = await readJobRecord(deps.redis, deps.keys, workflowJobId);
  const log = deps.logger.child({ host: host.name, pool: poolName, workflowJobId });
  const asked = checkRequest({ host, pool: { name: poolName, deploy: Boolean(pool?.deploy) }, record });
  if (asked.kind === 'refuse' || !pool || !record) return refused(deps, log, host, workflowJobId, asked, 'pool-not-served', record !== null);
  // A backstop for the operator's drain: the agent stops taking jobs at its next heartbeat, and a
  // job it took before that goes back to the queue (another host may take it).
  if (await deps.redis.exists(deps.keys.hostDrain(host.name))) {
    return refused(deps, log, host, workflowJobId, { kind: 'refuse', reason: 'host-drained' }, 'host-drained', true);
  }

  const [owner, repo] = record.repo.split('/') as [string, string];
  const [repository, run, job] = await Promise.all([
    deps.github.getRepository(owner, repo),
    deps.github.getRunFacts(owner, repo, record.runId),
    deps.github.getJob(owner, repo, workflowJobId),
  ]);
  const now = checkGitHub({
    visibility: repository.visibility,
    allowInternal: deps.config.policy.allowInternal,
    repository: record.repo,
    headRepository: run.headRepositoryFullName,
    jobStatus: job.status,
    workflowJobId,
    jobRunnerName: job.runnerName,
    mintedBefore: record.mintedRunner !== null,
  });
  if (now.kind === 'refuse') {
    if (deps.config.policy.cancelRefusedRuns && CANCEL_RUN_ON.has(now.reason)) await cancelRun(deps, log, owner, repo, record.runId, workflowJobId);
    return refused(deps, log, host, workflowJobId, now, 'public-repo', true);
  }

  const name = runnerName(host.name, workflowJobId, record.runAttempt);
  const scope = pool.scope === 'org' ? { scope: 'org' as const, owner } : { scope: 'repo' as const, owner, repo };
  const claim = await claimAttempt(deps, scope, workflowJobId, record.runAttempt, host.name);
  if (claim) {
    log.warn({ heldBy: claim }, 'runner refused: another host holds this job attempt');
    return { kind: 'already-minted', host: claim };
  }
  // A new runner takes the oldest queued job its labels fit: refused ones must not be there.
  // (Organization runners can be handed jobs of any repository: the gate alone holds there.)
  if (deps.config.policy.cancelRefusedRuns && pool.scope === 'repo') {
    const swept = await sweptRecently(deps, record.repo) ? [] : await sweepRefusedRuns(deps, record.repo, repository.visibility, pool);
    const own = swept.find((s) => s.runId === record.runId);
    if (own) return refused(deps, log, host, workflowJobId, { kind: 'refuse', reason: 'cancelled' }, 'cancelled', true);
  }
  const mint = () => deps.github.mintJitConfig({ ...scope, name, labels: [...pool.labels, installationLabel(installationIdOf(deps.config))], runnerGroupId: pool.runnerGroupId });
  let jit;
  try {
    jit = await mint();
  } catch (err) {
    if (!(err instanceof RunnerNameTakenError)) throw err;
    // A runner of this job attempt exists: an agent died after minting. Never run a job on two
    // VMs: a busy runner means the job is running; an idle one is replaced.
    const existing = (await deps.github.listRunners({ ...scope, namePrefix: name })).find((r) => r.name === name);
    if (existing?.busy) return { kind: 'busy', runnerName: name };
    if (existing) await deps.github.deleteRunner({ ...scope, runnerId: existing.id });
    jit = await mint();
  }
  // `runnerName` on the record is the runner GitHub gave the job (from its webhooks); which one was
  // minted for it is another matter (see runnerOwed).
  // Not queued yet minted: the job was taken by a runner minted for another job (runnerOwed).
  const owed = job.status !== 'queued' ? { owedBecauseTakenBy: job.runnerName } : {};
  const moved = await jobMoves(deps.redis, deps.keys).move(workflowJobId, {
    to: 'minted', by: `host:${host.name}`, why: owed.owedBecauseTakenBy ? 'runner-owed' : 'asked',
    fields: { mintedRunner: name, host: host.name, mintedAt: Date.now(), runEvent: run.event },
  });
  if (!moved.ok) {
    // The job moved past minting meanwhile (say, it failed): the new runner must not wait for it.
    await deps.github.deleteRunner({ ...scope, runnerId: jit.runner.id }).catch((err: Error) => log.error({ err: err.message }, 'runner minted for a job that moved on could not be deleted'));
    log.warn({ why: describeRefusal(moved, 'minted') }, 'runner not handed out: the job moved on');
    return { kind: 'refused', reason: 'job-moved-on' };
  }
  log.info({ runnerName: name, runnerId: jit.runner.id, ...owed }, 'runner minted');
  return { kind: 'minted', runnerName: name, runnerId: jit.runner.id, encodedJitConfig: jit.encodedJitConfig };
}

/**
 * Null when this host may mint for the job attempt; else the host that holds its runner. The
 * holder keeps it while its runner may still take the job: within the grace after its claim (it
 * may be registering the runner right now), or while its runner is registered and its host's
 * heartbeat shows the job's VM. Otherwise the job would be stranded by a host that went away:
 * its idle runner is removed (a busy one means the job runs: the holder keeps it) and this host
 * takes over.
 */
export const CLAIM_GRACE_MS = 60_000;

async function claimAttempt(deps: MintDeps, scope: RunnerScope, workflowJobId: number, attempt: number, host: string): Promise<string | null> {
  const first = await claimJobAttempt(deps.redis, deps.keys, workflowJobId, attempt, host);
  if (first.kind !== 'held') return null;
  if (Date.now() - first.since < CLAIM_GRACE_MS) return first.by;
  const theirs = runnerName(first.by, workflowJobId, attempt);
  const runner = (await deps.github.listRunners({ ...scope, namePrefix: theirs })).find((r) => r.name === theirs);
  if (runner?.busy) return first.by;
  if (runner && (await hostRunsVmFor(deps, first.by, workflowJobId))) return first.by;
  if (runner) {
    try {
      await deps.github.deleteRunner({ ...scope, runnerId: runner.id });
    } catch (err) {
      if (err instanceof RunnerBusyError) return first.by;
      throw err;
    }
  }
  const again = await claimJobAttempt(deps.redis, deps.keys, workflowJobId, attempt, host, first.by);
  return again.kind === 'held' ? again.by : null;
}

/** The holder's heartbeat (it expires with its agent) lists a VM of this job. */
async function hostRunsVmFor(deps: MintDeps, host: string, workflowJobId: number): Promise<boolean> {
  const beat = await deps.redis.get(deps.keys.host(host));
  if (!beat) return false;
  const vms = (JSON.parse(beat) as { vms?: { workflowJobId: number }[] }).vms ?? [];
  return vms.some((v) => v.workflowJobId === workflowJobId);
}

/**
 * A JIT runner is not bound to one job: it takes any queued job of its repository whose labels
 * it has. A job refused for what it is (a fork's pull request, a repository now public) must not
 * stay queued for the next runner minted in that repository to pick up, so its run is cancelled.
 */
const CANCEL_RUN_ON = new Set<MintRefusal>(['fork-pr', 'public-repo', 'internal-repo']);

/**
 * Refusals about the job itself: its phase becomes `refused`. The rest are about who asked, or
 * say only that GitHub no longer needs a runner for it (job-not-queued: it runs, or ran, or was
 * cancelled), which leaves its phase to what is known of its VM.
 */
const JOB_REFUSALS = new Set<MintRefusal>(['fork-pr', 'public-repo', 'internal-repo', 'cancelled']);

async function cancelRun(deps: MintDeps, log: Logger, owner: string, repo: string, runId: number, workflowJobId: number): Promise<void> {
  const result = await deps.github.cancelRun(owner, repo, runId);
  await jobMoves(deps.redis, deps.keys).note(workflowJobId, { by: 'control', what: 'run-cancelled', why: 'refused-at-mint', fields: { runCancelled: result } });
  log.warn({ runId, result }, 'refused run cancelled so no other runner takes it');
}

async function refused(
  deps: MintDeps,
  log: Logger,
  host: KnownHost,
  workflowJobId: number,
  d: MintDecision,
  fallback: MintRefusal,
  hasRecord: boolean,
): Promise<MintResult> {
  const reason = d.kind === 'refuse' ? d.reason : fallback;
  const jobs = jobMoves(deps.redis, deps.keys);
  const by = `host:${host.name}`;
  const fields = { mintRefusal: reason, mintRefusedHost: host.name };
  // A host asking for what is not its own (another pool, a build host for a deploy job) does not
  // end the job: the host is refused, the job stays where it is.
  const moved = hasRecord && JOB_REFUSALS.has(reason) ? await jobs.move(workflowJobId, { to: 'refused', by, why: reason, fields }) : null;
  if (!moved?.ok) await jobs.note(hasRecord ? workflowJobId : null, { by, what: 'mint-refused', why: reason });
  // Once per refusal: a job refused already (say, by the sweep just now) is not counted again.
  if (!moved || moved.ok) deps.jobs?.refused('mint', reason);
  log.warn({ reason }, 'runner refused');
  return { kind: 'refused', reason };
}

/**
 * Whether another mint in this repository swept it within `policy.sweepWindowSeconds` (every
 * replica shares the mark); if not, this mint marks it and sweeps. The sweep only refuses
 * earlier than the gate, so skipping one costs at most a refusal at start, never a boundary.
 */
async function sweptRecently(deps: MintDeps, repository: string): Promise<boolean> {
  const windowMs = Math.round(deps.config.policy.sweepWindowSeconds * 1000);
  if (windowMs === 0) return false;
  return (await deps.redis.set(deps.keys.swept(repository), '1', 'PX', windowMs, 'NX')) === null;
}
