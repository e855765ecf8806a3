import { GitHubError } from '../domain/errors.js';

/**
 * Failures a caller is expected to act on get their own class (branch with `instanceof`);
 * everything else is a plain `GitHubError {status}`. Messages carry GitHub's own message and
 * the route, never a token, a key or a JIT config.
 */

/** `generate-jitconfig` answered 409: a runner with this name is already registered. */
export class RunnerNameTakenError extends GitHubError {
  readonly runnerName: string;
  constructor(runnerName: string, message: string) {
    super(409, message);
    this.runnerName = runnerName;
  }
}

/** Deleting a runner answered 422: it is running a job right now. Try again after the job. */
export class RunnerBusyError extends GitHubError {
  readonly runnerId: number;
  constructor(runnerId: number, message: string) {
    super(422, message);
    this.runnerId = runnerId;
  }
}

/** The HTTP status of an Octokit `RequestError`, or undefined for anything else. */
export function statusOf(err: unknown): number | undefined {
  if (typeof err === 'object' && err !== null && 'status' in err && typeof err.status === 'number') {
    return err.status;
  }
  return undefined;
}

function githubMessage(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('response' in err)) return undefined;
  const data = (err.response as { data?: unknown } | undefined)?.data;
  if (typeof data === 'object' && data !== null && 'message' in data && typeof data.message === 'string') {
    return data.message;
  }
  return undefined;
}

/**
 * Turns an Octokit error into a `GitHubError`. The Octokit error is deliberately not kept as
 * `cause`: it holds the request and response, and a logger serialising it could leak either.
 * A request that got no response (network, timeout) has status 500, as Octokit reports it.
 */
export function toGitHubError(err: unknown, op: string): unknown {
  // Already ours (the rate budget's refusal): it is not an answer from GitHub.
  if (err instanceof GitHubError) return err;
  const status = statusOf(err);
  if (status === undefined) return err;
  const detail = githubMessage(err) ?? (err instanceof Error ? err.message : 'no response');
  return new GitHubError(status, `${op}: GitHub answered ${status}: ${detail}`);
}

/** Runs one GitHub call and rethrows its failure as a `GitHubError`. */
export async function githubCall<T>(op: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toGitHubError(err, op);
  }
}
