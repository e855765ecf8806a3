import type { FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { authenticateHost, type KnownHost } from './host-auth.js';

/**
 * The start of every agent-facing route: no caching, the host from its token (401 when it is
 * none of the configured hosts), the body against its schema (400 naming the first bad field).
 * Null when the reply has been sent.
 */
export function hostRequest<T>(req: FastifyRequest, reply: FastifyReply, hosts: readonly KnownHost[], schema: z.ZodType<T>): { host: KnownHost; body: T } | null {
  reply.header('cache-control', 'no-store');
  const host = authenticateHost(hosts, req.headers.authorization);
  if (!host) {
    void reply.code(401).send({ error: 'unauthorized', message: 'unknown host token' });
    return null;
  }
  const parsed = schema.safeParse(req.body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    void reply.code(400).send({ error: 'bad-request', field: issue.path.join('.'), message: issue.message });
    return null;
  }
  return { host, body: parsed.data };
}
