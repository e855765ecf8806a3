import type { Redis } from 'ioredis';
import { fail, judgeEviction, judgePersistence, ok, skip, type Finding } from '../domain/doctor.js';
import { redactRedisUrl } from '../queue/redis-readiness.js';
import type { Check, DoctorContext } from './check.js';

/**
 * Redis as Hangar needs it: reachable as the configured user, never evicting, persisted. The
 * fields are those queue/redis-readiness.ts checkRedis reads at start, judged one by one here:
 * checkRedis stops at the first problem, and takes a refused CONFIG GET (a host's ACL user) for
 * "no snapshots", where the doctor must say it cannot tell.
 */

/** Redis's error replies start with their code (NOPERM, NOAUTH…): the one word we may branch on. */
const replyCode = (err: unknown) => /^([A-Z]+)\b/.exec((err as Error).message)?.[1];

async function client(ctx: DoctorContext): Promise<{ redis: Redis } | { unreachable: Finding }> {
  try {
    return { redis: await ctx.redis() };
  } catch {
    return { unreachable: skip('Redis is unreachable (see redis-reachable)') };
  }
}

export const redisReachable: Check = {
  id: 'redis-reachable',
  title: 'Redis reachable',
  async run(ctx) {
    const url = ctx.embeddedRedisDir ? `the embedded Redis (${ctx.embeddedRedisDir})` : redactRedisUrl(ctx.control?.redis.url ?? ctx.agent!.redis.url);
    try {
      const r = await ctx.redis();
      await r.ping();
      const version = /^redis_version:(.*)$/m.exec(await r.info('server').catch(() => ''))?.[1]?.trim();
      return ok(`${url} answers${version ? ` (Redis ${version})` : ''}`);
    } catch (err) {
      return ctx.embeddedRedisDir
        ? fail((err as Error).message, `start \`hangar up --config ${ctx.file}\` (it runs this file's Redis), or set redis.url to a Redis of yours`)
        : fail((err as Error).message, 'start redis-server, or correct redis.url (and redis.passwordFile, redis.tls) to the Redis the control uses');
    }
  },
};

export const redisEviction: Check = {
  id: 'redis-eviction',
  title: 'Redis maxmemory-policy noeviction',
  async run(ctx) {
    const c = await client(ctx);
    if ('unreachable' in c) return c.unreachable;
    const info = await c.redis.info('memory').catch(() => null);
    return judgeEviction(info === null ? undefined : field(info, 'maxmemory_policy'));
  },
};

export const redisPersistence: Check = {
  id: 'redis-persistence',
  title: 'Redis persistence (appendonly or snapshots)',
  async run(ctx) {
    const c = await client(ctx);
    if ('unreachable' in c) return c.unreachable;
    const r = c.redis;
    const info = await r.info('persistence').catch(() => null);
    const aof = info === null ? undefined : field(info, 'aof_enabled') === '1';
    let save: string | null;
    try {
      save = ((await r.config('GET', 'save')) as string[])[1] ?? '';
    } catch (err) {
      if (replyCode(err) !== 'NOPERM') throw err;
      save = null;
    }
    return judgePersistence(aof, save);
  },
};

const field = (info: string, name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
