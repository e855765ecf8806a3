import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { withBudgetPriority } from '../github/index.js';
import type { Unit } from '../main/units.js';
import { LeaderLock, type Fence } from './leader.js';
import type { AnyLoop, PassReport } from './loop.js';

/**
 * The reconciler as a unit of the control: it keeps trying for the leader lock, and while it
 * leads runs each loop on its own cadence, one pass at a time per loop. A replica that does not
 * lead runs nothing (it only keeps asking, every third of the lock's life). A pass that fails is
 * logged and counted; the next pass starts afresh.
 */
export interface ReconcilerOptions {
  redis: Redis;
  lockKey: string;
  tokenKey: string;
  leaderTtlMs: number;
  loops: readonly AnyLoop[];
  logger: Logger;
  registry?: Registry;
  /** Names this replica in the lock and the log (default: random). */
  replica?: string;
}

/** How long stop() waits for passes in flight before it hands the lock back regardless. */
const STOP_WAIT_MS = 2_000;

export class Reconciler implements Unit {
  readonly name = 'reconcile';
  readonly lock: LeaderLock;
  private readonly log: Logger;
  private running = false;
  private leaseTimer: NodeJS.Timeout | null = null;
  private readonly loopTimers = new Map<string, NodeJS.Timeout>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private readonly m: {
    leader: Gauge;
    passes: Counter;
    actions: Counter;
    seconds: Histogram;
    token: Gauge;
  } | null;

  constructor(private readonly o: ReconcilerOptions) {
    this.lock = new LeaderLock(o.redis, o.lockKey, o.tokenKey, o.leaderTtlMs, o.replica);
    this.log = o.logger.child({ unit: 'reconcile', replica: this.lock.replica });
    const registers = o.registry ? [o.registry] : [];
    this.m = o.registry
      ? {
          leader: new Gauge({ name: 'hangar_reconcile_leader', help: '1 while this control replica leads reconcile', registers }),
          token: new Gauge({ name: 'hangar_reconcile_fencing_token', help: 'The fencing token this replica last led with', registers }),
          passes: new Counter({ name: 'hangar_reconcile_passes_total', help: 'Reconcile passes, by loop and result', labelNames: ['loop', 'result'], registers }),
          actions: new Counter({ name: 'hangar_reconcile_actions_total', help: 'Actions reconcile took, by loop and action', labelNames: ['loop', 'action'], registers }),
          seconds: new Histogram({ name: 'hangar_reconcile_pass_seconds', help: 'How long a reconcile pass took', labelNames: ['loop'], buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers }),
        }
      : null;
  }

  async start(): Promise<void> {
    this.running = true;
    await this.renew();
    for (const loop of this.o.loops) this.schedule(loop, 0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.leaseTimer) clearTimeout(this.leaseTimer);
    for (const t of this.loopTimers.values()) clearTimeout(t);
    this.loopTimers.clear();
    // A pass stuck in GitHub's retries (API unreachable: seconds of backoff) must not hold the
    // shutdown: wait a little, then hand the lock back; whatever that pass writes later is fenced.
    const settled = Promise.allSettled([...this.inFlight]).then(() => true);
    const waited = await Promise.race([settled, new Promise<false>((resolve) => setTimeout(() => resolve(false), STOP_WAIT_MS).unref())]);
    if (!waited) this.log.warn({ passes: this.inFlight.size, waitedMs: STOP_WAIT_MS }, 'reconcile pass still running at stop: its writes are fenced');
    await this.lock.release().catch(() => undefined);
    this.m?.leader.set(0);
  }


