import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { GitHubError } from '../domain/errors.js';
import type { KnownHost } from './host-auth.js';
import { hostRequest } from './host-request.js';
import { jobMetrics } from '../metrics/job-metrics.js';
import { mintRunner, type MintDeps } from './mint.js';

/**
 * `POST /api/v1/jit`: an agent asks for a just-in-time runner for one job it took from its
 * pool's queue. Authenticated by the host's token; the answer carries the JIT config and is
 * the only place it ever travels (no-store, never logged).
 */
const body = z.strictObject({
  pool: z.string().min(1).max(64),
  workflowJobId: z.number().int().positive(),
});

export interface JitRouteDeps extends MintDeps {
  hosts: readonly KnownHost[];
  registry: Registry;
}

export async function jitRoutes(app: FastifyInstance, deps: JitRouteDeps): Promise<void> {
  const mints = new Counter({
    name: 'hangar_jit_requests_total',
    help: 'Runner requests from agents, by result',
    labelNames: ['result', 'reason'],
    registers: [deps.registry],
  });
  const mintDeps = { ...deps, jobs: jobMetrics(deps.registry, deps.keys.prefix) };
  app.post('/api/v1/jit', async (req, reply) => {
    const asked = await hostRequest(req, reply, deps, body);
    if (!asked) {
      if (reply.statusCode === 401) mints.inc({ result: 'unauthorized', reason: '' });
      if (reply.statusCode === 403) mints.inc({ result: 'revoked', reason: '' });
      return reply;
    }
    const { host, body: q } = asked;
    try {
      const r = await mintRunner(mintDeps, host, q.pool, q.workflowJobId);
      mints.inc({ result: r.kind, reason: r.kind === 'refused' ? r.reason : '' });
      if (r.kind === 'refused') return reply.code(403).send({ error: 'refused', reason: r.reason });
      if (r.kind === 'busy') return reply.code(409).send({ error: 'runner-busy', runnerName: r.runnerName });
      if (r.kind === 'already-minted') return reply.code(409).send({ error: 'already-minted', host: r.host });
      return reply.code(201).send(r);
    } catch (err) {
      mints.inc({ result: 'error', reason: '' });
      // The answer (502 for GitHub's failures) comes from domain/http-errors.ts, as for every route.
      if (err instanceof GitHubError) deps.logger.warn({ status: err.status, workflowJobId: q.workflowJobId }, 'github refused a mint call');
      throw err;
    }
  });
}
