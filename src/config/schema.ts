import { z } from 'zod';

/**
 * The one schema for `hangar.yaml`. Unknown keys are errors (a typo must not silently
 * disable a setting). Secrets are file paths, never values.
 */

const poolName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and dashes, at most 32, not starting with a dash');

/** `owner/repo`, or `owner/*` for every repository of an owner. Matched case-insensitively. */
export const repoPattern = z
  .string()
  .regex(/^[A-Za-z0-9_.-]+\/(\*|[A-Za-z0-9_.-]+)$/, 'expected "owner/repo" or "owner/*"');

const label = z.string().min(1).max(100).regex(/^[^,\s]+$/, 'a label has no spaces or commas');
const filePath = z.string().min(1, 'expected a file path');

const deploy = z.strictObject({
  /** Repositories that may run jobs in this pool. */
  repositories: z.array(repoPattern).min(1),
  /** Branches (exact names, or a prefix ending in `*`) that may run jobs in this pool. */
  branches: z.array(z.string().min(1)).min(1),
});

const pool = z.strictObject({
  name: poolName,
  /** The runner's labels; a job goes here when its `runs-on` labels are a subset of these. */
  labels: z
    .array(label)
    .min(1)
    .refine((ls) => ls.some((l) => l.toLowerCase() === 'self-hosted'), 'must include "self-hosted"'),
  /** Runner group the JIT runners join (1 is the default group). */
  runnerGroupId: z.number().int().positive().default(1),
  /** Register runners on the repository (default) or on the organization. */
  scope: z.enum(['repo', 'org']).default('repo'),
  /** Present on a deploy pool: only these repositories and branches may run here. */
  deploy: deploy.optional(),
});

export const configSchema = z
  .strictObject({
    github: z.strictObject({
      apiUrl: z.url({ protocol: /^https?$/ }).default('https://api.github.com'),
      appId: z.number().int().positive(),
      privateKeyFile: filePath,
      webhookSecretFile: filePath,
      /** During a secret rotation: the old secret, still accepted until removed. */
      previousWebhookSecretFile: filePath.optional(),
    }),
    redis: z
      .strictObject({
        url: z.string().regex(/^rediss?:\/\//, 'expected redis:// or rediss://').default('redis://127.0.0.1:6379'),
        /** Key prefix, so several Hangars (or tests) can share one Redis. */
        prefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default('hangar'),
      })
      .prefault({}),
    control: z
      .strictObject({
        host: z.string().min(1).default('0.0.0.0'),
        port: z.number().int().min(0).max(65535).default(8080),
        /** GitHub caps payloads at 25 MB; a workflow_job event is a few kB. */
        bodyLimitBytes: z.number().int().min(1024).max(26_214_400).default(1_048_576),
        /** How long a delivery id is remembered for dedupe. GitHub redelivers for 3 days. */
        deliveryTtlHours: z.number().int().min(72).default(72),
      })
      .prefault({}),
    policy: z.strictObject({
      /** Repositories whose jobs Hangar may run. Everything else is refused. */
      repositories: z.array(repoPattern).min(1),
      /** Internal (enterprise-visible) repositories are refused unless this is true. */
      allowInternal: z.boolean().default(false),
    }),
    pools: z.array(pool).min(1),
    log: z
      .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Map<string, number>();
    cfg.pools.forEach((p, i) => {
      const first = seen.get(p.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['pools', i, 'name'], message: `duplicate pool name "${p.name}" (also pools.${first})` });
      } else {
        seen.set(p.name, i);
      }
    });
  });

export type Config = z.output<typeof configSchema>;
export type PoolConfig = Config['pools'][number];
