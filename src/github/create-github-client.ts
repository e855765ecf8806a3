import { pino, type Logger } from 'pino';
import * as actions from './actions.js';
import { createOctokit, createWriteGroup, type ThrottleOptions } from './create-octokit.js';
import * as deliveries from './deliveries.js';
import { createInstallations } from './installations.js';
import type { RequestBudget, RequestObserver } from './request-budget.js';
import * as repositories from './repositories.js';
import * as runnerGroups from './runner-groups.js';
import * as runners from './runners.js';
import type {
  HookDelivery, HookDeliveryDetail, JitConfig, Repository, RunCancellation, Runner, RunFacts, RunFactsStore, RunnerGroup, RunnerGroupRepository, RunnerScope, WorkflowJob, WorkflowRun,
} from './types.js';

export interface GitHubClientOptions {
  /** `https://api.github.com`, `https://ghe.example/api/v3`, or the sim's URL. */
  apiUrl: string;
  appId: number;
  /** The App's PEM. Handed to auth-app only; never logged, never stored elsewhere. */
  privateKey: string;
  /** One installation for everything; absent, it is looked up per repository or organization. */
  installationId?: number;
  logger?: Logger;
  throttle?: ThrottleOptions;
  requestTimeoutMs?: number;
  /**
   * Every request takes a token from it first, and GitHub's "wait" pauses all who share it.
   * Absent (a CLI command without Redis): only plugin-throttling's per-request waits.
   */
  budget?: RequestBudget;
  /** Told every attempt's outcome and every pause (the control's /metrics). */
  observer?: RequestObserver;
  /** Remembers runs' facts from every run read or listed; absent, `getRunFacts` reads the run. */
  runFacts?: RunFactsStore;
}

/**
 * Everything Hangar asks of GitHub. Failures are `GitHubError {status}` (src/domain/errors.ts),
 * or `RunnerNameTakenError` / `RunnerBusyError` (./errors.ts) where the caller has a move to make.
 * Rate limits are waited out inside, a bounded number of times.
 */
export interface GitHubClient {
  /** Registers a just-in-time runner. 409 (name taken): `RunnerNameTakenError`. */
  mintJitConfig(input: runners.MintJitConfigInput): Promise<JitConfig>;
  listRunners(input: runners.ListRunnersInput): Promise<Runner[]>;
  /** Unknown runner: resolves. Busy runner: `RunnerBusyError`. */
  deleteRunner(input: runners.DeleteRunnerInput): Promise<void>;
  /** Read fresh on every call (no cache): visibility can change between two jobs. Unknown: GitHubError 404. */
  getRepository(owner: string, repo: string): Promise<Repository>;
  /**
   * Every repository the installation on `owner` can reach (`GET /installation/repositories`,
   * installation token), all pages, for policy patterns `owner/*`. An installation lives on one
   * account, but the caller filters by owner all the same. Not installed there: GitHubError 404.
   */
  listInstallationRepositories(owner: string): Promise<Repository[]>;
  /** The id of the App's installation covering the repository (a webhook's `installation.id`); cached. */
  installationIdFor(owner: string, repo: string): Promise<number>;
  getJob(owner: string, repo: string, jobId: number): Promise<WorkflowJob>;
  getRun(owner: string, repo: string, runId: number): Promise<WorkflowRun>;
  /**
   * A run's facts that never change (what started it, where its commit came from), remembered
   * from any earlier read or listing of the run, else read. Remembered facts of a run in another
   * repository are not this repository's: read (and GitHub's 404) as if unknown.
   */
  getRunFacts(owner: string, repo: string, runId: number): Promise<RunFacts>;
  listQueuedRuns(owner: string, repo: string): Promise<WorkflowRun[]>;
  /** Runs queued or in progress: every run that may still hold a queued job. */
  listOpenRuns(owner: string, repo: string): Promise<WorkflowRun[]>;
  listJobsForAttempt(owner: string, repo: string, runId: number, attempt: number): Promise<WorkflowJob[]>;
  /**
   * Cancels a workflow run (a write: spaced like the others). Every job of it not yet completed
   * is cancelled. All already completed (409): `'already-completed'`. Unknown run: GitHubError 404.
   */
  cancelRun(owner: string, repo: string, runId: number): Promise<RunCancellation>;
  /**
   * GitHub's "re-run a job from a workflow run" (and the jobs that need it): a new run attempt,
   * with a new workflow job. Only for a job of a completed run; GitHub refuses others (403).
   */
  rerunJob(owner: string, repo: string, jobId: number): Promise<void>;
  /** The organization's runner groups, all pages. Not an organization, or not installed there: GitHubError 404. */
  listRunnerGroups(org: string): Promise<RunnerGroup[]>;
  /** The repositories selected for a group, all pages. Unknown group: GitHubError 404. */
  listRunnerGroupRepositories(org: string, groupId: number): Promise<RunnerGroupRepository[]>;
  /** App webhook deliveries, newest first (App JWT). */
  listDeliveries(input?: deliveries.ListDeliveriesInput): Promise<deliveries.DeliveriesPage>;
  /** One delivery with the payload GitHub sent (App JWT). Unknown: GitHubError 404. */
  getDelivery(deliveryId: number): Promise<HookDeliveryDetail>;
  redeliver(deliveryId: number): Promise<void>;
}

