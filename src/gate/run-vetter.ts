import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { ControlConfig } from '../config/schema.js';
import { isFork } from '../domain/start-policy.js';
import type { GitHubClient } from '../github/index.js';
import { keepRunEvent, readJobRecord, type JobRecord } from '../jobs/record.js';
import { jobMoves } from '../jobs/transition.js';
import type { JobMetrics } from '../metrics/job-metrics.js';
import type { Keys } from '../queue/keys.js';

/**
 * Refuses early what intake cannot see, after the webhook was answered (never inside it): it
 * reads the intake's decisions in the events stream, and
 * - for an accepted job, looks its run up once (cached per run): a fork's run is refused
 *   `fork-pr` and cancelled, before a runner is minted for it or beside it;
 * - for a job refused `deploy-not-allowed` (its labels fit a deploy pool, so a deploy runner
 *   minted for another job could be handed it), cancels its run.
 * Only an early defence: the sweep before each mint and the gate at job start hold without it,
 * so a crash between answer and vet loses nothing that matters. Runs while
 * `policy.cancelRefusedRuns` is on.
 */
export interface RunVetterDeps {
  config: ControlConfig;
  github: GitHubClient;
  redisUrl: string;
  /** The user and password (redis.passwordFile) and, with rediss://, the TLS check (config/secrets.ts redisTarget). */
  redisOptions?: RedisOptions;
  /** The control's connection, for records (the vetter's own one blocks on the stream). */
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** Refusals after intake (metrics/job-metrics.ts): counted by the replica whose move went through. */
  jobs?: JobMetrics;
}

type Verdict = 'ok' | 'fork-pr' | 'deploy-not-allowed';

export class RunVetter {
  private readonly reader: Redis;
  /** Runs already judged: one GitHub lookup (and one cancel) per run. */
  private readonly runs = new Map<number, Verdict>();
  private readonly events = new Map<number, string>();
  private stopped = false;
  private loop: Promise<void> | undefined;

  constructor(private readonly d: RunVetterDeps) {
    this.reader = new Redis(d.redisUrl, { lazyConnect: true, maxRetriesPerRequest: null, ...d.redisOptions });
    this.reader.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await this.reader.connect();
    this.loop = this.run();
  }

  /** Stops reading. A vet waiting on GitHub is not waited for: it is only an early refusal. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.reader.disconnect();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.loop?.catch(() => undefined), new Promise((res) => (timer = setTimeout(res, 500)))]);
    clearTimeout(timer);
  }

  private async run(): Promise<void> {
    let cursor = (await this.d.redis.get(this.d.keys.vetCursor).catch(() => null)) ?? '0';
    while (!this.stopped) {
      let batch: [string, string[]][] = [];
      try {
        const r = (await this.reader.xread('COUNT', 100, 'BLOCK', 1000, 'STREAMS', this.d.keys.events, cursor)) as [string, [string, string[]][]][] | null;
        batch = r?.[0]?.[1] ?? [];
      } catch {
        if (!this.stopped) await new Promise((res) => setTimeout(res, 1000));
        continue;
      }
      for (const [id, fields] of batch) {
        if (this.stopped) return;
        await this.vet(fieldMap(fields)).catch((err: Error) => this.d.logger.warn({ err: err.message }, 'vet failed; the mint and the gate still check'));
        cursor = id;
      }
      if (batch.length > 0) await this.d.redis.set(this.d.keys.vetCursor, cursor).catch(() => undefined);
    }
  }

  private async vet(f: Record<string, string>): Promise<void> {
    if (f.type !== 'decision') return;
    const wanted = f.decision === 'accept' || (f.decision === 'reject' && f.reason === 'deploy-not-allowed');
    if (!wanted || !f.workflowJobId) return;
    const rec = await readJobRecord(this.d.redis, this.d.keys, Number(f.workflowJobId));
    if (!rec || rec.state !== 'queued') return;
    const known = this.runs.get(rec.runId);
    // The run's event (the webhook does not carry it) for the other jobs of a run judged already.
    const event = this.events.get(rec.runId);
    if (known !== undefined && event !== undefined && rec.runEvent === null) await keepRunEvent(this.d.redis, this.d.keys, rec.workflowJobId, event);
    const verdict = known ?? (f.decision === 'reject' ? 'deploy-not-allowed' : await this.judge(rec));
    if (verdict === 'ok') return this.remember(rec.runId, verdict);
    await this.refuse(rec, verdict, known === undefined);
  }

  private async judge(rec: JobRecord): Promise<Verdict> {
    const run = await this.d.github.getRunFacts(rec.owner, rec.repo.split('/')[1]!, rec.runId);
    this.events.set(rec.runId, run.event);
    await keepRunEvent(this.d.redis, this.d.keys, rec.workflowJobId, run.event);
    return isFork({ repository: rec.repo, headRepository: run.headRepositoryFullName }) ? 'fork-pr' : 'ok';
  }

  private async refuse(rec: JobRecord, reason: Exclude<Verdict, 'ok'>, firstOfRun: boolean): Promise<void> {
    this.remember(rec.runId, reason);
    const fields: Record<string, string> = { vetRefusal: reason, runCancelledFor: reason };
    const jobs = jobMoves(this.d.redis, this.d.keys);
    // Refused in the record before its run is cancelled: the cancel's own webhook (completed,
    // cancelled) must find the job refused, not queued, or the refusal is lost from view.
    // A deploy job refused at intake is refused already: only its run's cancel is news.
    const moved = rec.phase === 'queued' ? await jobs.move(rec.workflowJobId, { to: 'refused', by: 'vetter', why: reason, fields }) : null;
    // Once per job: the replica whose move went through.
    if (moved?.ok) this.d.jobs?.refused('vet', reason);
    if (firstOfRun) fields.runCancelled = await this.d.github.cancelRun(rec.owner, rec.repo.split('/')[1]!, rec.runId);
    if (!moved?.ok || fields.runCancelled !== undefined) await jobs.note(rec.workflowJobId, { by: 'vetter', what: 'run-cancelled-after-intake', why: reason, fields });
    this.d.logger.warn({ workflowJobId: rec.workflowJobId, runId: rec.runId, reason }, 'refused run cancelled after intake');
  }

  private remember(runId: number, v: Verdict): void {
    if (this.runs.size >= 5000) {
      const oldest = this.runs.keys().next().value!;
      this.runs.delete(oldest);
      this.events.delete(oldest);
    }
    this.runs.set(runId, v);
  }
}

function fieldMap(fields: string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) m[fields[i]!] = fields[i + 1]!;
  return m;
}
