import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type preHandlerAsyncHookHandler } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { splitListen } from '../config/control-schema.js';
import type { ControlConfig } from '../config/schema.js';
import { toHttp } from '../domain/http-errors.js';
import type { GitHubClient } from '../github/index.js';
import type { Keys } from '../queue/keys.js';
import type { PoolQueues } from '../queue/pool-queues.js';
import { apiRoutes } from './api-routes.js';
import { DashboardAuth, setSecurityHeaders, type Caller } from './auth.js';
import { loginRoutes } from './login.js';
import { ReadModel } from './read-model.js';
import { StreamHub } from './stream.js';

/**
 * The dashboard's server: its own Fastify app on its own listener (`dashboard.listen`), never
 * the webhook port. The JSON API (api-routes.ts), the login (login.ts), the SSE stream
 * (stream.ts), and the page, which dash-page registers through `pageRoutes`.
 */

export interface PageContext {
  /** A preHandler: a request without a session (or bearer token) is sent to /login. */
  requireSession: preHandlerAsyncHookHandler;
  /** Who asks (for a page that shows the CSRF token, or a logout form). */
  caller(req: FastifyRequest): Promise<Caller>;
}

/** How the page registers its routes (`/` and its static files) on the dashboard's server. */
export type PageRoutes = (app: FastifyInstance, ctx: PageContext) => void | Promise<void>;

export interface DashboardDeps {
  config: ControlConfig;
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** The operator token (dashboard.tokenFile). Never logged, never sent. */
  token: string;
  github: GitHubClient;
  queues: PoolQueues;
  pageRoutes?: PageRoutes;
  /** Served over TLS (a proxy in front): the cookie gets `Secure`. */
  secure?: boolean;
  hostsEveryMs?: number;
  heartbeatMs?: number;
}

export interface Dashboard {
  app: FastifyInstance;
  model: ReadModel;
  hub: StreamHub;
  /** The listener's URL once started. */
  url: string | null;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function createDashboard(d: DashboardDeps): Dashboard {
  const log = d.logger.child({ unit: 'dashboard' });
  const model = new ReadModel({ config: d.config, redis: d.redis, keys: d.keys, logger: log, ...(d.hostsEveryMs ? { hostsEveryMs: d.hostsEveryMs } : {}) });
  const hub = new StreamHub(model, d.heartbeatMs ? { heartbeatMs: d.heartbeatMs } : {});
  const auth = new DashboardAuth({ redis: d.redis, keys: d.keys, token: d.token, sessionSeconds: Math.round(d.config.dashboard.sessionHours * 3600) });
  const app = Fastify({ logger: false, bodyLimit: 64 * 1024 });
  app.addHook('onSend', async (req, reply) => setSecurityHeaders(reply, req.url.startsWith('/api/')));
  app.setErrorHandler((err, req, reply) => {
    const answer = toHttp(err);
    if (answer.status >= 500) log.error({ err: (err as Error).message, method: req.method, url: req.routeOptions.url }, 'dashboard request failed');
    return reply.code(answer.status).send(answer.body);
  });
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.get('/healthz', async () => ({ ok: true }));

  const requireSession: preHandlerAsyncHookHandler = async (req, reply) => {
    const c = await auth.caller(req);
    if (c.via === 'bearer' || c.via === 'cookie') return;
    await reply.redirect('/login', 303);
  };
  const ctx: PageContext = { requireSession, caller: (req) => auth.caller(req) };
  void app.register(async (scope) => loginRoutes(scope, { auth, secure: Boolean(d.secure), logger: log }));
  void app.register(async (scope) => apiRoutes(scope, { ...d, model, hub, auth, logger: log }));
  if (d.pageRoutes) void app.register(async (scope) => d.pageRoutes!(scope, ctx));
  else app.get('/', { preHandler: requireSession }, async (_req, reply: FastifyReply) => reply.type('text/html; charset=utf-8').send(PLACEHOLDER));

  const dash: Dashboard = {
    app, model, hub, url: null,
    async start() {
      await model.start();
      const { host, port } = splitListen(d.config.dashboard.listen);
      dash.url = await app.listen({ host, port });
      log.info({ url: dash.url }, 'dashboard listening');
    },
    async stop() {
      // Open streams would hold the close forever.
      hub.close();
      await app.close();
      await model.stop();
    },
  };
  return dash;
}

const PLACEHOLDER = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Hangar</title></head>
<body><h1>Hangar</h1><p>The dashboard's page is not installed in this build. Its data: <a href="/api/v1/overview">/api/v1/overview</a>.</p>
<form method="post" action="/logout"><button type="submit">Log out</button></form></body></html>`;
