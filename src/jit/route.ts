import type { FastifyInstance } from 'fastify';
import { Counter, type Registry } from 'prom-client';
import { z } from 'zod';
import { GitHubError } from '../domain/errors.js';
import { authenticateHost, type KnownHost } from './host-auth.js';
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
  app.post('/api/v1/jit', async (req, reply) => {
    reply.header('cache-control', 'no-store');
    const host = authenticateHost(deps.hosts, req.headers.authorization);
    if (!host) {
      mints.inc({ result: 'unauthorized', reason: '' });
      return reply.code(401).send({ error: 'unauthorized', message: 'unknown host token' });
    }
    const parsed = body.safeParse(req.body);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      return reply.code(400).send({ error: 'bad-request', field: issue.path.join('.'), message: issue.message });
    }
    try {
      const r = await mintRunner(deps, host, parsed.data.pool, parsed.data.workflowJobId);
      mints.inc({ result: r.kind, reason: r.kind === 'refused' ? r.reason : '' });
      if (r.kind === 'refused') return reply.code(403).send({ error: 'refused', reason: r.reason });
      if (r.kind === 'busy') return reply.code(409).send({ error: 'runner-busy', runnerName: r.runnerName });
      if (r.kind === 'already-minted') return reply.code(409).send({ error: 'already-minted', host: r.host });
      return reply.code(201).send(r);
    } catch (err) {
      mints.inc({ result: 'error', reason: '' });
      if (err instanceof GitHubError) {
        deps.logger.warn({ status: err.status, workflowJobId: parsed.data.workflowJobId }, 'github refused a mint call');
        return reply.code(502).send({ error: 'github', status: err.status, message: 'GitHub did not answer as expected; try again' });
      }
      throw err;
    }
  });
}
