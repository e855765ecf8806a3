import { z } from 'zod';
import { checkPoolsAndHosts, filePath, repoPattern, requiredFor, sharedShape, withChecks } from './schema.js';

/**
 * What `hangar control` reads: GitHub, the policy, its listener, and the shared sections
 * (schema.ts). An agent host's file has none of the control's own sections: it has no GitHub
 * credentials.
 */

const github = z.strictObject(
  {
    apiUrl: z.url({ protocol: /^https?$/ }).default('https://api.github.com'),
    appId: z.number().int().positive(),
    privateKeyFile: filePath,
    webhookSecretFile: filePath,
    /** During a secret rotation: the old secret, still accepted until removed. */
    previousWebhookSecretFile: filePath.optional(),
    /** Pause between GitHub writes (runner registration, deletion), as GitHub asks of integrations. */
    writeSpacingMs: z.number().int().min(0).max(10_000).default(1000),
  },
  requiredFor('hangar control'),
);

const policy = z.strictObject(
  {
    /** Repositories whose jobs Hangar may run. Everything else is refused. */
    repositories: z.array(repoPattern).min(1),
    /** Internal (enterprise-visible) repositories are refused unless this is true. */
    allowInternal: z.boolean().default(false),
    /**
     * Cancel refused runs before a runner can be handed their jobs: deploy jobs refused at
     * intake, fork runs, and refused jobs a new runner could take. The gate at job start
     * holds without it; this only refuses earlier.
     */
    cancelRefusedRuns: z.boolean().default(true),
  },
  requiredFor('hangar control'),
);

const control = z
  .strictObject({
    host: z.string().min(1).default('0.0.0.0'),
    port: z.number().int().min(0).max(65535).default(8080),
    /** GitHub caps payloads at 25 MB; a workflow_job event is a few kB. */
    bodyLimitBytes: z.number().int().min(1024).max(26_214_400).default(1_048_576),
    /** How long a delivery id is remembered for dedupe. GitHub redelivers for 3 days. */
    deliveryTtlHours: z.number().int().min(72).default(72),
    /**
     * Tries per job, and the first pause between them (it doubles): a transient failure (the
     * control unreachable, a VM whose runner never started a job) gets another go; a fatal one
     * fails at once.
     */
    retries: z
      .strictObject({
        attempts: z.number().int().min(1).max(20).default(5),
        backoffSeconds: z.number().min(0.1).max(600).default(2),
      })
      .prefault({}),
  })
  .prefault({});

const controlShape = { github, policy, control, ...sharedShape };

/** The control's own sections: a file with any of them is (also) a control's. */
export const CONTROL_ONLY_SECTIONS = ['github', 'policy', 'control'] as const;
export const CONTROL_SECTIONS = Object.keys(controlShape);

export const controlSchema = withChecks(z.strictObject(controlShape), checkPoolsAndHosts);

/** The config `hangar control` runs with (requireControl, load.ts). */
export type ControlConfig = z.output<typeof controlSchema>;
