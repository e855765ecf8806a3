import { AsyncLocalStorage } from 'node:async_hooks';
import type { Octokit } from '@octokit/core';
import type { OctokitOptions } from '@octokit/core/types';
import type { Logger } from 'pino';
import { GitHubError } from '../domain/errors.js';
import { pauseFor, type Pause, type PauseWhy } from '../domain/rate-limit.js';
import { statusOf } from './errors.js';

export type { PauseWhy } from '../domain/rate-limit.js';

/**
 * The one rate budget every request to GitHub draws from: each attempt (retries and
 * installation-token requests too) takes a token first, and an answer that says "wait" pauses
 * every holder of the budget, not only the request that got it. The client does not know where
 * the budget lives; the control keeps it in Redis (queue/rate-budget.ts) so all its replicas
 * share one, and a CLI command without Redis has none.
 */
export interface RequestBudget {
  /**
   * Resolves when one request may go out: a token taken and no pause in force. Rejects with
   * `RateBudgetError` rather than wait past its bound, so no call hangs on a long pause. A
   * request of a lower `priority` leaves the bucket's last tokens to higher ones.
   */
  take(route: string, priority: BudgetPriority): Promise<void>;
  /**
   * Holds every holder's requests until `untilMs` (epoch ms, this process's clock). A pause
   * already set that lasts longer stands. Resolves to how many ms the shared pause grew by.
   */
  backOff(untilMs: number, why: PauseWhy): Promise<number>;
}

/**
 * Who a request is for, highest first. When the bucket runs low its last tokens go to the gate:
 * a runner waits in its job-started hook for the answer, and an answer that cannot be had in
 * time refuses the job (GitHub then fails it). Minting comes next (a job waits for its runner);
 * reconcile's polls and sweeps, which only catch up, wait for a bucket with room to spare.
 */
export const BUDGET_PRIORITIES = ['start', 'mint', 'background'] as const;
export type BudgetPriority = (typeof BUDGET_PRIORITIES)[number];

const priorityScope = new AsyncLocalStorage<BudgetPriority>();

/**
 * Runs `fn` with every GitHub request it makes (retries and token requests included) drawn at
 * `priority`. Asynchronous context, so the client's methods need no extra argument.
 */
export function withBudgetPriority<T>(priority: BudgetPriority, fn: () => Promise<T>): Promise<T> {
  return priorityScope.run(priority, fn);
}

/** The priority in force: `mint` outside any scope (the intake's and the operator's calls too). */
export const currentBudgetPriority = (): BudgetPriority => priorityScope.getStore() ?? 'mint';

/** What the client tells whoever counts its requests (the control's /metrics). */
export interface RequestObserver {
  /** One attempt's outcome: GitHub's status, or `none` when no answer came (network, timeout). */
  answered(route: string, status: number | 'none'): void;
  /** GitHub said to wait; the shared pause grew by `extendedMs` (0: a longer one was in force). */
  rateLimited(route: string, why: PauseWhy, extendedMs: number): void;
}

/** The budget would not let a request out within its bound (a long pause, or a starved bucket). */
export class RateBudgetError extends GitHubError {
  readonly retryAtMs: number;
  constructor(retryAtMs: number, message: string) {
    super(429, message);
    this.retryAtMs = retryAtMs;
  }
}

export interface BudgetHookOptions {
  budget?: RequestBudget | undefined;
  observer?: RequestObserver | undefined;
  logger: Logger;
  /** Secondary limit without `retry-after`: pause this long (s). */
  fallbackRetryAfterSeconds: number;
}

/**
 * An Octokit plugin. It must come before plugin-throttling and plugin-retry in
 * `Octokit.plugin(...)`: hooks registered first run innermost, so every retry those plugins make
 * passes through here again and draws its own token. With requestBudgetPrepayPlugin last, the
 * first attempt's token is taken there instead.
 */
