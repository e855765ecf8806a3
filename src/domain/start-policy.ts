import { branchMatches, labelsServedBy, repoMatches, type PolicyConfig, type PolicyPool } from './policy.js';

/**
 * The gate at job start: may the job GitHub actually gave this runner run in the runner's pool?
 *
 * GitHub hands a queued job to any idle runner whose labels fit, oldest first, not to the runner
 * minted for it. So intake and mint-time checks only refuse early; this is the boundary. Asked
 * by the runner's job-started hook (guest → agent → control) and answered from GitHub's facts
 * only: the job on this runner, its run's event and head repository, the repository's
 * visibility. Also used before minting, to find queued jobs a new runner must not be handed.
 * Pure; tested from tables.
 */
export type StartRefusal =
  /** GitHub shows no running job of that run attempt on this runner (a lie, or a stale hint). */
  | 'job-not-on-runner'
  /** The runner was not minted by the control for the asking host. */
  | 'unknown-runner'
  /** The host no longer serves the runner's pool (config changed since the mint). */
  | 'pool-not-served'
  | 'public-repo'
  | 'internal-repo'
  | 'repo-not-allowed'
  | 'fork-pr'
  /** The job asks for a label the pool's runners do not have (GitHub should never do this). */
  | 'labels-not-served'
  /** A deploy pool, and the job's repository or branch is not one it allows. */
  | 'deploy-not-allowed'
  /** A deploy pool, and the run was triggered by a pull request (its code is the PR's). */
  | 'deploy-event'
  /**
   * A deploy runner was handed a job a build pool serves (its labels fit both), which the deploy
   * pool does not allow: refused here, but the job itself is fine, so its run is left alone.
   */
  | 'wrong-pool'
  // Fail closed: no answer in time is a refusal, with the part that did not answer.
  | 'github-unreachable'
  | 'control-unreachable'
  | 'agent-unreachable'
  | 'bad-request';

export type StartDecision = { kind: 'allow' } | { kind: 'deny'; reason: StartRefusal };

/** What GitHub says of the job a runner got, its run and its repository. */
export interface StartFacts {
  /** `owner/name` of the job's repository. */
  repository: string;
  visibility: 'public' | 'private' | 'internal';
  labels: readonly string[];
  /** The run's trigger (`push`, `pull_request`, `schedule`…), its head branch and head repository. */
  event: string;
  headBranch: string | null;
  headRepository: string | null;
}

/** Events whose code is a pull request's head, whoever opened it: never on a deploy host. */
const PULL_REQUEST_EVENTS = new Set(['pull_request', 'pull_request_target', 'pull_request_review', 'pull_request_review_comment']);

export function decideStart(f: StartFacts, pool: PolicyPool, config: Pick<PolicyConfig, 'policy' | 'pools'>): StartDecision {
  if (f.visibility === 'public') return deny('public-repo');
  if (f.visibility === 'internal' && !config.policy.allowInternal) return deny('internal-repo');
  if (!config.policy.repositories.some((p) => repoMatches(p, f.repository))) return deny('repo-not-allowed');
  if (isFork(f)) return deny('fork-pr');
  if (!labelsServedBy(f.labels, pool.labels)) return deny('labels-not-served');
  if (pool.deploy) {
    // A deploy pool runs only what it allows, whether or not a build pool would have served the
    // job too: a job without deploy labels that lands on the deploy host from a feature branch
    // is still a feature branch beside production.
    const branch = f.headBranch;
    const allowed =
      !PULL_REQUEST_EVENTS.has(f.event) &&
      pool.deploy.repositories.some((p) => repoMatches(p, f.repository)) && branch !== null && pool.deploy.branches.some((b) => branchMatches(b, branch));
    if (allowed) return { kind: 'allow' };
    if (config.pools.some((p) => !p.deploy && labelsServedBy(f.labels, p.labels))) return deny('wrong-pool');
    return deny(PULL_REQUEST_EVENTS.has(f.event) ? 'deploy-event' : 'deploy-not-allowed');
  }
  return { kind: 'allow' };
}

