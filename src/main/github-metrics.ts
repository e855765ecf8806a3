import { Counter, Gauge, type Registry } from 'prom-client';
import type { RequestObserver } from '../github/index.js';
import type { RedisRateBudget } from '../queue/rate-budget.js';

/**
 * The GitHub client's requests and the shared rate budget on the control's /metrics:
 * `hangar_github_requests_total{route,status}` (every attempt, retries included),
 * `hangar_github_rate_limited_total{why}` (answers that said wait), `hangar_github_backoff_seconds_total`
 * (how long this replica paused every replica for), `hangar_github_budget_tokens` and
 * `hangar_github_paused_until_seconds` (read from Redis at scrape time; 0 when no pause).
 */
export function githubMetrics(registry: Registry, budget: RedisRateBudget): RequestObserver {
  const requests = new Counter({
    name: 'hangar_github_requests_total', help: 'Requests to GitHub, each attempt, by route and status (none: no answer)',
    labelNames: ['route', 'status'], registers: [registry],
  });
  const limited = new Counter({
    name: 'hangar_github_rate_limited_total', help: 'GitHub answers that said to wait, by why (retry-after, primary, secondary)',
    labelNames: ['why'], registers: [registry],
  });
  const backoff = new Counter({
    name: 'hangar_github_backoff_seconds_total', help: 'Seconds this replica extended the shared pause of GitHub requests by', registers: [registry],
  });
  // Redis away: the gauges keep their last value; the scrape still answers.
  const read = () => budget.state().catch(() => null);
  new Gauge({
    name: 'hangar_github_budget_tokens', help: 'Requests the shared GitHub rate budget would let out at once now', registers: [registry],
    async collect() {
      const s = await read();
      if (s) this.set(s.tokens);
    },
  });
  new Gauge({
    name: 'hangar_github_paused_until_seconds', help: 'When the shared pause of GitHub requests ends (epoch seconds); 0 when none', registers: [registry],
    async collect() {
      const s = await read();
      if (s) this.set(s.pausedUntilMs / 1000);
    },
  });
  return {
    answered: (route, status) => requests.inc({ route, status: String(status) }),
    rateLimited: (_route, why, extendedMs) => {
      limited.inc({ why });
      if (extendedMs > 0) backoff.inc(extendedMs / 1000);
    },
  };
}
