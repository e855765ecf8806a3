import type { Redis } from 'ioredis';
import { RateBudgetError, type BudgetPriority, type PauseWhy, type RequestBudget } from '../github/index.js';

/**
 * The control's rate budget for GitHub, in Redis so every replica draws from one: a token
 * bucket (`burst` tokens, refilled at `requestsPerHour`) and a shared pause, both in one hash
 * (`keys.rateBudget`) changed only by the script below. The script reads Redis's own clock, so
 * replicas whose clocks differ still agree on the bucket and on when a pause ends.
 *
 * Tokens never go below zero, so over any window of `t` seconds all replicas together send at
 * most `burst + rate × t` requests. A request waits for its token (polling the script) for at
 * most `maxWaitMs`, then fails with `RateBudgetError`; a pause longer than that fails it at once.
 *
 * Priorities share the one bucket: a request may take a token only while the bucket holds more
 * than its priority's reserve (`reserveFor`), so when minting and reconcile drain it, the gate
 * still finds tokens (its reserve is none), and reconcile waits for a bucket with room. Reserves
 * change who goes first, never the bound above.
 */

const SCRIPT = `
if redis.replicate_commands then redis.replicate_commands() end
local key, op = KEYS[1], ARGV[1]
local rate, burst = tonumber(ARGV[2]) / 1000, tonumber(ARGV[3])
local reserve = tonumber(ARGV[5]) or 0
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local h = redis.call('HMGET', key, 'tokens', 'at', 'pause')
local tokens = tonumber(h[1]) or burst
local at = tonumber(h[2]) or now
local pause = tonumber(h[3]) or 0
-- Refill for the time since the last change; a clock that stepped back refills nothing.
if now > at then tokens = math.min(burst, tokens + (now - at) * rate) end
if pause <= now then pause = 0 end
local answer
if op == 'take' then
  if pause > 0 then answer = {0, pause - now, now}
  elseif tokens >= 1 + reserve then tokens = tokens - 1; answer = {1, 0, now}
  else answer = {0, math.ceil((1 + reserve - tokens) / rate), now} end
elseif op == 'pause' then
  local untilMs = now + tonumber(ARGV[4])
  local from = math.max(pause, now)
  if untilMs > pause then pause = untilMs end
  answer = {math.max(0, untilMs - from), pause, now}
else
  return {tostring(tokens), pause, now}
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'at', now, 'pause', pause)
-- Gone once it would read full again and no pause is left: an idle budget leaves no key.
redis.call('PEXPIRE', key, math.max(math.ceil((burst - tokens) / rate), pause - now) + 1000)
return answer
`;

export interface RateBudgetOptions {
  requestsPerHour: number;
  burst: number;
  /** The longest one request waits for its token before failing (default 120 000). */
  maxWaitMs?: number;
}

export interface BudgetState {
  tokens: number;
  /** Epoch ms (Redis's clock) the shared pause lasts until; 0 when none is in force. */
  pausedUntilMs: number;
}

type Op = 'take' | 'pause' | 'peek';

/**
 * The tokens a priority leaves in the bucket for those above it: minting leaves a tenth of the
 * burst to the gate, reconcile a quarter (so minting has room above it too). With burst 100, a
 * gate's three reads find tokens while mints and polls wait for the refill; with a burst under 4
 * there is nothing to set aside and everyone shares.
 */
export function reserveFor(priority: BudgetPriority, burst: number): number {
  if (priority === 'start') return 0;
  return Math.floor(burst * (priority === 'mint' ? 0.1 : 0.25));
}

export interface StoredPause {
  /** Redis's clock: when the pause was stored, and when the shared pause (maybe longer) ends. */
  storedAtMs: number;
  untilMs: number;
  /** How much longer the shared pause got (0: a longer one stood). */
  extendedMs: number;
}

export class RedisRateBudget implements RequestBudget {
  private readonly script: (key: string, op: Op, perSecond: string, burst: string, delayMs: string, reserve: string) => Promise<unknown[]>;
  private readonly perSecond: string;
  private readonly burst: string;
  private readonly burstN: number;
  private readonly maxWaitMs: number;

  constructor(redis: Redis, private readonly key: string, o: RateBudgetOptions) {
    if (!(o.requestsPerHour > 0)) throw new RangeError('github.rateBudget.requestsPerHour: must be more than 0');
    if (!(o.burst >= 1)) throw new RangeError('github.rateBudget.burst: must be at least 1');
    redis.defineCommand('hangarRateBudget', { numberOfKeys: 1, lua: SCRIPT });
    const commands = redis as unknown as Record<string, (...a: string[]) => Promise<unknown[]>>;
    this.script = commands.hangarRateBudget!.bind(redis);
    this.perSecond = String(o.requestsPerHour / 3600);
    this.burst = String(o.burst);
    this.burstN = o.burst;
    this.maxWaitMs = o.maxWaitMs ?? 120_000;
  }

  async take(route: string, priority: BudgetPriority = 'mint'): Promise<void> {
    await this.takeAt(route, priority);
  }

  /** `take`, resolving to when the token was granted by Redis's clock. */
  async takeAt(route: string, priority: BudgetPriority = 'mint'): Promise<number> {
    const started = Date.now();
    const reserve = String(reserveFor(priority, this.burstN));
    for (;;) {
      const [granted, waitMs, now] = (await this.run('take', '0', reserve)) as [number, number, number];
      if (granted === 1) return now;
      const waited = Date.now() - started;
      if (waited + waitMs > this.maxWaitMs) {
        throw new RateBudgetError(
          Date.now() + waitMs,
          `${route}: the GitHub rate budget (github.rateBudget) has no request free for ${Math.ceil(waitMs / 1000)} s, longer than a request waits (${this.maxWaitMs / 1000} s)`,
        );
      }
      // A little jitter, so replicas waiting for the same token do not all ask at once.
      await sleep(Math.max(1, waitMs) + Math.random() * Math.min(20, waitMs / 10));
    }
  }

  async backOff(untilMs: number, why: PauseWhy): Promise<number> {
    return (await this.pause(untilMs, why)).extendedMs;
  }

  /** `backOff`, telling when by Redis's clock. */
  async pause(untilMs: number, _why: PauseWhy): Promise<StoredPause> {
    // The pause travels as a delay from now, so it ends by Redis's clock, whatever ours reads.
    const delayMs = Math.max(0, Math.round(untilMs - Date.now()));
    const [extendedMs, until, now] = (await this.run('pause', String(delayMs))) as [number, number, number];
    return { storedAtMs: now, untilMs: until, extendedMs };
  }

  private run(op: Op, delayMs: string, reserve = '0'): Promise<unknown[]> {
    return this.script(this.key, op, this.perSecond, this.burst, delayMs, reserve);
  }

  /** The bucket as it reads now (refilled, not changed), for /metrics. */
  async state(): Promise<BudgetState> {
    const [tokens, pause] = (await this.run('peek', '0')) as [string, number, number];
    return { tokens: Number(tokens), pausedUntilMs: pause };
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
