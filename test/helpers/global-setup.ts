import type { TestProject } from 'vitest/node';
import { startLocalRedis, type LocalRedis } from '../../src/main/local-redis.js';

/**
 * One real redis-server for the whole run, on a free port, stopped afterwards. Tests that
 * need to crash Redis start their own. Each test uses its own key prefix (test/helpers/redis.ts).
 */
let redis: LocalRedis | undefined;

export async function setup(project: TestProject): Promise<void> {
  redis = await startLocalRedis();
  project.provide('redisUrl', redis.url);
}

export async function teardown(): Promise<void> {
  await redis?.dispose();
}

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}