let clients = 0;

export function createGitHubClient(opts: GitHubClientOptions): GitHubClient {
  const logger = (opts.logger ?? pino({ level: 'silent' })).child({ unit: 'github' });
  const writeGroup = createWriteGroup(opts.throttle);
  const base = {
    apiUrl: opts.apiUrl,
    appId: opts.appId,
    privateKey: opts.privateKey,
    logger,
    writeGroup,
    // Its own limiters (requests in flight, token requests), so two clients in one process (a
    // test's two control replicas) each have theirs, as two processes would.
    throttleId: `hangar-${++clients}`,
    ...(opts.throttle ? { throttle: opts.throttle } : {}),
    ...(opts.requestTimeoutMs ? { requestTimeoutMs: opts.requestTimeoutMs } : {}),
    ...(opts.budget ? { budget: opts.budget } : {}),
    ...(opts.observer ? { observer: opts.observer } : {}),
  };
  const app = createOctokit(base);
  const installations = createInstallations(app, opts.installationId, (installationId) =>
    createOctokit({ ...base, installationId }),
  );
  const forRepo = (owner: string, repo: string) => installations.forTarget({ owner, repo });
  const forScope = (s: RunnerScope) =>
    installations.forTarget(s.scope === 'repo' ? { owner: s.owner, repo: s.repo } : { owner: s.owner });

  // Runs' facts are kept from whatever read or listed them; a store that fails only costs a read.
  const facts = opts.runFacts;
  const remember = async <T extends readonly WorkflowRun[]>(runs: T): Promise<T> => {
    if (facts && runs.length > 0) await facts.put(runs.map(runFactsOf)).catch((err: Error) => logger.warn({ err: err.message }, 'run facts not kept'));
    return runs;
  };
  const getRun = async (owner: string, repo: string, runId: number): Promise<WorkflowRun> =>
    (await remember([await actions.getRun(await forRepo(owner, repo), owner, repo, runId)]))[0]!;

  return {
    mintJitConfig: async (input) => runners.mintJitConfig(await forScope(input), input),
    listRunners: async (input) => runners.listRunners(await forScope(input), input),
    deleteRunner: async (input) => runners.deleteRunner(await forScope(input), input),
    getRepository: async (owner, repo) => repositories.getRepository(await forRepo(owner, repo), owner, repo),
    listInstallationRepositories: async (owner) => repositories.listInstallationRepositories(await installations.forTarget({ owner })),
    installationIdFor: (owner, repo) => installations.idOf({ owner, repo }),
    getJob: async (owner, repo, jobId) => actions.getJob(await forRepo(owner, repo), owner, repo, jobId),
    getRun,
    getRunFacts: async (owner, repo, runId) => {
      const known = await facts?.get(runId).catch(() => null);
      if (known && known.repositoryFullName.toLowerCase() === `${owner}/${repo}`.toLowerCase()) return known;
      return runFactsOf(await getRun(owner, repo, runId));
    },
    listQueuedRuns: async (owner, repo) => remember(await actions.listQueuedRuns(await forRepo(owner, repo), owner, repo)),
    listOpenRuns: async (owner, repo) => remember(await actions.listOpenRuns(await forRepo(owner, repo), owner, repo)),
    listJobsForAttempt: async (owner, repo, runId, attempt) =>
      actions.listJobsForAttempt(await forRepo(owner, repo), owner, repo, runId, attempt),
    cancelRun: async (owner, repo, runId) => actions.cancelRun(await forRepo(owner, repo), owner, repo, runId),
    rerunJob: async (owner, repo, jobId) => actions.rerunJob(await forRepo(owner, repo), owner, repo, jobId),
    listRunnerGroups: async (org) => runnerGroups.listRunnerGroups(await installations.forTarget({ owner: org }), org),
    listRunnerGroupRepositories: async (org, groupId) =>
      runnerGroups.listRunnerGroupRepositories(await installations.forTarget({ owner: org }), org, groupId),
    listDeliveries: (input) => deliveries.listDeliveries(app, input),
    getDelivery: (deliveryId) => deliveries.getDelivery(app, deliveryId),
    redeliver: (deliveryId) => deliveries.redeliver(app, deliveryId),
  };
}

function runFactsOf(r: WorkflowRun): RunFacts {
  return { id: r.id, event: r.event, headBranch: r.headBranch, headSha: r.headSha, headRepositoryFullName: r.headRepositoryFullName, repositoryFullName: r.repositoryFullName };
}
