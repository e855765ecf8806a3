import { z } from 'zod';

/**
 * The data of one BullMQ job: what an agent needs to ask for a JIT runner and boot a VM.
 * It carries no secret: JIT configs are minted on demand and travel only in the response.
 */
export const poolJobData = z.strictObject({
  workflowJobId: z.number().int().positive(),
  runId: z.number().int().positive(),
  runAttempt: z.number().int().min(1),
  repo: z.string(),
  owner: z.string(),
  labels: z.array(z.string()),
  pool: z.string(),
  headBranch: z.string().nullable(),
  installationId: z.number().int().positive().nullable(),
  /** When the job record was created (ms since epoch): the start of pickup latency. */
  queuedAt: z.number().int(),
});
export type PoolJobData = z.infer<typeof poolJobData>;

export const POOL_JOB_NAME = 'workflow-job';
