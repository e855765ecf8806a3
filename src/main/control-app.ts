import Fastify, { type FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ControlConfig } from '../config/schema.js';
import type { ControlSecrets } from '../config/secrets.js';
import { JobStore } from '../intake/job-store.js';
import { intakeMetrics } from '../intake/metrics.js';
import { intakeRoutes } from '../intake/route.js';
import { createGitHubClient, type GitHubClient } from '../github/index.js';
import { gateRoutes } from '../gate/route.js';
import { RunVetter } from '../gate/run-vetter.js';
import { jitRoutes } from '../jit/route.js';
import { keys } from '../queue/keys.js';
import { OutboxWorker } from '../queue/outbox-worker.js';
import { PoolQueues } from '../queue/pool-queues.js';
import { checkRedis, redactRedisUrl } from '../queue/redis-readiness.js';
import { StoreError } from '../domain/errors.js';

/**
 * The control plane's parts wired together, without listening or signal handling, so the CLI
 * and in-process tests build exactly the same thing.
 */
export interface Control {
  app: FastifyInstance;
  redis: Redis;
  queues: PoolQueues;
  registry: Registry;
  github: GitHubClient;
  close(): Promise<void>;
}

export async function buildControl(config: ControlConfig, secrets: ControlSecrets, logger: Logger): Promise<Control> {
  const redisOpts = {
    // Fail fast while Redis is away: the webhook answers 503 and GitHub can redeliver.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 5000,
    retryStrategy: (n: number) => Math.min(50 * 2 ** n, 2000),
  };
  // No auto-pipelining: it keeps one batch in flight at a time, so under load every delivery waits
  // for the batch before it; plain writes measured ~10 % more deliveries/s (docs/benchmarks.md).
  const redis = new Redis(config.redis.url, { ...redisOpts, lazyConnect: true });
  // Listened to before connecting: the first failure is the reason (ioredis rejects with "Connection is closed").
  let firstError: Error | undefined;
  redis.on('error', (err: Error) => void (firstError ??= err)); // reconnects on its own; failures surface per request
  await redis.connect().catch((err: Error) => {
    redis.disconnect();
    throw new StoreError('store-unavailable', `cannot reach Redis at ${redactRedisUrl(config.redis.url)} (redis.url): ${(firstError ?? err).message}`);
  });
  try {
    const readiness = await checkRedis(redis);
    for (const w of readiness.warnings) logger.warn({ redisVersion: readiness.version }, w);
  } catch (err) {
    redis.disconnect();
    throw err;
  }

  const k = keys(config.redis.prefix);
  const queueConn = new Redis(config.redis.url, { ...redisOpts, commandTimeout: undefined, lazyConnect: true });
  queueConn.on('error', () => undefined);
  await queueConn.connect();
  // Queue reads for /metrics and callers; the relay that writes the queues has a thread of its own.
  const queues = new PoolQueues(queueConn, config.redis.prefix, config.pools.map((p) => p.name), (err) =>
    logger.debug({ err: err.message }, 'queue connection error'),
  );
  const store = new JobStore(redis, k, { deliveryTtlSeconds: config.control.deliveryTtlHours * 3600 });
  const relay = new OutboxWorker(
    { redisUrl: config.redis.url, prefix: config.redis.prefix, pools: config.pools.map((p) => p.name), level: logger.level },
    logger.child({ unit: 'outbox' }),
    () => store.calls,
  );

  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hangar_control_' });
  new Gauge({
    name: 'hangar_queue_depth',
    help: 'Jobs per pool queue and state',
    labelNames: ['pool', 'state'],
    registers: [registry],
    async collect() {
      const depth = await queues.depth().catch(() => ({}) as Record<string, Record<string, number>>);
      for (const [pool, counts] of Object.entries(depth)) {
        for (const [state, n] of Object.entries(counts)) this.set({ pool, state }, n);
      }
    },
  });

  // No Fastify logger: it would make a child logger per request, which costs more than the
  // policy does. Routes log their own events; unexpected errors are logged here.
  const app = Fastify({ logger: false, bodyLimit: config.control.bodyLimitBytes });
  const httpLog = logger.child({ unit: 'http' });
  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (status >= 500) httpLog.error({ err, method: req.method, url: req.routeOptions.url }, 'request failed');
    return reply.code(status).send(status >= 500 ? { error: 'internal', message: 'internal error' } : { error: err.code ?? 'bad-request', message: err.message });
  });
  await app.register(intakeRoutes, {
    webhookSecrets: secrets.webhookSecrets,
    policy: config,
    store,
    metrics: intakeMetrics(registry),
    logger: logger.child({ unit: 'intake' }),
  });
  const github = createGitHubClient({
    apiUrl: config.github.apiUrl,
    appId: config.github.appId,
    privateKey: secrets.appPrivateKey,
    logger: logger.child({ unit: 'github' }),
    throttle: { writeSpacingMs: config.github.writeSpacingMs },
  });
  await app.register(jitRoutes, { config, github, redis, keys: k, logger: logger.child({ unit: 'jit' }), hosts: config.hosts, registry });
  await app.register(gateRoutes, { config, github, redis, keys: k, logger: logger.child({ unit: 'gate' }), hosts: config.hosts, registry });
  app.get('/healthz', async (_req, reply) => {
    const ok = await redis.ping().then(() => true, () => false);
    return reply.code(ok ? 200 : 503).send({ ok, redis: ok ? 'up' : 'down' });
  });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
  const vetter = config.policy.cancelRefusedRuns
    ? new RunVetter({ config, github, redisUrl: config.redis.url, redis, keys: k, logger: logger.child({ unit: 'vetter' }) })
    : null;
  try {
    await relay.start();
    await vetter?.start();
  } catch (err) {
    await relay.stop();
    await queues.close();
    for (const c of [redis, queueConn]) c.disconnect();
    throw err;
  }

  return {
    app,
    redis,
    queues,
    registry,
    github,
    async close() {
      await app.close();
      await vetter?.stop();
      await relay.stop();
      await queues.close();
      for (const c of [redis, queueConn]) c.disconnect();
    },
  };
}
