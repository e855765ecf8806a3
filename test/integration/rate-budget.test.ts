import { Redis } from 'ioredis';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, expect, test } from 'vitest';
import { RateBudgetError, withBudgetPriority, type BudgetPriority, type PauseWhy, type RequestBudget } from '../../src/github/index.js';
import { githubMetrics } from '../../src/main/github-metrics.js';
import { keys } from '../../src/queue/keys.js';
import { RedisRateBudget, type RateBudgetOptions, type StoredPause } from '../../src/queue/rate-budget.js';
import { startTestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';
import { APP_ID, captureLogger, startSimClient, type SimClient } from '../github/helpers/sim.js';

/**
 * One rate budget for every GitHub call, shared through Redis by every control replica. Each
 * "replica" here is a GitHub client with a budget on a Redis connection of its own; the sim is
 * GitHub, and its call record (with arrival times) is what the assertions read.
 */

let s: SimClient;
const conns: Redis[] = [];
const prefixes: string[] = [];
const RUNNERS = { scope: 'repo', owner: 'acme', repo: 'app' } as const;

beforeAll(async () => {
  s = await startSimClient();
});
afterEach(async () => {
  s.sim.setKnobs({ rateLimitShare: 0 });
  s.sim.resetCalls();
  for (const c of conns.splice(0)) c.disconnect();
  for (const p of prefixes.splice(0)) await dropPrefix(redisUrl(), p);
});
afterAll(async () => s?.close());

/** A replica's budget: its own Redis connection, the prefix's one budget key. */
function budgetOn(prefix: string, o: RateBudgetOptions): RedisRateBudget {
  const redis = new Redis(redisUrl());
  conns.push(redis);
  return new RedisRateBudget(redis, keys(prefix).rateBudget, o);
}

/** The budget as a replica used it: when each token came and each pause was stored, by Redis's clock. */
class Recorded implements RequestBudget {
  readonly grants: number[] = [];
  readonly pauses: StoredPause[] = [];
  constructor(private readonly inner: RedisRateBudget) {}
  async take(route: string, priority: BudgetPriority): Promise<void> {
    this.grants.push(await this.inner.takeAt(route, priority));
  }
  async backOff(untilMs: number, why: PauseWhy): Promise<number> {
    const p = await this.inner.pause(untilMs, why);
    this.pauses.push(p);
    return p.extendedMs;
  }
}

test('two replicas sharing a budget of 20/s, burst 5, stay under it together over 100 calls', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const budget = { requestsPerHour: 72_000, burst: 5 };
  const ra = new Recorded(budgetOn(prefix, budget));
  const rb = new Recorded(budgetOn(prefix, budget));
  const a = s.client({ budget: ra });
  const b = s.client({ budget: rb });
  s.sim.resetCalls();
  const t0 = Date.now() - 1;

  await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).listRunners(RUNNERS)));

  const log = s.sim.callLog();
  expect(log.filter((e) => e.call === 'GET /repos/:owner/:repo/actions/runners' && e.status === 200)).toHaveLength(100);
  // What reached GitHub: by each arrival, no more calls than burst + rate × the time since the
  // start (every call was let out after t0, and before it arrived). The last is the whole run.
  const arrivals = log.map((e) => e.at).sort((x, y) => x - y);
  arrivals.forEach((at, i) => expect(i + 1, `call ${i + 1} at +${at - t0} ms`).toBeLessThanOrEqual(budget.burst + (20 * (at - t0)) / 1000));
  // What the budget let out, over every window between two grants (Redis ms are whole: 2 ms of slack).
  const grants = [...ra.grants, ...rb.grants].sort((x, y) => x - y);
  expect(grants).toHaveLength(log.length);
  for (let i = 0; i < grants.length; i++) {
    for (let j = i; j < grants.length; j++) {
      const allowed = budget.burst + (20 * (grants[j]! - grants[i]! + 2)) / 1000;
      if (j - i + 1 > allowed) expect.fail(`${j - i + 1} grants in ${grants[j]! - grants[i]!} ms, more than ${allowed}`);
    }
  }
}, 40_000);

