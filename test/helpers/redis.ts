import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';

/** The run's shared Redis (started by global-setup) and a fresh key prefix per test. */
export const redisUrl = (): string => inject('redisUrl');
export const testPrefix = (): string => `test-${randomUUID().slice(0, 8)}`;

/** Deletes every key under a prefix: tests clean up after themselves. */
export async function dropPrefix(url: string, prefix: string): Promise<void> {
  const r = new Redis(url);
  try {
    let cursor = '0';
    do {
      const [next, found] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (found.length) await r.del(...found);
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
}
