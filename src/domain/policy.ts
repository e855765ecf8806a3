import type { WorkflowJobEvent } from './workflow-job.js';

/**
 * Whether Hangar may run a job, and in which pool. Pure: same input, same answer; it returns
 * values and never throws, so every answer can be recorded and explained.
 */

export type RejectReason = 'public-repo' | 'internal-repo' | 'repo-not-allowed' | 'no-pool' | 'deploy-not-allowed';

export type Decision =
  | { kind: 'accept'; pool: string }
  | { kind: 'reject'; reason: RejectReason }
  /** Not a self-hosted job: GitHub runs it on its own runners, Hangar has nothing to do. */
  | { kind: 'ignore' };

export interface PolicyPool {
  name: string;
  labels: readonly string[];
  deploy?: { repositories: readonly string[]; branches: readonly string[] } | undefined;
}

export interface PolicyConfig {
  policy: { repositories: readonly string[]; allowInternal: boolean };
  pools: readonly PolicyPool[];
}

export type PolicyInput = Pick<WorkflowJobEvent, 'labels' | 'repo' | 'visibility' | 'headBranch'>;

export function decide(job: PolicyInput, config: PolicyConfig): Decision {
  // Visibility first: Hangar refuses every event of a public repository, hosted or not, so the
  // refusal is on record wherever the App is installed too widely.
  if (job.visibility === 'public') return { kind: 'reject', reason: 'public-repo' };
  if (job.visibility === 'internal' && !config.policy.allowInternal) return { kind: 'reject', reason: 'internal-repo' };
  const labels = job.labels.map((l) => l.toLowerCase());
  if (!labels.includes('self-hosted')) return { kind: 'ignore' };
  if (!config.policy.repositories.some((p) => repoMatches(p, job.repo))) return { kind: 'reject', reason: 'repo-not-allowed' };

  const candidates = config.pools.filter((p) => labelsServedBy(labels, p.labels));
  if (candidates.length === 0) return { kind: 'reject', reason: 'no-pool' };
  // Least privilege: a job that a build pool can serve never lands in a deploy pool.
  const build = candidates.find((p) => !p.deploy);
  if (build) return { kind: 'accept', pool: build.name };
  const deploy = candidates.find((p) => p.deploy && deployAllows(p.deploy, job));
  if (deploy) return { kind: 'accept', pool: deploy.name };
  return { kind: 'reject', reason: 'deploy-not-allowed' };
}

/** GitHub's rule: a runner can take a job when every `runs-on` label is among its labels (case-insensitive). */
export function labelsServedBy(jobLabels: readonly string[], poolLabels: readonly string[]): boolean {
  const have = new Set(poolLabels.map((l) => l.toLowerCase()));
  return jobLabels.every((l) => have.has(l.toLowerCase()));
}

/** `owner/repo` or `owner/*`, case-insensitive as GitHub's names are. */
export function repoMatches(pattern: string, repo: string): boolean {
  const [po, pr] = pattern.toLowerCase().split('/');
  const [ro, rr] = repo.toLowerCase().split('/');
  return po === ro && (pr === '*' || pr === rr);
}

/** Exact branch names, or a prefix ending in `*` (`release/*`). Case-sensitive, as git refs are. */
export function branchMatches(pattern: string, branch: string): boolean {
  return pattern.endsWith('*') ? branch.startsWith(pattern.slice(0, -1)) : pattern === branch;
}

function deployAllows(deploy: NonNullable<PolicyPool['deploy']>, job: PolicyInput): boolean {
  const branch = job.headBranch;
  return (
    deploy.repositories.some((p) => repoMatches(p, job.repo)) &&
    branch !== null &&
    deploy.branches.some((b) => branchMatches(b, branch))
  );
}
