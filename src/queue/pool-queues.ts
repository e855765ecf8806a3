import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { POOL_JOB_NAME, type PoolJobData } from './contracts.js';
import { queueJobId, queueName } from './keys.js';

/** Tries per job, and the first pause between them (doubling): 2, 4, 8, 16 s (config `control.retries`). */
export interface JobRetries {
  attempts: number;
  backoffMs: number;
}
export const DEFAULT_RETRIES: JobRetries = { attempts: 5, backoffMs: 2_000 };

/** Jobs per BullMQ addBulk (one MULTI); each job takes Redis about 50 µs. */
const BULK_CHUNK = 25;

/** One BullMQ queue per pool. Adding the same workflow job twice leaves one entry. */
export class PoolQueues {
  private readonly queues = new Map<string, Queue>();

  constructor(
    connection: Redis,
    prefix: string,
    pools: readonly string[],
    onError: (err: Error) => void = () => undefined,
    private readonly retries: JobRetries = DEFAULT_RETRIES,
  ) {
    for (const pool of pools) {
      const q = new Queue(queueName(pool), { connection, prefix });
      // Connection errors surface on each call; without a listener they would only be printed.
      q.on('error', onError);
      this.queues.set(pool, q);
    }
  }

  get pools(): string[] {
    return [...this.queues.keys()];
  }

  queue(pool: string): Queue {
    const q = this.queues.get(pool);
    if (!q) throw new Error(`no queue for pool ${pool}`);
    return q;
  }

  /**
   * One MULTI per pool and chunk of BULK_CHUNK jobs; a job already there (same id) stays as it is.
   * The entries must be valid `PoolJobData` (the relay checks each with `poolJobData`).
   */
  async addBulk(jobs: readonly PoolJobData[]): Promise<void> {
    const byPool = new Map<string, PoolJobData[]>();
    for (const j of jobs) {
      const list = byPool.get(j.pool);
      if (list) list.push(j);
      else byPool.set(j.pool, [j]);
    }
    for (const [pool, list] of byPool) {
      // Redis runs a MULTI as one block: in chunks, the intake's scripts get their turn between them.
      for (let i = 0; i < list.length; i += BULK_CHUNK) {
        await this.queue(pool).addBulk(
          list.slice(i, i + BULK_CHUNK).map((data) => ({
            name: POOL_JOB_NAME,
            data,
            opts: {
              jobId: queueJobId(data.workflowJobId),
              // A transient failure (the control unreachable, a VM whose runner never started a
              // job) is tried again after a pause; a fatal one fails at once (agent.ts).
              attempts: this.retries.attempts,
              backoff: { type: 'exponential', delay: this.retries.backoffMs },
              // Keep finished entries for a while: their ids stop a late re-add from running a job twice.
              removeOnComplete: { age: 3 * 24 * 3600 },
              removeOnFail: { age: 7 * 24 * 3600 },
            },
          })),
        );
      }
    }
  }

  /** Removes the entry of a workflow job if no agent has taken it yet. True when removed. */
  async removeWaiting(pool: string, workflowJobId: number): Promise<boolean> {
    const job = await this.queue(pool).getJob(queueJobId(workflowJobId));
    if (!job) return false;
    const state = await job.getState();
    if (state !== 'waiting' && state !== 'delayed' && state !== 'prioritized') return false;
    await job.remove();
    return true;
  }

  /**
   * A new try of a job Hangar failed (the operator's retry): its failed entry goes back to the
   * queue with its attempts reset; a finished or vanished entry is added anew. An entry an agent
   * still holds, or one already waiting, is left as it is.
   */
  async requeue(data: PoolJobData): Promise<'retried' | 'added' | 'active' | 'waiting'> {
    const job = await this.queue(data.pool).getJob(queueJobId(data.workflowJobId));
    const state = job ? await job.getState() : 'unknown';
    if (job && state === 'failed') {
      await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      return 'retried';
    }
    if (state === 'active') return 'active';
    if (job && state !== 'completed' && state !== 'unknown') return 'waiting';
    if (job) await job.remove();
    await this.addBulk([data]);
    return 'added';
  }

  async depth(): Promise<Record<string, Record<string, number>>> {
    const out: Record<string, Record<string, number>> = {};
    for (const [pool, q] of this.queues) {
      out[pool] = await q.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed');
    }
    return out;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
  }
}
