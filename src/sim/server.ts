import { createServer, type Server } from 'node:http';
import { rm } from 'node:fs/promises';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino, type Logger } from 'pino';
import { startingApp } from './app.js';
import { TokenBook, generateAppKey } from './auth.js';
import { CallLog } from './calls.js';
import type { SimContext } from './context.js';
import { SimControl } from './control.js';
import { DOCS } from './errors.js';
import { githubApiHooks } from './github-api.js';
import { Hookshot } from './hookshot.js';
import { KnobBox } from './knobs.js';
import { ManifestBook } from './manifests.js';
import { workflowJobPayload } from './payloads.js';
import { appRoutes } from './routes-app.js';
import { controlRoutes } from './routes-control.js';
import { manifestConversionRoute, manifestPageRoutes } from './routes-manifest.js';
import { runnerGroupRoutes } from './routes-runner-groups.js';
import { runnerProtocolRoutes } from './routes-runner.js';
import { runnerRoutes } from './routes-runners.js';
import { runRoutes } from './routes-runs.js';
import { SimStore } from './store.js';

export interface SimOptions {
  appId: number;
  /** The App's key; the sim verifies App JWTs with its public half. Generated when absent. */
  appPrivateKeyPem?: string;
  installationId: number;
  webhookUrl?: string;
  webhookSecret?: string;
  /** The URL clients (and guests) reach the sim at; defaults to where it listens. */
  publicUrl?: string;
  logger?: Logger;
}

/** A local GitHub: REST subset, signed webhooks, sim runners. The control API's operations are on it too. */
export interface Sim extends SimControl {
  readonly app: FastifyInstance;
  /** The App's id now: the one started with, or the one a converted manifest made. */
  readonly appId: number;
  readonly installationId: number;
  /** Secret: sign App JWTs with it (tests use it with @octokit/auth-app); the current App's. */
  readonly appPrivateKeyPem: string;
  /** The URL clients use: publicUrl, or the listen URL once listening. */
  readonly url: string;
  listen(port: number, host: string): Promise<string>;
  /**
   * Serves the same app on a unix socket too (after listen): how a test in another network
   * namespace than the sim's drives it. A stale socket file at `path` is replaced.
   */
  listenSocket(path: string): Promise<void>;
  close(): Promise<void>;
}

const HOOK_ID = 400_000_001;

export async function createSim(opts: SimOptions): Promise<Sim> {
  const logger = opts.logger ?? pino({ level: 'silent' });
  const appPrivateKeyPem = opts.appPrivateKeyPem ?? (await generateAppKey());
  const knobs = new KnobBox();
  let listenUrl = opts.publicUrl ?? 'http://127.0.0.1';
  const urls = () => ({ api: opts.publicUrl ?? listenUrl, html: 'https://github.com' });

  // The store reports job transitions; Hookshot turns them into signed deliveries.
  let ctx: SimContext | undefined;
  const store = new SimStore((action, job) => {
    if (!ctx) return;
    const payload = workflowJobPayload(action, job, { urls: urls(), installationId: opts.installationId });
    ctx.hookshot.emit('workflow_job', payload, { repositoryId: job.run.repo.id, workflowJobId: job.id });
  });
  const hookshot = new Hookshot({ ids: store.ids, knobs, appId: (): number => ctx?.app.id ?? opts.appId, installationId: opts.installationId, hookId: HOOK_ID, logger });
  hookshot.setTarget(opts.webhookUrl, opts.webhookSecret);
  ctx = {
    store, hookshot, knobs, tokens: new TokenBook(), manifests: new ManifestBook(), calls: new CallLog(),
    app: startingApp(opts.appId, appPrivateKeyPem, urls().html), installationId: opts.installationId, logger, urls,
  };
  const context = ctx;

  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 });
  app.setNotFoundHandler(async (req, reply) => {
    // A route the sim lacks: counted by path (there is no template), so a test sees the client asked for it.
    const path = req.url.split('?')[0] ?? req.url;
    if (!/^\/_(sim|runner)\//.test(path)) context.calls.record(req.method, path, 404);
    return reply.code(404).send({ message: 'Not Found', documentation_url: DOCS, status: '404' });
  });
  await app.register(async (scope) => {
    githubApiHooks(scope, context);
    appRoutes(scope, context);
    manifestConversionRoute(scope, context);
    runnerRoutes(scope, context);
    runnerGroupRoutes(scope, context);
    runRoutes(scope, context);
  });
  const control = new SimControl(context);
  await app.register(async (scope) => controlRoutes(scope, control));
  await app.register(async (scope) => runnerProtocolRoutes(scope, context));
  await app.register(async (scope) => manifestPageRoutes(scope, context));

  // GitHub fails a job whose runner stopped renewing its lock; the sim looks once a second.
  const lockSweep = setInterval(() => {
    for (const job of store.loseExpired(knobs.get().jobLockTimeoutMs)) {
      logger.warn({ runnerId: job.runnerId, workflowJobId: job.id }, 'runner lost: job failed');
    }
  }, 1000);
  lockSweep.unref();

  const sockets: Server[] = [];
  const sim = Object.assign(control, {
    app,
    installationId: opts.installationId,
    async listen(port: number, host: string): Promise<string> {
      await app.listen({ port, host });
      const addr = app.server.address();
      const bound = typeof addr === 'object' && addr ? addr.port : port;
      listenUrl = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
      return listenUrl;
    },
    async listenSocket(path: string): Promise<void> {
      // Fastify listens on one server; `routing` (after ready) runs its router, hooks and
      // not-found handler for a request from any other server.
      await app.ready();
      await rm(path, { force: true });
      const server = createServer((req, res) => app.routing(req, res));
      sockets.push(server);
      await new Promise<void>((resolve, reject) => server.once('error', reject).listen(path, () => resolve()));
    },
    async close(): Promise<void> {
      clearInterval(lockSweep);
      hookshot.close();
      await Promise.all(sockets.splice(0).map((s) => new Promise<void>((resolve) => s.close(() => resolve()).closeAllConnections())));
      await app.close();
    },
  });
  // A getter, not a copy: the URL is only known once listening.
  Object.defineProperty(sim, 'url', { get: () => urls().api, enumerable: true });
  // Getters too: a converted manifest replaces the App.
  Object.defineProperty(sim, 'appId', { get: () => context.app.id, enumerable: true });
  Object.defineProperty(sim, 'appPrivateKeyPem', { get: () => context.app.privateKeyPem, enumerable: true });
  return sim as unknown as Sim;
}
