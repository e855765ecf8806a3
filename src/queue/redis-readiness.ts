import type { Redis } from 'ioredis';
import { StoreError } from '../domain/errors.js';

/**
 * Hangar keeps queued jobs in Redis, so Redis must never evict them and should survive a
 * restart. Refuse to start without `noeviction`; warn when nothing is persisted.
 */
export interface RedisReadiness {
  version: string;
  aof: boolean;
  rdb: boolean;
  warnings: string[];
}

export async function checkRedis(redis: Redis): Promise<RedisReadiness> {
  let info: string;
  try {
    info = await redis.info();
  } catch (err) {
    throw new StoreError('store-unavailable', `cannot reach Redis: ${(err as Error).message}. Is redis-server running, and is redis.url right?`);
  }
  const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim() ?? '';
  const policy = field('maxmemory_policy');
  if (policy !== 'noeviction') {
    throw new StoreError(
      'store-misconfigured',
      `Redis maxmemory-policy is "${policy || 'unknown'}"; Hangar needs "noeviction" so queued jobs are never evicted. ` +
        'Set `maxmemory-policy noeviction` in redis.conf, or run `redis-cli CONFIG SET maxmemory-policy noeviction` and `CONFIG REWRITE`.',
    );
  }
  const aof = field('aof_enabled') === '1';
  const rdb = await redis.config('GET', 'save').then((r) => Boolean((r as string[])[1]), () => false);
  const warnings: string[] = [];
  if (!aof && !rdb) {
    warnings.push('Redis persistence is off: a Redis restart loses every queued job. Set `appendonly yes` in redis.conf.');
  } else if (!aof) {
    warnings.push('Redis AOF is off: a crash loses jobs queued since the last snapshot. Set `appendonly yes` in redis.conf.');
  }
  return { version: field('redis_version'), aof, rdb, warnings };
}

/** A Redis URL fit for a message: any password (`redis://:secret@host`, `redis://user:secret@host`) replaced. */
export function redactRedisUrl(url: string): string {
  return url.replace(/^(rediss?:\/\/)([^@/]*)@/, (_m, scheme: string, userinfo: string) =>
    userinfo.includes(':') ? `${scheme}${userinfo.slice(0, userinfo.indexOf(':'))}:***@` : `${scheme}***@`,
  );
}
