import { createAppAuth } from '@octokit/auth-app';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { Octokit } from '@octokit/rest';
import Bottleneck from 'bottleneck';
import type { Logger } from 'pino';
import { requestBudgetPlugin, requestBudgetPrepayPlugin, type RequestBudget, type RequestObserver } from './request-budget.js';

/**
 * One Octokit, authenticated as the App (JWT) or as one installation, with GitHub's
 * rate-limit etiquette built in: wait out `retry-after` on secondary limits and the reset on
 * primary ones (plugin-throttling), retry 5xx with backoff (plugin-retry), a bounded number
 * of times each. A request that gives up surfaces as the original error. With a budget, every
 * attempt (retries and token requests included) first takes a token from it, and a "wait" from
 * GitHub pauses everyone sharing it (request-budget.ts).
 */

export interface ThrottleOptions {
  /** Rate-limit retries of one request before giving up (default 3). */
  maxRetries?: number;
  /** A stated delay longer than this is not waited out; the call fails with 403/429 (default 120). */
  maxRetryAfterSeconds?: number;
  /** Used when a secondary limit comes without `retry-after` (default 60, as GitHub advises). */
  fallbackRetryAfterSeconds?: number;
  /** Minimum spacing of POST/PATCH/PUT/DELETE; GitHub asks for 1 s (default 1000). */
  writeSpacingMs?: number;
  /** 5xx and network retries of one request (default 3). */
  serverErrorRetries?: number;
}

export interface OctokitOptions {
  apiUrl: string;
  appId: number;
  privateKey: string;
  /** Absent: the Octokit authenticates as the App itself (JWT), for `/app/*` routes. */
  installationId?: number;
  logger: Logger;
  throttle?: ThrottleOptions;
  /** Per attempt, not per call with its retries (default 30 000). */
  requestTimeoutMs?: number;
  /** Shared by every Octokit of one client, so write spacing holds across installations. */
  writeGroup?: Bottleneck.Group;
  /**
   * Shared by every Octokit of one client: plugin-throttling keeps its limiters (10 requests in
   * flight, one token request at a time, the write spacing) per id. Default: one per process.
   */
  throttleId?: string;
  /** Shared by every Octokit of one client (and, through Redis, by every control replica). */
  budget?: RequestBudget;
  observer?: RequestObserver;
}

export function createWriteGroup(throttle: ThrottleOptions | undefined): Bottleneck.Group {
  return new Bottleneck.Group({ maxConcurrent: 1, minTime: throttle?.writeSpacingMs ?? 1000 });
}

// The budget first: plugins registered earlier wrap the request more closely, so the retries
// plugin-throttling and plugin-retry make go through it again. And last: a first attempt takes
// its token before plugin-throttling holds a place for it (request-budget.ts).
const HangarOctokit = Octokit.plugin(requestBudgetPlugin, throttling, retry, requestBudgetPrepayPlugin);
export type HangarOctokit = InstanceType<typeof HangarOctokit>;

/** Statuses a retry cannot fix, or that plugin-throttling owns (403, 429). 409 is a name clash. */
const DO_NOT_RETRY = [400, 401, 403, 404, 409, 410, 422, 429, 451];

export function createOctokit(opts: OctokitOptions): HangarOctokit {
  const log = opts.logger;
  const t = opts.throttle ?? {};
  const maxRetries = t.maxRetries ?? 3;
  const maxWait = t.maxRetryAfterSeconds ?? 120;
  const timeoutMs = opts.requestTimeoutMs ?? 30_000;
  const fallbackRetryAfterSeconds = t.fallbackRetryAfterSeconds ?? 60;

  const onLimit =
    (kind: 'primary' | 'secondary') =>
    (retryAfter: number, options: { method: string; url: string }, _octokit: unknown, retryCount: number): boolean => {
      const fields = { kind, method: options.method, route: options.url, retryAfterSeconds: retryAfter, retryCount };
      if (retryCount >= maxRetries || retryAfter > maxWait) {
        log.warn(fields, 'github rate limited, giving up');
        return false;
      }
      log.warn(fields, 'github rate limited, retrying after the stated delay');
      return true;
    };

  return new HangarOctokit({
    baseUrl: opts.apiUrl.replace(/\/+$/, ''),
    userAgent: 'hangar',
    authStrategy: createAppAuth,
    auth: {
      appId: opts.appId,
      privateKey: opts.privateKey,
      ...(opts.installationId === undefined ? {} : { installationId: opts.installationId }),
    },
    request: {
      // A timeout per attempt, so a hung connection is retried rather than hanging a loop.
      fetch: (url: string | URL, init?: RequestInit) =>
        fetch(url, { ...init, signal: init?.signal ?? AbortSignal.timeout(timeoutMs) }),
    },
    throttle: {
      onRateLimit: onLimit('primary'),
      onSecondaryRateLimit: onLimit('secondary'),
      fallbackSecondaryRateRetryAfter: fallbackRetryAfterSeconds,
      write: opts.writeGroup ?? createWriteGroup(t),
      ...(opts.throttleId ? { id: opts.throttleId } : {}),
    },
    retry: { doNotRetry: DO_NOT_RETRY, retries: t.serverErrorRetries ?? 3 },
    requestBudget: { budget: opts.budget, observer: opts.observer, logger: log, fallbackRetryAfterSeconds },
    // Octokit's own lines are not constant messages; keep them at debug, data in a field.
    // Its `error` lines are failures we rethrow as GitHubError: the caller decides the level.
    log: {
      debug: () => undefined,
      info: (msg: string) => log.debug({ detail: msg }, 'github request'),
      warn: (msg: string) => log.warn({ detail: msg }, 'github client warning'),
      error: (msg: string) => log.debug({ detail: msg }, 'github request failed'),
    },
  });
}
