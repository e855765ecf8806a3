/**
 * May this host get a just-in-time runner for this job? Asked by the control when an agent
 * wants a runner, with what GitHub says now (visibility, the run's head repository, the job's
 * status), because a webhook can be old and a repository can turn public after its job queued.
 * Pure; tested from tables.
 */
export type MintRefusal =
  | 'pool-not-served'
  | 'deploy-pool-on-build-host'
  | 'unknown-job'
  | 'not-accepted'
  | 'wrong-pool'
  | 'job-not-queued'
  | 'public-repo'
  | 'internal-repo'
  | 'fork-pr'
  /** Its run was cancelled just now, before the mint, as refused for this pool (jit/sweep.ts). */
  | 'cancelled'
  /** The operator drained the asking host (dashboard): the job goes back to its queue for another host. */
  | 'host-drained';

export type MintDecision = { kind: 'mint' } | { kind: 'refuse'; reason: MintRefusal };

export interface MintHost {
  name: string;
  role: 'build' | 'deploy';
  pools: readonly string[];
}

export interface MintRequestFacts {
  host: MintHost;
  pool: { name: string; deploy: boolean };
  /**
   * The control's record of the job; null when it has none. Its state is not asked: whether the
   * job still needs a runner is for GitHub to say (checkGitHub), not for an old webhook.
   */
  record: { decision: string; pool: string | null } | null;
}

export interface GitHubFacts {
  visibility: 'public' | 'private' | 'internal';
  allowInternal: boolean;
  /** `owner/name` of the repository the job belongs to, and of the run's head (differs for a fork PR). */
  repository: string;
  headRepository: string | null;
  jobStatus: string;
  /** The job asked about, and the runner GitHub gave it (null while none has). */
  workflowJobId: number;
  jobRunnerName: string | null;
  /** From the control's record: a runner was minted for this job attempt before. */
  mintedBefore: boolean;
}

/** What can be decided before asking GitHub anything: who asks, and for what. */
export function checkRequest(f: MintRequestFacts): MintDecision {
  if (!f.host.pools.includes(f.pool.name)) return refuse('pool-not-served');
  // Belt and braces: config validation already keeps deploy pools off build hosts.
  if (f.pool.deploy && f.host.role !== 'deploy') return refuse('deploy-pool-on-build-host');
  if (!f.record) return refuse('unknown-job');
  if (f.record.decision !== 'accept') return refuse('not-accepted');
  if (f.record.pool !== f.pool.name) return refuse('wrong-pool');
  return { kind: 'mint' };
}

/** What GitHub says now. A run whose head is another repository is a fork's pull request. */
export function checkGitHub(g: GitHubFacts): MintDecision {
  if (g.visibility === 'public') return refuse('public-repo');
  if (g.visibility === 'internal' && !g.allowInternal) return refuse('internal-repo');
  if (g.headRepository !== null && g.headRepository.toLowerCase() !== g.repository.toLowerCase()) return refuse('fork-pr');
  if (g.jobStatus !== 'queued' && (g.mintedBefore || !runnerOwed(g.workflowJobId, g.jobRunnerName))) return refuse('job-not-queued');
  return { kind: 'mint' };
}

/**
 * A JIT runner is not bound to the job it was minted for: GitHub gives it the oldest queued job
 * its labels fit. So when webhooks arrive out of order, the runner minted for a newer job takes
 * this older one, and the newer job is left without a runner. A job taken by a Hangar runner
 * minted for another job is therefore owed one: minting for it keeps one runner per job, and the
 * runner it gets takes whichever job is waiting. (Taken by its own runner, or by none: not owed;
 * and a job is owed one runner at most: checkGitHub refuses a second for a job minted for before.)
 */
export function runnerOwed(workflowJobId: number, jobRunnerName: string | null): boolean {
  const m = jobRunnerName ? /^hangar-.+-(\d+)-\d+$/.exec(jobRunnerName) : null;
  return m !== null && Number(m[1]) !== workflowJobId;
}

/** `hangar-<host>-<workflow job id>-<attempt>`: one name per job attempt, so a retry finds its runner. */
export function runnerName(host: string, workflowJobId: number, runAttempt: number): string {
  return `hangar-${host}-${workflowJobId}-${runAttempt}`;
}

/** What a Hangar runner's name says: the host that minted it, and the job attempt it was minted for. */
export function parseRunnerName(name: string): { host: string; workflowJobId: number; runAttempt: number } | null {
  const m = /^hangar-([a-z0-9][a-z0-9-]*)-(\d+)-(\d+)$/.exec(name);
  return m ? { host: m[1]!, workflowJobId: Number(m[2]), runAttempt: Number(m[3]) } : null;
}

/** The label on every runner one Hangar installation mints (config/installation-id.ts). */
export const installationLabel = (installationId: string): string => `hangar-id-${installationId}`;

/**
 * Is this runner one this installation made: a Hangar name and this installation's label. A
 * runner of another installation, or one an operator registered by hand, is never Hangar's to touch.
 */
export function isOurRunner(runner: { name: string; labels: readonly string[] }, installationId: string): boolean {
  const label = installationLabel(installationId).toLowerCase();
  return parseRunnerName(runner.name) !== null && runner.labels.some((l) => l.toLowerCase() === label);
}

const refuse = (reason: MintRefusal): MintDecision => ({ kind: 'refuse', reason });
