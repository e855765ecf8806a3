import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/schema.js';
import { redisTarget, type RedisTarget } from '../config/secrets.js';
import { PoolQueues } from '../queue/pool-queues.js';
import { connectRedis } from '../queue/redis-connect.js';
import { checkRedis } from '../queue/redis-readiness.js';
import { unit, type Unit } from './units.js';

/**
 * The control's Redis connections as a unit: one for records and scripts, one for queue reads.
 * Both fail fast while Redis is away (the webhook answers 503 and GitHub can redeliver).
 */
export interface ControlRedis extends Unit {
  redis: Redis;
  queues: PoolQueues;
}

const FAIL_FAST = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 5000,
  retryStrategy: (n: number) => Math.min(50 * 2 ** n, 2000),
  lazyConnect: true,
} as const;

export function controlRedis(config: ControlConfig, logger: Logger, target: RedisTarget = redisTarget(config.redis)): ControlRedis {
  // No auto-pipelining: it keeps one batch in flight at a time, so under load every delivery waits
  // for the batch before it; plain writes measured ~10 % more deliveries/s (docs/benchmarks.md).
  const redis = new Redis(target.url, { ...FAIL_FAST, ...target.options });
  const queueConn = new Redis(target.url, { ...FAIL_FAST, commandTimeout: undefined, ...target.options });
  // They reconnect on their own; failures surface per request (the first one at start: connectRedis).
  redis.on('error', () => undefined);
  queueConn.on('error', () => undefined);
  // Queue reads for /metrics and callers; the relay that writes the queues has a thread of its own.
  const queues = new PoolQueues(queueConn, config.redis.prefix, config.pools.map((p) => p.name), (err) =>
    logger.debug({ err: err.message }, 'queue connection error'),
  );
  const disconnect = () => {
    for (const c of [redis, queueConn]) c.disconnect();
  };
  const u = unit(
    'redis',
    async () => {
      try {
        await connectRedis(redis, config.redis.url);
        const readiness = await checkRedis(redis);
        for (const w of readiness.warnings) logger.warn({ redisVersion: readiness.version }, w);
        // BullMQ's queues may have begun connecting it already.
        if (queueConn.status === 'wait') await queueConn.connect();
      } catch (err) {
        disconnect();
        throw err;
      }
    },
    async () => {
      await queues.close();
      disconnect();
    },
  );
  return { ...u, name: u.name, start: u.start, stop: u.stop, redis, queues };
}
