import type { Redis } from 'ioredis';
import type { RunFacts, RunFactsStore } from '../github/index.js';

/**
 * Runs' fixed facts (github/types.ts `RunFacts`) in Redis, one key per run (`keys.runFacts`),
 * shared by every replica: the vetter's read of a new run, the sweep's and reconcile's listings
 * fill it, so the mint and the start gate need not read the run again. A run's facts never
 * change, so nothing is ever stale; the TTL only bounds the memory of runs long finished.
 */
export class RedisRunFacts implements RunFactsStore {
  constructor(
    private readonly redis: Redis,
    private readonly keyOf: (runId: number) => string,
    private readonly ttlSeconds = 7 * 24 * 3600,
  ) {}

  async get(runId: number): Promise<RunFacts | null> {
    const raw = await this.redis.get(this.keyOf(runId));
    if (!raw) return null;
    const f = JSON.parse(raw) as RunFacts;
    // Only a whole entry is trusted; anything else is read again from GitHub.
    return f && f.id === runId && typeof f.event === 'string' && typeof f.repositoryFullName === 'string' ? f : null;
  }

  async put(facts: readonly RunFacts[]): Promise<void> {
    const p = this.redis.pipeline();
    for (const f of facts) p.set(this.keyOf(f.id), JSON.stringify(f), 'EX', this.ttlSeconds);
    await p.exec();
  }
}