  /**
   * One pass of every loop, now, for `hangar reconcile --once`. With `dryRun` nothing is applied
   * and no lock is taken (it only reads): the plans are described. Otherwise it takes the lock like
   * any pass, and answers `null` when another replica leads.
   */
  async runOnce(opts: { dryRun: boolean; only?: readonly string[] }): Promise<PassReport[] | null> {
    const unknown = (opts.only ?? []).filter((n) => !this.o.loops.some((l) => l.name === n));
    if (unknown.length > 0) throw new Error(`no reconcile loop named ${unknown.join(', ')} (loops: ${this.o.loops.map((l) => l.name).join(', ')})`);
    const leadingBefore = this.lock.fence !== null;
    const fence = opts.dryRun ? { key: this.o.lockKey, value: '(dry run)', token: 0 } : await this.lock.acquire();
    if (!fence) return null;
    const out: PassReport[] = [];
    for (const loop of this.o.loops) if (!opts.only || opts.only.includes(loop.name)) out.push(await this.pass(loop, fence, opts.dryRun));
    // A one-off pass (the CLI) hands the lock straight back; a running reconciler keeps leading.
    if (!opts.dryRun && !leadingBefore && !this.running) await this.lock.release();
    return out;
  }

  private async renew(): Promise<void> {
    try {
      const was = this.lock.fence;
      const fence = await this.lock.acquire();
      if (fence && fence.value !== was?.value) this.log.info({ fencingToken: fence.token }, 'leading reconcile');
      if (!fence && was) this.log.warn({ fencingToken: was.token }, 'no longer leading reconcile');
      this.m?.leader.set(fence ? 1 : 0);
      if (fence) this.m?.token.set(fence.token);
    } catch (err) {
      this.m?.leader.set(0);
      this.log.warn({ err: (err as Error).message }, 'reconcile lock not renewed');
    }
    // The leader renews at a third of the lock's life; a follower asks twice as often, so a dead
    // leader is replaced at most a sixth of a TTL after its lock lapses.
    const every = this.lock.fence ? this.o.leaderTtlMs / 3 : this.o.leaderTtlMs / 6;
    if (this.running) this.leaseTimer = setTimeout(() => void this.renew(), Math.max(200, Math.floor(every)));
  }

  private schedule(loop: AnyLoop, delayMs: number): void {
    if (!this.running) return;
    this.loopTimers.set(
      loop.name,
      setTimeout(() => {
        const fence = this.lock.fence;
        const p = (fence ? this.pass(loop, fence, false) : Promise.resolve(null)).finally(() => {
          this.inFlight.delete(p);
          this.schedule(loop, loop.intervalMs);
        });
        this.inFlight.add(p);
      }, delayMs),
    );
  }

  private pass(loop: AnyLoop, fence: Fence, dryRun: boolean): Promise<PassReport> {
    return withBudgetPriority(loop.budgetPriority ?? 'background', () => this.passAt(loop, fence, dryRun));
  }

  private async passAt(loop: AnyLoop, fence: Fence, dryRun: boolean): Promise<PassReport> {
    const started = Date.now();
    const log = this.log.child({ loop: loop.name });
    try {
      const now = Date.now();
      const plan = loop.plan(await loop.observe(now), now);
      const actions = loop.describe(plan);
      let applied: Record<string, number> | null = null;
      if (!dryRun && actions.length > 0) {
        applied = await loop.apply(plan, fence);
        for (const [action, n] of Object.entries(applied)) if (n > 0) this.m?.actions.inc({ loop: loop.name, action }, n);
        log.info({ actions: actions.slice(0, 20), more: Math.max(0, actions.length - 20), applied }, 'reconcile pass applied');
      }
      this.m?.passes.inc({ loop: loop.name, result: 'ok' });
      return { loop: loop.name, actions, applied, error: null, ms: Date.now() - started };
    } catch (err) {
      this.m?.passes.inc({ loop: loop.name, result: 'error' });
      log.warn({ err: (err as Error).message }, 'reconcile pass failed');
      return { loop: loop.name, actions: [], applied: null, error: (err as Error).message, ms: Date.now() - started };
    } finally {
      this.m?.seconds.observe({ loop: loop.name }, (Date.now() - started) / 1000);
    }
  }
}