test('secondary limits pause every replica: 500 calls all succeed, none reach GitHub during a shared pause', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const budget = { requestsPerHour: 3_600_000, burst: 1000 };
  const registry = new Registry();
  const shared = budgetOn(prefix, budget);
  const observer = githubMetrics(registry, shared);
  const { logger, lines } = captureLogger();
  // Ten rate-limit retries per call: with one answer in ten refused, four in a row is no rarity over 500 calls.
  const throttle = { maxRetries: 10 };
  const ra = new Recorded(shared);
  const rb = new Recorded(budgetOn(prefix, budget));
  const a = s.client({ budget: ra, observer, logger, throttle });
  const b = s.client({ budget: rb, observer, logger, throttle });
  await Promise.all([a, b].map((c) => c.listRunners(RUNNERS))); // tokens first: the pauses below are about listings
  s.sim.resetCalls();
  for (const r of [ra, rb]) r.grants.length = 0;
  s.sim.setKnobs({ rateLimitShare: 0.1, retryAfterSeconds: 1, seed: 11 });

  const results = await Promise.all(Array.from({ length: 500 }, (_, i) => (i % 2 ? a : b).listRunners(RUNNERS)));

  expect(results).toHaveLength(500);
  const log = s.sim.callLog();
  expect(log.filter((e) => e.status === 200)).toHaveLength(500);
  const limited = log.filter((e) => e.status === 403).length;
  expect(limited).toBeGreaterThan(0);

  // Every attempt drew a token, plugin-throttling's retries too; none was handed out while a
  // stored pause was in force, by either replica.
  const pauses = [...ra.pauses, ...rb.pauses];
  const grants = [...ra.grants, ...rb.grants].sort((x, y) => x - y);
  expect(grants).toHaveLength(log.length);
  expect(pauses.length).toBeGreaterThan(0);
  for (const p of pauses) expect(grants.filter((g) => g > p.storedAtMs && g < p.untilMs), JSON.stringify(p)).toEqual([]);
  // And from GitHub's side: during a pause the only calls that arrive are ones already on the
  // way when it was stored (let out before it, not yet arrived).
  for (const p of pauses) {
    const inFlight = grants.filter((g) => g <= p.storedAtMs).length - log.filter((e) => e.at <= p.storedAtMs).length;
    const during = log.filter((e) => e.at > p.storedAtMs && e.at < p.untilMs).length;
    expect(during, JSON.stringify({ ...p, inFlight })).toBeLessThanOrEqual(Math.max(0, inFlight));
  }

  const text = await registry.metrics();
  expect(metric(text, 'hangar_github_rate_limited_total{why="retry-after"}')).toBe(limited);
  expect(metric(text, 'hangar_github_backoff_seconds_total')).toBeGreaterThanOrEqual(1);
  expect(metric(text, 'hangar_github_requests_total{route="GET /repos/{owner}/{repo}/actions/runners",status="403"}')).toBe(limited);
  expect(metric(text, 'hangar_github_requests_total{route="GET /repos/{owner}/{repo}/actions/runners",status="200"}')).toBe(502);
  expect(lines.filter((l) => l.msg === 'github rate limited, every replica paused' && l.why === 'retry-after').length).toBeGreaterThan(0);
}, 90_000);

test('a pause longer than a request may wait fails the call at once, and nothing reaches GitHub', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const budget = budgetOn(prefix, { requestsPerHour: 3_600_000, burst: 100, maxWaitMs: 2000 });
  const gh = s.client({ budget });
  await gh.listRunners(RUNNERS);
  // What another replica stored on a primary limit spent for the next ten minutes.
  await budget.backOff(Date.now() + 600_000, 'primary');
  s.sim.resetCalls();

  const err = await gh.listRunners(RUNNERS).then(() => null, (e: unknown) => e);

  expect(err).toBeInstanceOf(RateBudgetError);
  expect((err as RateBudgetError).status).toBe(429);
  expect((err as RateBudgetError).retryAtMs).toBeGreaterThan(Date.now() + 590_000);
  expect(s.sim.callLog()).toEqual([]);
  expect((await budget.state()).pausedUntilMs).toBeGreaterThan(Date.now() + 590_000);
});

test('a bucket running low keeps its last tokens for the gate, then for minting; reconcile waits for room', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  // Burst 20, one token an hour back: what is taken stays taken. Reserves: minting 2, reconcile 5.
  const budget = budgetOn(prefix, { requestsPerHour: 1, burst: 20, maxWaitMs: 50 });
  const drain = async (priority: BudgetPriority) => {
    let granted = 0;
    for (;;) {
      const err = await budget.take('GET /x', priority).then(() => null, (e: unknown) => e);
      if (err) {
        expect(err).toBeInstanceOf(RateBudgetError);
        return granted;
      }
      granted++;
    }
  };

  expect(await drain('background')).toBe(15);
  expect(await drain('mint')).toBe(3);
  expect(await drain('start')).toBe(2);
  expect(await drain('background')).toBe(0);
  expect((await budget.state()).tokens).toBeLessThan(1);
});

