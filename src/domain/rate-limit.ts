/**
 * What one GitHub answer says about waiting, as GitHub documents it
 * (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api):
 *
 * 1. `retry-after` on a 403 or 429: wait that many seconds.
 * 2. `x-ratelimit-remaining: 0`: the primary limit is spent; wait until `x-ratelimit-reset`
 *    (epoch seconds), and a second more, since the reset itself may still be refused. A success
 *    can carry it too: it was the last request of the hour.
 * 3. A 403 or 429 that says it is a secondary limit, with neither header: wait at least a minute.
 *    GitHub marks a secondary limit only in its message, so that is what is read here.
 *
 * Anything else (a 403 for a missing permission) is no reason to pause. Pure: no clock of its own.
 */

export type PauseWhy = 'retry-after' | 'primary' | 'secondary';

export interface Pause {
  /** Epoch milliseconds, on the clock `nowMs` came from. */
  untilMs: number;
  why: PauseWhy;
}

export interface LimitAnswer {
  status: number;
  /** Lower-case header names, as fetch and Octokit give them. */
  headers: Readonly<Record<string, string | number | undefined>>;
  /** GitHub's `message`, when the body had one. */
  message?: string | undefined;
}

/** No pause is taken longer than this, whatever a header says: the primary window is one hour. */
export const MAX_PAUSE_MS = 3_600_000;

const SECONDARY = /secondary rate limit/i;

export function pauseFor(answer: LimitAnswer, nowMs: number, fallbackSeconds = 60): Pause | null {
  const limited = answer.status === 403 || answer.status === 429;
  const cap = (untilMs: number) => Math.min(Math.max(untilMs, nowMs), nowMs + MAX_PAUSE_MS);
  const retryAfter = seconds(answer.headers['retry-after']);
  if (limited && retryAfter !== undefined) return { untilMs: cap(nowMs + retryAfter * 1000), why: 'retry-after' };
  const remaining = seconds(answer.headers['x-ratelimit-remaining']);
  const reset = seconds(answer.headers['x-ratelimit-reset']);
  if (remaining === 0 && reset !== undefined) return { untilMs: cap((reset + 1) * 1000), why: 'primary' };
  if (limited && answer.message !== undefined && SECONDARY.test(answer.message)) {
    return { untilMs: cap(nowMs + fallbackSeconds * 1000), why: 'secondary' };
  }
  return null;
}

/** A non-negative whole number of seconds, or undefined for a missing or malformed header. */
function seconds(v: string | number | undefined): number | undefined {
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}