export function requestBudgetPlugin(octokit: Octokit, options: OctokitOptions): Record<string, never> {
  const o = (options as { requestBudget?: BudgetHookOptions }).requestBudget;
  if (!o || (!o.budget && !o.observer)) return {};
  octokit.hook.wrap('request', async (request, opts) => {
    const route = routeLabel(opts.method, opts.url);
    const r = opts.request as Prepaid | undefined;
    // A first attempt's token was taken outside the limiters (requestBudgetPrepayPlugin); a
    // retry, or a request made on the way (an installation token), takes its own here.
    if (r?.hangarPrepaid === true && !(Number(r.retryCount) > 0)) r.hangarPrepaid = false;
    else await o.budget?.take(route, currentBudgetPriority());
    try {
      const res = await request(opts);
      o.observer?.answered(route, res.status);
      await notePause(o, route, { status: res.status, headers: res.headers });
      return res;
    } catch (err) {
      // Octokit reports a request that got no answer (network, timeout) as a 500 with no response.
      const status = statusOf(err);
      const answered = status !== undefined && (err as { response?: unknown }).response !== undefined;
      o.observer?.answered(route, answered ? status : 'none');
      if (answered) await notePause(o, route, answerOf(err, status));
      throw err;
    }
  });
  return {};
}

interface Prepaid {
  hangarPrepaid?: boolean;
  retryCount?: number;
}

/**
 * The same budget, outermost: it takes a request's first token before plugin-throttling's
 * limiters hold a place for it. plugin-throttling lets ten requests of a process be in flight
 * and queues the rest in order; were the token taken inside, ten mints and polls waiting for
 * tokens would hold every place while a gate's read, whose priority would give it the next
 * token, queued behind them past its bound. Taken here, a request waits for its token (in
 * priority order, see RedisRateBudget) holding nothing, and the innermost hook only counts
 * what it was given. Register last in `Octokit.plugin(...)`.
 */
export function requestBudgetPrepayPlugin(octokit: Octokit, options: OctokitOptions): Record<string, never> {
  const budget = (options as { requestBudget?: BudgetHookOptions }).requestBudget?.budget;
  if (!budget) return {};
  octokit.hook.wrap('request', async (request, opts) => {
    await budget.take(routeLabel(opts.method, opts.url), currentBudgetPriority());
    opts.request = { ...(opts.request ?? {}), hangarPrepaid: true } as typeof opts.request;
    return request(opts);
  });
  return {};
}

async function notePause(o: BudgetHookOptions, route: string, answer: Parameters<typeof pauseFor>[0]): Promise<void> {
  const pause: Pause | null = pauseFor(answer, Date.now(), o.fallbackRetryAfterSeconds);
  if (!pause) return;
  // A budget that cannot store the pause must not turn GitHub's answer into another error.
  const extendedMs = o.budget ? await o.budget.backOff(pause.untilMs, pause.why).catch((err: unknown) => {
    o.logger.error({ route, err: err instanceof Error ? err.message : String(err) }, 'github pause not shared');
    return 0;
  }) : 0;
  o.observer?.rateLimited(route, pause.why, extendedMs);
  const fields = { route, why: pause.why, status: answer.status, pausedUntil: new Date(pause.untilMs).toISOString(), extendedMs };
  if (extendedMs > 0) o.logger.warn(fields, 'github rate limited, every replica paused');
  else o.logger.debug(fields, 'github rate limited, pause already in force');
}

function answerOf(err: unknown, status: number): Parameters<typeof pauseFor>[0] {
  const response = (err as { response?: { headers?: Record<string, string>; data?: unknown } }).response;
  const data = response?.data;
  const message = typeof data === 'object' && data !== null && 'message' in data && typeof data.message === 'string' ? data.message : undefined;
  return { status, headers: response?.headers ?? {}, message };
}

/**
 * A metrics label with few values: Octokit's route template (`/repos/{owner}/{repo}/...`) as
 * is. Paginated calls arrive with the values filled in (and pagination links as full URLs), so
 * those are put back into the template's shape: the owner and repository after `repos`, the
 * organization after `orgs`, numbers as `{n}`; no query, no host or GHES base path.
 */
export function routeLabel(method: string, url: string): string {
  if (url.includes('{')) return `${method} ${url.split('?')[0]}`;
  const path = /^https?:\/\//.test(url) ? new URL(url).pathname.replace(/^\/api\/v3(?=\/)/, '') : url.split('?')[0]!;
  const parts = path.split('/');
  for (let i = 0; i < parts.length; i++) {
    if (parts[i] === 'repos' && i + 2 < parts.length) parts.splice(i + 1, 2, '{owner}', '{repo}');
    else if (parts[i] === 'orgs' && i + 1 < parts.length) parts.splice(i + 1, 1, '{org}');
    else if (/^\d+$/.test(parts[i]!)) parts[i] = '{n}';
  }
  return `${method} ${parts.join('/')}`;
}
