import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Keys } from '../queue/keys.js';
import { authenticateHost, type KnownHost } from './host-auth.js';
import { isRevoked } from './host-revocation.js';

export interface HostRequestDeps {
  hosts: readonly KnownHost[];
  redis: Redis;
  keys: Keys;
  logger: Logger;
}

/**
 * The start of every agent-facing route: no caching, the host from its token (401 when it is
 * none of the configured hosts; 403 `host-revoked` when `hangar host remove` revoked it, even
 * while it is still in hosts[]), the body against its schema (400 naming the first bad field).
 * Null when the reply has been sent. Redis unreachable: the check throws (503), never lets a
 * token through unchecked.
 */
export async function hostRequest<T>(req: FastifyRequest, reply: FastifyReply, deps: HostRequestDeps, schema: z.ZodType<T>): Promise<{ host: KnownHost; body: T } | null> {
  reply.header('cache-control', 'no-store');
  const host = authenticateHost(deps.hosts, req.headers.authorization);
  if (!host) {
    void reply.code(401).send({ error: 'unauthorized', message: 'unknown host token' });
    return null;
  }
  if (await isRevoked(deps.redis, deps.keys, host.tokenSha256)) {
    // The host's name only: neither the token nor its hash reaches the log.
    deps.logger.warn({ host: host.name, method: req.method, route: req.routeOptions.url }, 'refused a request with a revoked host token');
    void reply.code(403).send({ error: 'host-revoked', message: `host ${host.name}'s credentials were revoked (hangar host remove): enrol it again with hangar host add` });
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
