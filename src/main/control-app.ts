import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import type { ControlConfig } from '../config/schema.js';
import { redisTarget, type ControlSecrets } from '../config/secrets.js';
import { readControlTls } from '../config/tls-files.js';
import { RunVetter } from '../gate/run-vetter.js';
import { createGitHubClient, type GitHubClient } from '../github/index.js';
import { JobStore } from '../jobs/intake-record.js';
import { fleetGauges } from '../metrics/fleet-gauges.js';
import { jobMetrics } from '../metrics/job-metrics.js';
import { keys } from '../queue/keys.js';
import { OutboxWorker } from '../queue/outbox-worker.js';
import { RedisRateBudget } from '../queue/rate-budget.js';
import { RedisRunFacts } from '../queue/run-facts.js';
import type { PoolQueues } from '../queue/pool-queues.js';
import { createLoops, loopDeps } from '../reconcile/loops.js';
import { pageRoutes } from '../dashboard/page-routes.js';
import { createDashboard, type Dashboard, type PageRoutes } from '../dashboard/server.js';
import { Reconciler } from '../reconcile/reconciler.js';
import { controlHttp } from './control-http.js';
import { controlRedis } from './control-redis.js';
import { githubMetrics } from './github-metrics.js';
import { compose, unit, type Unit } from './units.js';

/**
 * The control plane's units composed, without listening or signal handling, so the CLI and
 * in-process tests build exactly the same thing: Redis, the outbox relay, the run vetter (while
 * `policy.cancelRefusedRuns`), the HTTP side, the dashboard (src/dashboard/, its own listener,
 * while `dashboard.enabled`), the reconciler (src/reconcile/). Started in that order, stopped in
 * reverse.
 */
export interface Control {
  /** The private listener's app (the agents' API, /healthz, /metrics). */
  app: FastifyInstance;
  /** The public listener's app (webhooks); null in pull mode. */
  webhooks: FastifyInstance | null;
  /** The private listener's URL (what agents' controlUrl points at). */
  url: string;
  /** The public listener's URL (where GitHub posts webhooks); null in pull mode. */
  webhookUrl: string | null;
  redis: Redis;
  queues: PoolQueues;
  registry: Registry;
  github: GitHubClient;
  /** Null when `reconcile.enabled` is false (and the intake pushes). */
  reconciler: Reconciler | null;
  /** Null when `dashboard.enabled` is false; its `url` is the listener's once started. */
  dashboard: Dashboard | null;
  close(): Promise<void>;
}

export interface ControlOptions {
  /** The dashboard page's routes, registered on the dashboard's server (default: the page, src/dashboard/page-routes.ts). */
  pageRoutes?: PageRoutes;
}

export async function buildControl(config: ControlConfig, secrets: ControlSecrets, logger: Logger, opts: ControlOptions = {}): Promise<Control> {
  const k = keys(config.redis.prefix);
  // Its user and password from redis.passwordFile when set (read once, kept in memory only).
  const target = redisTarget(config.redis);
  const conns = controlRedis(config, logger, target);
  const { redis, queues } = conns;
  const store = new JobStore(redis, k, { deliveryTtlSeconds: config.control.deliveryTtlHours * 3600 });
  const registry = new Registry();
  // One budget for all replicas, in Redis; its state and every request on /metrics.
  const budget = new RedisRateBudget(redis, k.rateBudget, config.github.rateBudget);
  const github = createGitHubClient({
    apiUrl: config.github.apiUrl,
    appId: config.github.appId,
    privateKey: secrets.appPrivateKey,
    logger,
    throttle: { writeSpacingMs: config.github.writeSpacingMs },
    budget,
    runFacts: new RedisRunFacts(redis, k.runFacts),
    observer: githubMetrics(registry, budget),
  });
  const relay = new OutboxWorker(
    {
      redisUrl: target.url, redisOptions: target.auth, redisTrust: target.trust, prefix: config.redis.prefix, pools: config.pools.map((p) => p.name), level: logger.level,
      retries: { attempts: config.control.retries.attempts, backoffMs: Math.round(config.control.retries.backoffSeconds * 1000) },
    },
    logger.child({ unit: 'outbox' }),
    () => store.calls,
  );
  // Counted where each move is made (metrics/job-metrics.ts): one registry, shared by every route and unit.
  const jobs = jobMetrics(registry, k.prefix);
  const vetter = config.policy.cancelRefusedRuns
    ? new RunVetter({ config, github, redisUrl: target.url, redisOptions: target.options, redis, keys: k, logger: logger.child({ unit: 'vetter' }), jobs })
    : null;
  const http = controlHttp({ config, secrets, logger, redis, keys: k, queues, store, github, registry, tls: readControlTls(config) });
  const reconciler = config.reconcile.enabled || config.intake.mode === 'pull'
    ? new Reconciler({
        redis, lockKey: k.leader, tokenKey: k.leaderToken, leaderTtlMs: config.reconcile.leaderTtlSeconds * 1000,
        loops: createLoops(loopDeps({ config, redis, keys: k, github, store, logger: logger.child({ unit: 'reconcile' }), jobs, queues })),
        logger, registry: http.registry,
      })
    : null;
  const dashboard = config.dashboard.enabled && secrets.operatorToken
    ? createDashboard({ config, redis, keys: k, logger, token: secrets.operatorToken, github, queues, pageRoutes: opts.pageRoutes ?? pageRoutes })
    : null;
  // Gauges read from Redis: served by the reconcile leader alone, so Prometheus's sum over replicas counts each job once.
  fleetGauges(http.registry, {
    redis, keys: k, pools: config.pools.map((p) => p.name), hosts: config.hosts,
    leads: () => reconciler === null || reconciler.lock.fence !== null,
  });
  const units: Unit[] = [
    conns,
    unit('outbox', () => relay.start(), () => relay.stop()),
    ...(vetter ? [unit('vetter', () => vetter.start(), () => vetter.stop())] : []),
    http,
    ...(dashboard ? [unit('dashboard', () => dashboard.start(), () => dashboard.stop())] : []),
    ...(reconciler ? [reconciler] : []),
  ];
  const control = compose(units, logger);
  await control.start();
  return { app: http.app, webhooks: http.webhooks, url: http.url!, webhookUrl: http.webhookUrl, redis, queues, registry: http.registry, github, reconciler, dashboard, close: () => control.stop() };
}
