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

/** Every value under a prefix, as text: for proving that no secret was ever stored. */
export async function dumpPrefix(url: string, prefix: string): Promise<string> {
  const r = new Redis(url);
  const out: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, found] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      for (const key of found) {
        const type = await r.type(key);
        if (type === 'string') out.push(key, String(await r.get(key)));
        else if (type === 'hash') out.push(key, JSON.stringify(await r.hgetall(key)));
        else if (type === 'list') out.push(key, JSON.stringify(await r.lrange(key, 0, -1)));
        else if (type === 'set') out.push(key, JSON.stringify(await r.smembers(key)));
        else if (type === 'zset') out.push(key, JSON.stringify(await r.zrange(key, '0', '-1')));
        else if (type === 'stream') out.push(key, JSON.stringify(await r.xrange(key, '-', '+')));
      }
    } while (cursor !== '0');
  } finally {
    r.disconnect();
  }
  return out.join('\n');
}