/** `hangar-<host>-<workflow job id>-<attempt>` (mint-policy's runnerName), taken apart. */
const RUNNER_NAME = /^hangar-([a-z0-9][a-z0-9-]{0,30})-(\d{1,20})-(\d{1,6})$/;

export function parseRunnerName(name: string): { host: string; workflowJobId: number; runAttempt: number } | null {
  const m = RUNNER_NAME.exec(name);
  return m ? { host: m[1]!, workflowJobId: Number(m[2]), runAttempt: Number(m[3]) } : null;
}

/**
 * Before GitHub is asked anything: is the runner one the control minted for the asking host (the
 * name carries the host; the job's record must show that very runner as minted), in a pool the
 * host still serves? `record` is the record of the job the name says it was minted for.
 */
export function checkStartRunner(
  host: { name: string; role: 'build' | 'deploy'; pools: readonly string[] },
  runnerName: string,
  record: { mintedRunner: string | null; pool: string | null } | null,
  pools: readonly PolicyPool[],
): { kind: 'ok'; pool: PolicyPool } | { kind: 'deny'; reason: 'unknown-runner' | 'pool-not-served' } {
  const parsed = parseRunnerName(runnerName);
  if (!parsed || parsed.host !== host.name || !record || record.mintedRunner !== runnerName || record.pool === null) return deny('unknown-runner');
  const pool = pools.find((p) => p.name === record.pool);
  if (!pool || !host.pools.includes(pool.name) || (pool.deploy && host.role !== 'deploy')) return deny('pool-not-served');
  return { kind: 'ok', pool };
}

/** A run whose head is another repository is a fork's pull request. */
export function isFork(f: Pick<StartFacts, 'repository' | 'headRepository'>): boolean {
  return f.headRepository !== null && f.headRepository.toLowerCase() !== f.repository.toLowerCase();
}

/** What the operator reads in the job's log, one line per reason: why, and what to do. */
export const START_REFUSAL_TEXT: Readonly<Record<StartRefusal, string>> = {
  'job-not-on-runner': 'GitHub shows no running job of this run on this runner',
  'unknown-runner': 'this runner was not minted by Hangar for this host',
  'pool-not-served': 'this host no longer serves the runner\'s pool',
  'public-repo': 'the repository is public: Hangar runs jobs of private repositories only',
  'internal-repo': 'the repository is internal and policy.allowInternal is false',
  'repo-not-allowed': 'the repository is not in policy.repositories',
  'fork-pr': 'the run comes from a fork\'s pull request',
  'labels-not-served': 'the job asks for labels this pool\'s runners do not have',
  'deploy-not-allowed': 'this deploy pool does not allow the job\'s repository or branch',
  'deploy-event': 'a deploy pool never runs pull request events',
  'wrong-pool': 'a deploy runner was handed a job that a build pool serves and the deploy pool does not allow; give build jobs a label the deploy pool lacks',
  'github-unreachable': 'GitHub did not answer in time, so the job is refused (fail closed)',
  'control-unreachable': 'the Hangar control did not answer in time, so the job is refused (fail closed)',
  'agent-unreachable': 'the Hangar agent did not answer in time, so the job is refused (fail closed)',
  'bad-request': 'the gate request was malformed',
};

/**
 * Refusals that say what the job is: its whole run is cancelled, or the next runner minted in
 * that repository would be handed it again. (A failure to answer says nothing of the job.)
 */
const CANCEL_ON = new Set<StartRefusal>(['public-repo', 'internal-repo', 'repo-not-allowed', 'fork-pr', 'labels-not-served', 'deploy-not-allowed', 'deploy-event']);
export const cancelRunOnRefusal = (reason: StartRefusal): boolean => CANCEL_ON.has(reason);

const deny = <R extends StartRefusal>(reason: R) => ({ kind: 'deny', reason }) as const;
