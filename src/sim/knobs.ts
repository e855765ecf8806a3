import { z } from 'zod';

/**
 * How unreliable the sim's GitHub is. Rates are shares in 0..1; every random choice comes from
 * one seeded PRNG so a test that sets `seed` sees the same drops, duplicates and shuffles each run.
 */
export const KnobsSchema = z.object({
  /** Share of webhook deliveries recorded as failed and never sent (GitHub does not retry). */
  dropRate: z.number().min(0).max(1),
  /** Share of webhook deliveries sent twice with the same `X-GitHub-Delivery`. */
  duplicateRate: z.number().min(0).max(1),
  /** Hold deliveries this long, then send the batch in shuffled order. 0: send in order. */
  reorderWindowMs: z.number().int().min(0).max(600_000),
  /** Wait this long before sending each delivery. */
  delayMs: z.number().int().min(0).max(600_000),
  /** Share of REST calls answered with a secondary rate limit. */
  rateLimitShare: z.number().min(0).max(1),
  retryAfterSeconds: z.number().int().min(0).max(3600),
  /**
   * The primary limit, requests an hour (the x-ratelimit-* headers; past it, GitHub's 403 "API
   * rate limit exceeded" until the hour resets). GitHub gives an App installation 5,000, more
   * with many repositories or users (up to 12,500), 15,000 on Enterprise Cloud.
   */
  rateLimitPerHour: z.number().int().min(1).max(1_000_000),
  /** 403 is what GitHub sends for a secondary rate limit most of the time; 429 happens too. */
  rateLimitStatus: z.union([z.literal(403), z.literal(429)]),
  /**
   * How long generate-jitconfig takes to answer. GitHub's takes a few hundred ms; the sim's
   * none, which would hide the cost of a mint (bench/pickup sets it).
   */
  jitLatencyMs: z.number().int().min(0).max(60_000),
  /**
   * How long a runner polls before it is handed a job (GitHub's assignment takes a moment, not
   * always the same). 0: at its first poll. Tests set it to hold the job start back a few
   * seconds, e.g. to stop the agent in between.
   */
  assignAfterMs: z.number().int().min(0).max(600_000),
  /**
   * How long a running job's lock lasts without a renewal from its runner before the job is
   * failed as "lost communication with the server". GitHub's runner renews every 60 s and is
   * told the job is valid for 10 more minutes; 600_000 is close to that. 0: never.
   */
  jobLockTimeoutMs: z.number().int().min(0).max(86_400_000),
  /** Lifetime of installation tokens (GitHub: one hour), shorter to test refresh. */
  tokenTtlSeconds: z.number().int().min(1).max(3600),
  seed: z.number().int(),
});
export type Knobs = z.infer<typeof KnobsSchema>;
export const KnobsPatchSchema = KnobsSchema.partial().strict();
export type KnobsPatch = z.infer<typeof KnobsPatchSchema>;

export const DEFAULT_KNOBS: Knobs = {
  dropRate: 0,
  duplicateRate: 0,
  reorderWindowMs: 0,
  delayMs: 0,
  rateLimitShare: 0,
  retryAfterSeconds: 60,
  rateLimitPerHour: 5000,
  rateLimitStatus: 403,
  jitLatencyMs: 0,
  assignAfterMs: 0,
  jobLockTimeoutMs: 600_000,
  tokenTtlSeconds: 3600,
  seed: 1,
};

/** mulberry32: small, fast, good enough to make test runs reproducible. Returns [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The live knobs and the PRNG they drive; setting `seed` restarts the sequence. */
export class KnobBox {
  private knobs: Knobs = { ...DEFAULT_KNOBS };
  random: () => number = prng(DEFAULT_KNOBS.seed);

  get(): Knobs {
    return { ...this.knobs };
  }

  set(patch: KnobsPatch): Knobs {
    this.knobs = { ...this.knobs, ...patch };
    if (patch.seed !== undefined) this.random = prng(patch.seed);
    return this.get();
  }

  /** True with probability `share`; never draws from the PRNG when the share is 0 or 1. */
  chance(share: number): boolean {
    if (share <= 0) return false;
    if (share >= 1) return true;
    return this.random() < share;
  }

  shuffle<T>(items: T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.random() * (i + 1));
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }
}