test('the client draws at the priority of the scope it was called in: the gate\'s reads get through a bucket minting cannot use', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const budget = budgetOn(prefix, { requestsPerHour: 1, burst: 20, maxWaitMs: 50 });
  const gh = s.client({ budget });
  /** Lists runners until the budget refuses one; how many got through. */
  const callsUntilRefused = async () => {
    for (let n = 0; n < 50; n++) {
      const err = await gh.listRunners(RUNNERS).then(() => null, (e: unknown) => e);
      if (err) {
        expect(err).toBeInstanceOf(RateBudgetError);
        return n;
      }
    }
    throw new Error('the budget never refused');
  };
  // Reconcile's polls (and the installation token they needed) take the bucket down to reconcile's reserve.
  expect(await withBudgetPriority('background', callsUntilRefused)).toBeGreaterThan(5);
  expect(Math.floor((await budget.state()).tokens)).toBe(5);
  s.sim.resetCalls();
  // A mint (no scope: minting's priority) gets 3 more; the gate still gets the last 2.
  expect(await callsUntilRefused()).toBe(3);
  expect(await withBudgetPriority('start', callsUntilRefused)).toBe(2);
  expect(s.sim.callLog()).toHaveLength(5);
});

test('requests waiting for tokens hold no place in the client\'s limiters: the gate\'s read passes a dozen polls that wait', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  // A token every 2 s: a poll waits ~2 s for the bucket to pass its reserve, or gives up after 3.
  const o = { requestsPerHour: 1800, burst: 20 };
  const gh = s.client({ budget: budgetOn(prefix, { ...o, maxWaitMs: 3000 }) });
  await gh.listRunners(RUNNERS); // the installation and its token, looked up once
  // Reconcile's polls take the bucket down to their reserve.
  const drainer = budgetOn(prefix, { ...o, maxWaitMs: 50 });
  while (await drainer.take('GET /x', 'background').then(() => true, () => false));
  // A dozen polls wait for tokens (more than plugin-throttling's ten in flight).
  let done = 0;
  const polls = Array.from({ length: 12 }, () =>
    withBudgetPriority('background', () => gh.listRunners(RUNNERS)).then(() => 'ran', (e: unknown) => e).finally(() => done++));
  await sleep(200);
  // The gate's read is answered while every poll still waits (were they holding the ten places,
  // it would wait for one of them to get its token or give up).
  await withBudgetPriority('start', () => gh.listRunners(RUNNERS));
  expect(done).toBe(0);
  const outcomes = await Promise.all(polls);
  expect(outcomes.filter((p) => p !== 'ran').every((p) => p instanceof RateBudgetError)).toBe(true);
});

test('the control draws from the budget in Redis and shows it on /metrics', async () => {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const control = await startTestControl({
    redisUrl: redisUrl(), prefix, apiUrl: s.url, appKeyPem: s.sim.appPrivateKeyPem, appId: APP_ID,
    rateBudget: { requestsPerHour: 1, burst: 20 }, cancelRefusedRuns: false,
    extraYaml: 'reconcile: {enabled: false}',
  });
  try {
    s.sim.resetCalls();
    await control.github.listRunners(RUNNERS);
    // Installation lookup, token, listing: three requests, three tokens gone from the bucket.
    const spent = s.sim.callLog().length;
    expect(spent).toBe(3);
    const text = (await control.app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metric(text, 'hangar_github_requests_total{route="GET /repos/{owner}/{repo}/actions/runners",status="200"}')).toBe(1);
    expect(metric(text, 'hangar_github_requests_total{route="POST /app/installations/{installation_id}/access_tokens",status="201"}')).toBe(1);
    // One token an hour comes back: the three spent are still gone.
    const tokens = metric(text, 'hangar_github_budget_tokens');
    expect(tokens).toBeGreaterThanOrEqual(20 - spent);
    expect(tokens).toBeLessThan(20 - spent + 1);
    expect(metric(text, 'hangar_github_paused_until_seconds')).toBe(0);
  } finally {
    await control.close();
  }
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One sample's value from Prometheus text, by its name and labels as printed. */
function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`no ${series} in /metrics:\n${text.split('\n').filter((l) => l.startsWith('hangar_github')).join('\n')}`);
  return Number(line.slice(series.length + 1));
}
