/**
 * The shapes the GitHub client hands back: only the fields Hangar uses, camelCased, so callers
 * never depend on Octokit's generated types and a GitHub schema change shows up in one place.
 */

/** Where a runner is registered: on one repository or on an organization. */
export type RunnerScope =
  | { scope: 'repo'; owner: string; repo: string }
  | { scope: 'org'; owner: string };

export interface Runner {
  id: number;
  name: string;
  os: string;
  status: 'online' | 'offline' | string;
  busy: boolean;
  labels: string[];
}

/** A freshly registered just-in-time runner. `encodedJitConfig` is a credential: never log it. */
export interface JitConfig {
  runner: { id: number; name: string };
  encodedJitConfig: string;
}

export type RepositoryVisibility = 'public' | 'private' | 'internal';

/** What policy needs of a repository: is it public, is it a fork. */
export interface Repository {
  id: number;
  /** `owner/name`, as GitHub spells it. */
  fullName: string;
  visibility: RepositoryVisibility;
  /** False only for public repositories (internal ones are private too). */
  private: boolean;
  fork: boolean;
}

export interface WorkflowJob {
  id: number;
  runId: number;
  runAttempt: number;
  name: string;
  status: string;
  conclusion: string | null;
  labels: string[];
  runnerId: number | null;
  runnerName: string | null;
  headBranch: string | null;
  headSha: string;
  workflowName: string | null;
}

export interface WorkflowRun {
  id: number;
  runAttempt: number;
  name: string | null;
  event: string;
  status: string | null;
  conclusion: string | null;
  headBranch: string | null;
  headSha: string;
  /** `owner/repo` the run's commit came from; differs from `repositoryFullName` for a fork PR. */
  headRepositoryFullName: string | null;
  repositoryFullName: string;
}

/**
 * What never changes for a run, whatever its attempts and status: what started it and where its
 * commit came from. Safe to remember: a fork PR's run stays a fork PR's run.
 */
export type RunFacts = Pick<WorkflowRun, 'id' | 'event' | 'headBranch' | 'headSha' | 'headRepositoryFullName' | 'repositoryFullName'>;

/**
 * Where the client remembers runs' facts (the control: Redis, shared by its replicas), so the
 * vetter, the mint, the sweep and the gate read a run from GitHub once between them.
 */
export interface RunFactsStore {
  get(runId: number): Promise<RunFacts | null>;
  put(facts: readonly RunFacts[]): Promise<void>;
}

/** What `cancelRun` did: cancelled the run's open jobs, or found every job already completed. */
export type RunCancellation = 'cancelled' | 'already-completed';

export interface HookDelivery {
  id: number;
  guid: string;
  deliveredAt: Date;
  redelivery: boolean;
  /** GitHub's summary, e.g. `OK` or `Invalid HTTP Response: 503`. */
  status: string;
  statusCode: number;
  event: string;
  action: string | null;
  installationId: number | null;
  repositoryId: number | null;
}

/** One delivery as `GET /app/hook/deliveries/{id}` shows it: what was sent, as GitHub sent it. */
export interface HookDeliveryDetail extends HookDelivery {
  /** The request's delivery and event headers (names lower-cased); null when GitHub's record lacks one. */
  headers: { 'x-github-delivery': string | null; 'x-github-event': string | null };
  /** The JSON payload as GitHub sent it (parsed). */
  payload: unknown;
}

/** Which repositories of the organization may use a runner group: all, selected ones, or all private ones. */
export type RunnerGroupVisibility = 'all' | 'selected' | 'private';

/** An organization's self-hosted runner group: GitHub's own limit on who may use its runners. */
export interface RunnerGroup {
  id: number;
  name: string;
  visibility: RunnerGroupVisibility;
  /** Group 1, `Default`. */
  default: boolean;
  allowsPublicRepositories: boolean;
  /** Only the workflows in `selectedWorkflows` may use the group. */
  restrictedToWorkflows: boolean;
  selectedWorkflows: string[];
  /** Set by the enterprise, not the organization. */
  inherited: boolean;
}

export interface RunnerGroupRepository {
  id: number;
  /** `owner/name`, as GitHub spells it. */
  fullName: string;
  private: boolean;
}
