import type { Redis } from 'ioredis';
import type { Keys } from '../queue/keys.js';

/**
 * Revoked host tokens, held in Redis so that every control replica refuses one from its next
 * request, without a restart or an edit of hosts[]. Keyed by the token's sha256 (what the config
 * holds; the token itself is never known here), so a host enrolled again with a new token works
 * while its old one stays refused. Only the control and `hangar host remove` (admin) reach the
 * key: a host's Redis user has its pools' queues only.
 */
export interface Revocation {
  host: string;
  at: number;
}

/** Records the revocation; false when that token was already revoked (the first record stays). */
export async function revokeToken(redis: Redis, k: Keys, tokenSha256: string, host: string, at = Date.now()): Promise<boolean> {
  const r: Revocation = { host, at };
  return (await redis.hsetnx(k.hostsRevoked, tokenSha256, JSON.stringify(r))) === 1;
}

/** One HEXISTS: hosts' requests are few (a heartbeat every 5 s, a mint and a few reports per job). */
export async function isRevoked(redis: Redis, k: Keys, tokenSha256: string): Promise<boolean> {
  return (await redis.hexists(k.hostsRevoked, tokenSha256)) === 1;
}
