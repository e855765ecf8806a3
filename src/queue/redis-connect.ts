import type { Redis } from 'ioredis';
import { StoreError } from '../domain/errors.js';
import { redactRedisUrl } from './redis-readiness.js';

/**
 * Connects a lazy client, or says where and why not: a certificate that is not the one trusted
 * (or a port that is not TLS) as redis-tls.ts words it (a refused certificate has ended the
 * client: not retried), anything else as the first
 * error ioredis saw (its own rejection says only "Connection is closed."). `url` is redis.url
 * as configured; its password never reaches the message.
 */
export async function connectRedis(redis: Redis, url: string): Promise<void> {
  let first: Error | undefined;
  const onError = (err: Error) => void (first ??= err);
  redis.on('error', onError);
  try {
    await redis.connect();
  } catch (err) {
    const why = first ?? (err as Error);
    // Already worded with where and why (redis-tls.ts).
    if (why instanceof StoreError) throw why;
    throw new StoreError('store-unavailable', `cannot reach Redis at ${redactRedisUrl(url)} (redis.url): ${why.message}${plainToTls(url, why)}`);
  } finally {
    redis.off('error', onError);
  }
}

/** A TLS-only Redis drops a plain client's first bytes: the likeliest reason for a reset before any answer. */
function plainToTls(url: string, err: NodeJS.ErrnoException): string {
  if (!url.startsWith('redis://') || (err.code !== 'ECONNRESET' && err.code !== 'EPIPE')) return '';
  return ': if this Redis listens with TLS only, redis.url must be rediss:// (and redis.tls say how its certificate is trusted)';
}
