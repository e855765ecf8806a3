import { randomBytes } from 'node:crypto';

/** The sim's in-memory GitHub: plain records, no behaviour (that lives in store.ts). */

export type Visibility = 'public' | 'private' | 'internal';
export type RunEvent = 'push' | 'pull_request' | 'schedule' | 'workflow_dispatch';
export type JobStatus = 'queued' | 'in_progress' | 'completed';
export type JobConclusion = 'success' | 'failure' | 'cancelled';

export interface Owner {
  login: string;
  id: number;
  nodeId: string;
  type: 'Organization';
}

export interface Repo {
  id: number;
  nodeId: string;
  owner: Owner;
  name: string;
  fullName: string;
  visibility: Visibility;
  /** The repository this one is a fork of, or null. */
  parent: Repo | null;
  createdAt: string;
  defaultBranch: string;
}

export interface Run {
  id: number;
  nodeId: string;
  repo: Repo;
  /** Where the head commit lives: the repo itself, or a fork for a fork pull request. */
  headRepo: Repo;
  event: RunEvent;
  headBranch: string;
  headSha: string;
  workflowName: string;
  workflowId: number;
  path: string;
  runNumber: number;
  runAttempt: number;
  createdAt: string;
  updatedAt: string;
  jobIds: number[];
}

export interface Job {
  id: number;
  nodeId: string;
  run: Run;
  /** The run attempt it belongs to (a re-run job is a new job of a new attempt). */
  runAttempt: number;
  name: string;
  labels: string[];
  /** Shell commands, one per step. */
  steps: string[];
  status: JobStatus;
  conclusion: JobConclusion | null;
  createdAt: string;
  startedAt: string | null;
  completedAt: string | null;
  runnerId: number | null;
  runnerName: string | null;
  runnerGroupId: number | null;
  runnerGroupName: string | null;
  exitCode: number | null;
  output: string;
  /** Exit code of each step that ran (parsed from the script's markers), for the `steps` array. */
  stepExits: number[];
}

export type RunnerScope = 'repo' | 'org';

/** Which repositories of its organization may use a runner group's runners. */
export type GroupVisibility = 'all' | 'selected' | 'private';

export interface RunnerGroup {
  id: number;
  /** The organization's login. */
  org: string;
  name: string;
  visibility: GroupVisibility;
  /** Group 1, `Default`, in every organization. */
  default: boolean;
  allowsPublicRepositories: boolean;
  restrictedToWorkflows: boolean;
  /** `owner/repo/.github/workflows/file.yml@ref`, as GitHub keeps them. */
  selectedWorkflows: string[];
  /** Meaningful for visibility `selected` only. */
  selectedRepos: Repo[];
}

export interface Runner {
  id: number;
  name: string;
  labels: string[];
  scope: RunnerScope;
  /** Set for repo scope. */
  repo: Repo | null;
  /** The owning organization's login (org scope), or the repo's owner (repo scope). */
  org: string;
  groupId: number;
  workFolder: string;
  /** offline until the runner first polls, as GitHub shows a JIT runner that has not connected. */
  status: 'offline' | 'online';
  os: string;
  busy: boolean;
  createdAt: string;
  busySince: string | null;
  deletedAt: string | null;
  jobId: number | null;
  /** Secret: the runner's credential for the /_runner protocol. */
  token: string;
}

/** GitHub prints timestamps to the second. */
export const isoNow = (): string => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');

export const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

export const nodeId = (kind: string, id: number): string => Buffer.from(`0${kind.length}:${kind}${id}`).toString('base64');

/** Monotonic id sequences, each starting in the range GitHub's ids live in today. */
export class Ids {
  private next = { owner: 90_000_001, repo: 700_000_001, run: 9_000_000_001, job: 25_000_000_001, runner: 1, runnerGroup: 2, delivery: 1_000_000_001, workflow: 80_000_001, app: 1_100_001 };
  take(kind: keyof Ids['next']): number {
    return this.next[kind]++;
  }
}
