import Fastify, { type FastifyInstance } from 'fastify';
import type { TLSSocket } from 'node:tls';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { splitListen } from '../config/control-schema.js';
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
  /** The private listener's certificate and key (control.private.tls, read by tls-files.ts); null: plain HTTP (loopback only). */
  tls?: { cert: string; key: string } | null;
}

export interface ControlHttp extends Unit {
  /** The private listener's app: the agents' API, `/healthz`, `/metrics`. */
  app: FastifyInstance;
  /** The public listener's app: `POST /webhooks/github` and a bare `/healthz`; null in pull mode. */
  webhooks: FastifyInstance | null;
  registry: Registry;
  /** The private listener's URL once started (`https://` with TLS). */
  url: string | null;
  /** The public listener's URL once started; null in pull mode. */
  webhookUrl: string | null;
}

/**
 * The control's HTTP side as a unit, on two listeners. The public one (`control.host`/`port`,
 * what GitHub reaches) serves `POST /webhooks/github` and a bare `/healthz` (the process
 * answers; nothing about Redis or senders), and is not opened in pull mode. The private one
 * (`control.private.listen`, TLS with `control.private.tls`) serves the agents' API (runners,
 * the gate, reports, heartbeats), `/healthz` and `/metrics`. Starting it listens on both;
 * stopping closes them and waits for requests in flight.
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
  const httpLog = logger.child({ unit: 'http' });
  const fastify = (tls: { cert: string; key: string } | null): FastifyInstance => {
    // Fastify's https instance has another server type; the routes are the same.
    const app = (tls ? Fastify({ logger: false, bodyLimit: config.control.bodyLimitBytes, https: tls }) : Fastify({ logger: false, bodyLimit: config.control.bodyLimitBytes })) as unknown as FastifyInstance;
    app.setErrorHandler((err, req, reply) => {
      const answer = toHttp(err);
      if (answer.status >= 500) httpLog.error({ err, method: req.method, url: req.routeOptions.url }, 'request failed');
      if (answer.headers) void reply.headers(answer.headers);
      return reply.code(answer.status).send(answer.body);
    });
    return app;
  };
  const tls = d.tls ?? null;
  const app = fastify(tls);
  if (tls) {
    // A client that does not speak TLS (an agent with an http:// controlUrl) or does not trust
    // this certificate: said here, with no secret in it.
    // At most one line a minute (a scanner on an open port would fill the log), with the count since the last.
    let lastWarnAt = 0;
    let unsaid = 0;
    app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
      unsaid++;
      if (Date.now() - lastWarnAt < 60_000) return;
      lastWarnAt = Date.now();
      httpLog.warn({ code: err.code ?? null, reason: err.message, remote: socket.remoteAddress ?? null, failures: unsaid }, 'TLS handshake failed on the private listener (a client speaking plain HTTP, or not trusting this certificate?)');
      unsaid = 0;
    });
  }
  const intakeLog = logger.child({ unit: 'intake' });
  const badSignatures = new BadSignatures(intakeLog);
  const agentApi = { config, github, redis, keys: k, hosts: config.hosts, registry };
  // Pull mode: no webhook receiver at all (GitHub cannot reach this box); the reconciler's
  // deliveries loop is the intake, through the same parse → policy → record path.
  const webhooks = config.intake.mode === 'push' ? fastify(null) : null;
  if (webhooks) {
    void webhooks.register(intakeRoutes, { webhookSecrets: d.secrets.webhookSecrets, policy: config, store: d.store, metrics: intakeMetrics(registry, k.prefix), logger: intakeLog, badSignatures });
    // For a load balancer's probe: the process answers. Redis and the senders' mistakes are the private /healthz's.
    webhooks.get('/healthz', async () => ({ ok: true }));
  }
  void app.register(jitRoutes, { ...agentApi, logger: logger.child({ unit: 'jit' }) });
  void app.register(gateRoutes, { ...agentApi, logger: logger.child({ unit: 'gate' }) });
  void app.register(reportRoutes, { ...agentApi, logger: logger.child({ unit: 'reports' }) });
  app.get('/healthz', async (_req, reply) => {
    const ok = await redis.ping().then(() => true, () => false);
    // Bad signatures are the senders' problem, not the control's: counted here, never a 503.
    return reply.code(ok ? 200 : 503).send({ ok, redis: ok ? 'up' : 'down', ...badSignatures.health() });
  });
  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  const http: ControlHttp = {
    name: 'http', app, webhooks, registry, url: null, webhookUrl: null,
    start: () => u.start(),
    stop: () => u.stop(),
  };
  const u = unit(
    'http',
    async () => {
      const { host, port } = splitListen(config.control.private.listen);
      try {
        http.url = await app.listen({ host, port });
        if (webhooks) http.webhookUrl = await webhooks.listen({ host: config.control.host, port: config.control.port });
      } catch (err) {
        await Promise.all([app.close(), webhooks?.close()]);
        throw err;
      }
      logger.info({ url: http.url, tls: tls !== null, webhookUrl: http.webhookUrl }, 'control listening');
    },
    async () => {
      await Promise.all([app.close(), webhooks?.close()]);
    },
  );
  return http;
}
