import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { readJobRecord } from '../jobs/record.js';
import { cancelJob, retryJob, setDrain, type ActionDeps, type Answer } from './actions.js';
import type { ApiError, SessionView } from './api-types.js';
import { csrfHolds, type Caller, type DashboardAuth } from './auth.js';
import type { StreamHub } from './stream.js';
import { jobDetail } from './views.js';

/**
 * The JSON API under /api/v1/ (its shapes: api-types.ts). Every route wants the operator: a
 * bearer token or a cookie session; a cookie session's POSTs also its CSRF token.
 */
export interface ApiDeps extends ActionDeps {
  hub: StreamHub;
  auth: DashboardAuth;
}

declare module 'fastify' {
  interface FastifyRequest {
    dashboardCaller?: Caller;
  }
}

const jobId = z.coerce.number().int().positive();
const actionBody = z.strictObject({ why: z.string().max(500).optional() }).optional().nullable();

const fail = (reply: FastifyReply, status: number, error: ApiError) => reply.code(status).send(error);

export function apiRoutes(app: FastifyInstance, d: ApiDeps): void {
  app.addHook('preHandler', async (req, reply) => {
    if (!d.auth.allowed(req.ip)) {
      void reply.header('retry-after', String(d.auth.retryAfter(req.ip)));
      return fail(reply, 429, { error: 'too-many-failures', message: 'too many failed tries from this address; wait a minute' });
    }
    const c = await d.auth.caller(req);
    if (c.via === 'refused') {
      d.auth.failed(req.ip);
      return fail(reply, 401, { error: 'unauthorized', message: 'that is not the operator token' });
    }
    if (c.via === 'none') return fail(reply, 401, { error: 'unauthorized', message: 'log in at /login, or send Authorization: Bearer <operator token>' });
    req.dashboardCaller = c;
    if (req.method === 'POST' && !csrfHolds(c, req)) {
      return fail(reply, 403, { error: 'csrf', message: 'a cookie session\'s action needs its x-csrf-token header (GET /api/v1/session)' });
    }
  });

  app.get('/api/v1/overview', async (_req, reply) => reply.type('application/json; charset=utf-8').send(await d.model.freshOverviewJson()));

  app.get<{ Params: { id: string } }>('/api/v1/jobs/:id', async (req, reply) => {
    const id = jobId.safeParse(req.params.id);
    if (!id.success) return fail(reply, 400, { error: 'bad-request', field: 'id', message: 'not a workflow job id' });
    const r = d.model.job(id.data) ?? (await readJobRecord(d.redis, d.keys, id.data));
    if (!r) return fail(reply, 404, { error: 'unknown-job', message: `no record of job ${id.data}` });
    // From the read model's copy of the events stream: the stream itself is ~10,000 entries to read for one job's.
    return jobDetail(r, await d.model.eventsOfJob(id.data));
  });

  app.get('/api/v1/session', async (req): Promise<SessionView> => {
    const c = req.dashboardCaller!;
    return c.via === 'cookie' ? { csrf: c.csrf, via: 'cookie', expiresAt: c.expiresAt } : { csrf: '', via: 'bearer', expiresAt: null };
  });

  app.get('/api/v1/stream', async (req, reply) => {
    reply.hijack();
    d.hub.open(reply.raw);
  });

  const action = <T>(run: (req: FastifyRequest<{ Params: Record<string, string> }>, why: string) => Promise<Answer<T> | ApiError>) =>
    async (req: FastifyRequest<{ Params: Record<string, string> }>, reply: FastifyReply) => {
      const body = actionBody.safeParse(req.body ?? undefined);
      if (!body.success) return fail(reply, 400, { error: 'bad-request', field: 'why', message: 'the body may only have `why`, a string of at most 500 characters' });
      const why = body.data?.why?.trim() || 'operator';
      const a = await run(req, why);
      if (!('ok' in a)) return fail(reply, 400, a);
      return a.ok ? a.value : fail(reply, a.status, a.error);
    };
  const idOf = (req: FastifyRequest<{ Params: Record<string, string> }>) => jobId.safeParse(req.params.id);
  const badId: ApiError = { error: 'bad-request', field: 'id', message: 'not a workflow job id' };

  app.post('/api/v1/hosts/:name/drain', action((req, why) => setDrain(d, req.params.name!, true, why)));
  app.post('/api/v1/hosts/:name/undrain', action((req, why) => setDrain(d, req.params.name!, false, why)));
  app.post('/api/v1/jobs/:id/cancel', action(async (req, why) => {
    const id = idOf(req);
    return id.success ? cancelJob(d, id.data, why) : badId;
  }));
  app.post('/api/v1/jobs/:id/retry', action(async (req, why) => {
    const id = idOf(req);
    return id.success ? retryJob(d, id.data, why) : badId;
  }));
}
