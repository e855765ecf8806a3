import Fastify, { type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ControlConfig } from '../config/schema.js';
import type { ControlSecrets } from '../config/secrets.js';
import { toHttp } from '../domain/http-errors.js';
import { gateRoutes } from '../gate/route.js';
import type { GitHubClient } from '../github/index.js';
import { BadSignatures } from '../intake/bad-signatures.js';
import { intakeMetrics } from '../intake/metrics.js';
import { intakeRoutes } from '../intake/route.js';
import { reportRoutes } from '../jit/report-route.js';
import { jitRoutes } from '../jit/route.js';
import type { JobStore } from '../jobs/intake-record.js';
import type { Keys } from '../queue/keys.js';
import type { PoolQueues } from '../queue/pool-queues.js';
import { unit, type Unit } from './units.js';

export interface ControlHttpDeps {
  config: ControlConfig;
  secrets: ControlSecrets;
  logger: Logger;
  redis: Redis;
  keys: Keys;
  queues: PoolQueues;
  store: JobStore;
  github: GitHubClient;
  /** The /metrics registry, when others (the GitHub client) registered into it first. */
  registry?: Registry;
}

export interface ControlHttp extends Unit {
  app: FastifyInstance;
  registry: Registry;
}

/**
 * The control's HTTP side as a unit: the webhook intake, the agents' API (runners, the gate,
 * reports, heartbeats), `/healthz` and `/metrics`. It does not listen: main/control.ts does, and
 * tests inject. Stopping it closes the server and waits for requests in flight.
 */
export function controlHttp(d: ControlHttpDeps): ControlHttp {
  const { config, logger, redis, github, keys: k } = d;
  const registry = d.registry ?? new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'hangar_control_' });
  new Gauge({
    name: 'hangar_queue_depth',
    help: 'Jobs per pool queue and state',
    labelNames: ['pool', 'state'],
    registers: [registry],
    async collect() {
      const depth = await d.queues.depth().catch(() => ({}) as Record<string, Record<string, number>>);
      for (const [pool, counts] of Object.entries(depth)) {
        for (const [state, n] of Object.entries(counts)) this.set({ pool, state }, n);
      }
    },
  });

  // No Fastify logger: it would make a child logger per request, which costs more than the
  // policy does. Routes log their own events; unexpected errors are logged here.
  const app = Fastify({ logger: false, bodyLimit: config.control.bodyLimitBytes });
  const httpLog = logger.child({ unit: 'http' });
  app.setErrorHandler((err, req, reply) => {
    const answer = toHttp(err);
    if (answer.status >= 500) httpLog.error({ err, method: req.method, url: req.routeOptions.url }, 'request failed');
    if (answer.headers) void reply.headers(answer.headers);
    return reply.code(answer.status).send(answer.body);
  });
  const intakeLog = logger.child({ unit: 'intake' });
  const badSignatures = new BadSignatures(intakeLog);
  const agentApi = { config, github, redis, keys: k, hosts: config.hosts, registry };
  // Pull mode: no webhook receiver at all (GitHub cannot reach this box); the reconciler's
  // deliveries loop is the intake, through the same parse → policy → record path.
  if (config.intake.mode === 'push') void app.register(intakeRoutes, { webhookSecrets: d.secrets.webhookSecrets, policy: config, store: d.store, metrics: intakeMetrics(registry, k.prefix), logger: intakeLog, badSignatures });
  void app.register(jitRoutes, { ...agentApi, logger: logger.child({ unit: 'jit' }) });
  void app.register(gateRoutes, { ...agentApi, logger: logger.child({ unit: 'gate' }) });
  void app.register(reportRoutes, { ...agentApi, logger: logger.child({ unit: 'reports' }) });
  app.get('/healthz', async (_req, reply) => {
    const ok = await redis.ping().then(() => true, () => false);
    // Bad signatures are the senders' problem, not the control's: counted here, never a 503.
    return reply.code(ok ? 200 : 503).send({ ok, redis: ok ? 'up' : 'down', ...badSignatures.health() });
  });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  const u = unit('http', async () => void (await app.ready()), () => app.close());
  return { ...u, name: u.name, start: u.start, stop: u.stop, app, registry };
}
