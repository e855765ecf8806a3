import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { JobRetries } from './pool-queues.js';
import type { RedisTrust } from './redis-tls.js';

/**
 * Runs the outbox relay (outbox.ts) in a worker thread of the control and restarts it if it
 * dies. The intake's main thread then does only HTTP and one Redis script per delivery; the
 * relay's BullMQ work (about a fifth of the control's CPU under load) and its batches never
 * hold up a webhook answer.
 */
export interface RelayThreadData {
  redisUrl: string;
  /** The user and password (redis.passwordFile), passed in memory to the thread. */
  redisOptions?: { username?: string; password?: string };
  /** With rediss://: how Redis's certificate is trusted (redis.tls), as data; the thread makes its TLS check of it. */
  redisTrust?: RedisTrust | null;
  prefix: string;
  pools: string[];
  level: string;
  consumer?: string;
  claimIdleMs?: number;
  keepSeconds?: number;
  /** Tries and backoff of each queue entry (config `control.retries`). */
  retries?: JobRetries;
  /** How much lower than the main thread the relay thread runs (nice increment; default RELAY_NICE). */
  nice?: number;
}

export const RELAY_NICE = 10;
/** Main-thread event-loop utilisation from which the intake counts as busy (the relay is paced). */
export const BUSY_UTILISATION = 0.5;
/**
 * Deliveries per second from which the intake counts as busy, however idle its thread looks:
 * a thread waiting on a Redis that the relay keeps busy has a low utilisation, which alone
 * would tell the relay to go on at full speed. (In bench/intake's steady flood both signals say
 * busy; the rate matters when Redis, not the thread, is what holds the answers up.)
 */
export const BUSY_DELIVERIES_PER_SECOND = 500;
const LOAD_SAMPLE_MS = 100;

/** Whether the intake counts as busy over one sample: its thread's utilisation or its delivery rate. */
export function intakeBusy(utilisation: number, deliveriesPerSecond: number): boolean {
  return utilisation >= BUSY_UTILISATION || deliveriesPerSecond >= BUSY_DELIVERIES_PER_SECOND;
}

export type RelayThreadMessage =
  | { type: 'ready' }
  | { type: 'stopped' }
  | { type: 'stop' }
  | { type: 'intake-load'; busy: boolean }
  | { type: 'log'; level: number; args: unknown[] };

/**
 * The thread's entry: the compiled module in a build. Run from source (the tests, under vitest),
 * the TS module, loaded through tsx (a dev dependency) registered inside the thread.
 */
function entry(): { file: URL | string; eval?: boolean } {
  if (import.meta.url.endsWith('.ts')) {
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api')).href.replace(/\.cjs$/, '.mjs');
    const module = new URL('./outbox-thread.ts', import.meta.url).href;
    return { file: `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(module)}); });`, eval: true };
  }
  const file = new URL('./outbox-thread.js', import.meta.url);
  if (!existsSync(fileURLToPath(file))) throw new Error(`${fileURLToPath(file)} is missing: the build is incomplete (npm run build)`);
  return { file };
}

export class OutboxWorker {
  private worker: Worker | undefined;
  private stopping = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private restarts = 0;
  private loadTimer: NodeJS.Timeout | undefined;

  /**
   * `deliveries` counts what the intake has taken so far (JobStore.calls): with the main thread's
   * utilisation, it tells the relay when to leave Redis and the CPU to the answers.
   */
  constructor(
    private readonly data: RelayThreadData,
    private readonly logger: Logger,
    private readonly deliveries: () => number = () => 0,
  ) {}

  /** The running thread, if any (diagnostics, and tests that make it die). */
  get thread(): Worker | undefined {
    return this.worker;
  }

  /** Starts the thread; resolves once it runs (its Redis connections come up on their own). */
  async start(): Promise<void> {
    const { file, eval: isCode } = entry();
    const worker = new Worker(file, { workerData: this.data, eval: isCode, name: 'hangar-outbox-relay' });
    this.worker = worker;
    worker.on('message', (m: RelayThreadMessage) => {
      if (m.type === 'log') {
        const label = this.logger.levels.labels[m.level] as 'info' | 'warn' | 'error' | 'debug' | undefined;
        const log = label ? this.logger[label] : undefined;
        (log as ((...a: unknown[]) => void) | undefined)?.apply(this.logger, m.args);
      }
    });
    let running = false;
    let startedAt = Date.now();
    const ready = new Promise<void>((resolve, reject) => {
      const onMessage = (m: RelayThreadMessage) => {
        if (m.type !== 'ready') return;
        worker.off('message', onMessage);
        running = true;
        resolve();
      };
      worker.on('message', onMessage);
      worker.once('error', (err) => reject(new Error(`the outbox relay thread failed to start: ${err.message}`)));
      worker.once('exit', (code) => reject(new Error(`the outbox relay thread exited during start (code ${code})`)));
    });
    worker.on('error', (err) => this.logger.error({ err }, 'outbox relay thread failed'));
    worker.on('exit', (code) => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      // Before 'ready' the caller of start() sees the failure; after it, the thread is restarted.
      if (!running || this.stopping) return;
      this.logger.error({ code }, 'outbox relay thread exited');
      // A thread that ran a while starts the backoff afresh; one that keeps dying backs off.
      if (Date.now() - startedAt >= 60_000) this.restarts = 0;
      this.restartLater();
    });
    await ready;
    startedAt = Date.now();
    this.reportLoad(worker);
  }

  /** Tells the relay thread, a few times a second, whether this (the intake's) thread is busy. */
  private reportLoad(worker: Worker): void {
    clearInterval(this.loadTimer);
    let last = performance.eventLoopUtilization();
    let lastCount = this.deliveries();
    let lastAt = performance.now();
    this.loadTimer = setInterval(() => {
      const now = performance.eventLoopUtilization();
      const count = this.deliveries();
      const at = performance.now();
      const busy = intakeBusy(performance.eventLoopUtilization(now, last).utilization, ((count - lastCount) * 1000) / Math.max(1, at - lastAt));
      last = now;
      lastCount = count;
      lastAt = at;
      worker.postMessage({ type: 'intake-load', busy } satisfies RelayThreadMessage);
    }, LOAD_SAMPLE_MS);
    this.loadTimer.unref();
  }

  private restartLater(): void {
    const inMs = Math.min(1000 * 2 ** this.restarts++, 30_000);
    this.logger.warn({ restartInMs: inMs }, 'restarting the outbox relay thread');
    this.restartTimer = setTimeout(() => {
      if (this.stopping) return;
      this.start().catch((err: Error) => {
        this.logger.error({ err: err.message }, 'outbox relay thread did not restart');
        this.restartLater();
      });
    }, inMs);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.restartTimer);
    clearInterval(this.loadTimer);
    const worker = this.worker;
    if (!worker) return;
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    worker.postMessage({ type: 'stop' } satisfies RelayThreadMessage);
    const t = setTimeout(() => void worker.terminate(), 10_000);
    await exited;
    clearTimeout(t);
  }
}
