import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { PLAN_MINUTES } from '../config/control-schema.js';
import type { ControlConfig } from '../config/schema.js';
import { batchProgress, latestBatch, utilisation } from '../domain/batch.js';
import { monthOf, savings } from '../domain/savings.js';
import { EVENTS_MAXLEN, toEvent, type JobEvent } from '../jobs/events.js';
import { readJobRecords, recentJobIds, type JobRecord } from '../jobs/record.js';
import type { Keys } from '../queue/keys.js';
import type { BatchView, HostView, Overview, PoolView, SavingsView, StreamMessage } from './api-types.js';
import { EventLog } from './event-log.js';
import { JobIndex } from './job-index.js';
import { billedRun, hostView, isLive, poolView, type Beat } from './views.js';

/**
 * The dashboard's read model: job records held in memory and kept current by following the
 * events stream, so an answer is a walk over memory, never a scan of Redis. At start it loads
 * the newest records (the job index, pipelined reads through jobs/record.ts) and then reads the
 * stream from the id it had before loading (on a connection of its own, XREAD BLOCK), re-reading
 * each job an event names. Hosts are the config's, joined with their heartbeats and drain flags,
 * read every `hostsEveryMs`. Every change is handed to the listeners (the SSE clients) as the
 * changed view: one reader per control, fanned out in process.
 *
 * The records are held in a JobIndex (job-index.ts): each record's views and the orders the
 * sections want are kept as records change, so an overview costs what it shows (measured with
 * bench/dashboard: walking and sorting all 10,000 records per overview was ~100 ms).
 *
 * Savings: the month's billed time of each job a Hangar runner ran is kept in a Redis hash per
 * month (keys.savingsLedger), job id → ms. Written by every replica that sees the job complete,
 * always the same value (an idempotent HSET), so it outlives the records (kept 14 days) and a
 * control that was down when a job ended fills it in from the record at its next start.
 */
export interface ReadModelDeps {
  config: ControlConfig;
  redis: Redis;
  keys: Keys;
  logger: Logger;
  /** Records held (the newest); older ones are dropped once final. */
  maxJobs?: number;
  hostsEveryMs?: number;
  now?: () => number;
}

const MAX_OVERVIEW_JOBS = 200;
const MAX_REFUSALS = 100;
const LEDGER_TTL_SECONDS = 100 * 24 * 3600;

export class ReadModel {
  private readonly jobs = new JobIndex();
  /** The events stream as read (twice what it keeps: never fewer entries than Redis holds). */
  private readonly events = new EventLog(2 * EVENTS_MAXLEN);
  private hosts: HostView[] = [];
  private hostsJson = new Map<string, string>();
  private maxSlots = 0;
  private month: string;
  private readonly ledger = new Map<number, number>();
  private readonly listeners = new Set<(m: StreamMessage) => void>();
  private readonly reader: Redis;
  private cursor = '0';
  private stopped = false;
  private loop: Promise<void> | undefined;
  private hostsTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private readonly maxJobs: number;
  private lastBatchJson = 'null';
  /** The pools, until a job or a host changes (hostsVersion). */
  private poolsCache: { key: string; pools: PoolView[] } | null = null;
  private hostsVersion = 0;
  /** Moves whenever the savings are made again. */
  private savingsVersion = 0;
  /** Each overview section's JSON, with what it was made from (freshOverviewJson). */
  private readonly jsonCache: Partial<Record<'hosts' | 'pools' | 'jobs' | 'refusals' | 'batch' | 'batchRuns' | 'batchJobs' | 'savings', { key: string; json: string }>> = {};
  private hostsInFlight: Promise<void> | null = null;
  private hostsNext: Promise<void> | null = null;
  /** The month's savings, until the ledger changes. */
  private savingsView: SavingsView | null = null;

  constructor(private readonly d: ReadModelDeps) {
    this.now = d.now ?? Date.now;
    this.maxJobs = d.maxJobs ?? 20_000;
    this.month = monthOf(this.now());
    this.reader = d.redis.duplicate({ lazyConnect: true, maxRetriesPerRequest: null });
    this.reader.on('error', () => undefined);
  }

  async start(): Promise<void> {
    const { redis, keys: k } = this.d;
    // The stream's last id before loading: what happens while loading is read again (harmless).
    const last = await redis.xrevrange(k.events, '+', '-', 'COUNT', 1);
    this.cursor = last[0]?.[0] ?? '0';
    await this.events.load(redis, k, this.cursor);
    const ids = await recentJobIds(redis, k, this.maxJobs);
    for (const r of await readJobRecords(redis, k, ids)) if (r) this.jobs.set(r);
    await this.loadLedger();
    await this.refreshHosts();
    this.lastBatchJson = JSON.stringify(this.batch());
    await this.reader.connect();
    this.loop = this.follow();
    this.hostsTimer = setInterval(() => void this.refreshHosts().catch((err: Error) => this.d.logger.warn({ err: err.message }, 'dashboard: hosts not read')), this.d.hostsEveryMs ?? 2_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.hostsTimer);
    this.reader.disconnect();
    await this.loop?.catch(() => undefined);
    this.listeners.clear();
  }

  subscribe(fn: (m: StreamMessage) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  job(id: number): JobRecord | undefined {
    return this.jobs.get(id);
  }

  /** The overview, with the hosts' heartbeats read now (one pipeline), so a beat a moment ago shows. */
  async freshOverview(): Promise<Overview> {
    await this.hostsReadAfterNow();
    return this.overview();
  }

  /**
   * The overview as JSON, as `JSON.stringify(await freshOverview())` gives it, for the API: each
   * section's text kept until what it is made of changes (bench/dashboard: the ~350 KB of 10,000
   * records' overview cost ~7 ms of the control's CPU a request, most of it serialising the same
   * sections again). A running batch is made again each time: its makespan moves with the clock.
   */
  async freshOverviewJson(): Promise<string> {
    await this.hostsReadAfterNow();
    const c = this.jsonCache;
    const part = (name: keyof typeof c, key: string, make: () => unknown): string => {
      const held = c[name];
      if (held?.key === key) return held.json;
      const json = JSON.stringify(make());
      c[name] = { key, json };
      return json;
    };
    const jobsKey = String(this.jobs.version);
    const batch = this.batch();
    let batchJson = 'null';
    if (batch !== null && batch.lastFinishedAt !== null) batchJson = part('batch', `${jobsKey}/${this.hostsVersion}/${this.maxSlots}`, () => batch);
    else if (batch !== null) {
      // Running: its jobs' views (most of its text) are kept as the jobs change; the rest moves with the clock.
      const { runIds, jobs, ...rest } = batch;
      batchJson = `{"runIds":${part('batchRuns', jobsKey, () => runIds)},"jobs":${part('batchJobs', jobsKey, () => jobs)},${JSON.stringify(rest).slice(1)}`;
    }
    return `{"generatedAt":${JSON.stringify(this.now())},"hosts":${part('hosts', String(this.hostsVersion), () => this.hosts)},`
      + `"pools":${part('pools', `${jobsKey}/${this.hostsVersion}`, () => this.pools())},"jobs":${part('jobs', jobsKey, () => this.shownJobs())},`
      + `"refusals":${part('refusals', jobsKey, () => this.jobs.refusals(MAX_REFUSALS))},"batch":${batchJson},`
      + `"savings":${part('savings', String(this.savingsVersion), () => this.savings())}}`;
  }

  /**
   * The heartbeats read by a pass that began after this call: requests that arrive while one is
   * in flight share the next one, so many open pages cost one pipeline, not one each.
   */
  private hostsReadAfterNow(): Promise<void> {
    if (!this.hostsInFlight) {
      const run = this.refreshHosts().finally(() => {
        if (this.hostsInFlight === run) this.hostsInFlight = null;
      });
      this.hostsInFlight = run;
      return run;
    }
    if (!this.hostsNext) {
      const next = this.hostsInFlight.catch(() => undefined).then(() => {
        this.hostsNext = null;
        return this.hostsReadAfterNow();
      });
      this.hostsNext = next;
    }
    return this.hostsNext;
  }

  overview(): Overview {
    return {
      generatedAt: this.now(),
      hosts: this.hosts,
      pools: this.pools(),
      jobs: this.shownJobs(),
      refusals: this.jobs.refusals(MAX_REFUSALS),
      batch: this.batch(),
      savings: this.savings(),
    };
  }

  /** The newest live jobs first, up to the limit, then the newest of the rest; in newest-first order. */
  private shownJobs(): Overview['jobs'] {
    const recent = this.jobs.newestFirst();
    const shown = new Set<number>();
    for (const r of recent) {
      if (shown.size >= MAX_OVERVIEW_JOBS) break;
      if (isLive(r)) shown.add(r.workflowJobId);
    }
    for (const r of recent) {
      if (shown.size >= MAX_OVERVIEW_JOBS) break;
      shown.add(r.workflowJobId);
    }
    const out: Overview['jobs'] = [];
    for (const r of recent) {
      if (out.length === shown.size) break;
      if (shown.has(r.workflowJobId)) out.push(this.jobs.view(r.workflowJobId)!);
    }
    return out;
  }

  pools(): PoolView[] {
    const key = `${this.jobs.version}/${this.hostsVersion}`;
    if (this.poolsCache?.key === key) return this.poolsCache.pools;
    const names = this.d.config.pools.map((p) => p.name);
    // Waiting and running jobs are live ones of the pool: it needs no other record.
    const pools = this.d.config.pools.map((p) => poolView(p, this.jobs.live(p.name), this.hosts, names));
    this.poolsCache = { key, pools };
    return pools;
  }

  hostViews(): HostView[] {
    return this.hosts;
  }

  savings(): SavingsView {
    if (this.savingsView) return this.savingsView;
    const s = this.d.config.dashboard.savings;
    return (this.savingsView = savings(this.month, [...this.ledger.values()], {
      plan: s.plan,
      pricePerMinute: s.pricePerMinute,
      includedMinutes: s.includedMinutes ?? PLAN_MINUTES[s.plan],
      platformChargePerMinute: s.platformChargePerMinute,
    }));
  }

  batch(): BatchView | null {
    const jobs = latestBatch(this.jobs.batchCandidates());
    if (jobs.length === 0) return null;
    const now = this.now();
    const p = batchProgress(jobs, now);
    const views = jobs.map((j) => this.jobs.view(j.workflowJobId)!);
    const spans = this.jobs.spans();
    const total = this.maxSlots || this.hosts.reduce((n, h) => n + (h.slots?.total ?? 0), 0);
    return {
      runIds: [...new Set(jobs.map((j) => j.runId))],
      jobs: views,
      total: p.total,
      done: p.done,
      failed: p.failed,
      running: views.filter((v) => v.result === 'running').length,
      waiting: views.filter((v) => v.result === 'waiting').length,
      firstQueuedAt: p.firstQueuedAt,
      lastFinishedAt: p.lastFinishedAt,
      makespanMs: p.makespanMs,
      utilisation: p.firstQueuedAt === null ? [] : utilisation(spans, p.firstQueuedAt, p.lastFinishedAt ?? now, total),
    };
  }

  /** Reads every host's heartbeat and drain flag (one pipeline); pushes the hosts (and pools) that changed. */
  async refreshHosts(): Promise<void> {
    const { redis, keys: k, config } = this.d;
    const pipe = redis.pipeline();
    for (const h of config.hosts) pipe.get(k.host(h.name)).exists(k.hostDrain(h.name));
    const rows = (await pipe.exec()) ?? [];
    const hosts = config.hosts.map((h, i) => {
      const [e1, beat] = rows[2 * i] ?? [null, null];
      const [e2, drained] = rows[2 * i + 1] ?? [null, 0];
      if (e1 || e2) throw e1 ?? e2;
      return hostView(h, parseBeat(beat as string | null), Number(drained) === 1);
    });
    this.hosts = hosts;
    this.maxSlots = Math.max(this.maxSlots, hosts.reduce((n, h) => n + (h.slots?.total ?? 0), 0));
    let changed = false;
    for (const h of hosts) {
      const json = JSON.stringify(h);
      if (this.hostsJson.get(h.name) === json) continue;
      this.hostsJson.set(h.name, json);
      changed = true;
      this.emit({ event: 'host', data: h });
    }
    if (changed) this.hostsVersion++;
    if (changed) for (const p of this.pools()) this.emit({ event: 'pool', data: p });
  }

  private async follow(): Promise<void> {
    while (!this.stopped) {
      let batch: [string, string[]][] = [];
      try {
        const r = (await this.reader.xread('COUNT', 500, 'BLOCK', 1000, 'STREAMS', this.d.keys.events, this.cursor)) as [string, [string, string[]][]][] | null;
        batch = r?.[0]?.[1] ?? [];
      } catch (err) {
        if (this.stopped) return;
        this.d.logger.warn({ err: (err as Error).message }, 'dashboard: events stream not read; trying again');
        await new Promise((res) => setTimeout(res, 1000));
        continue;
      }
      if (batch.length === 0) continue;
      this.cursor = batch[batch.length - 1]![0];
      const ids = new Set<number>();
      for (const [id, flat] of batch) {
        const e = toEvent(id, flat);
        this.events.add(e);
        if (e.workflowJobId !== null) ids.add(e.workflowJobId);
      }
      try {
        await this.reread([...ids]);
      } catch (err) {
        this.d.logger.warn({ err: (err as Error).message }, 'dashboard: job records not read');
      }
    }
  }

  /** Every event of one job still in the stream, oldest first (as jobs/events.ts `eventsOfJob`), from the held copy. */
  eventsOfJob(workflowJobId: number): Promise<JobEvent[]> {
    return this.events.eventsOf(this.d.redis, this.d.keys, workflowJobId, this.cursor);
  }

  /** Reads these jobs' records again and pushes what changed. */
  async reread(ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    const records = await readJobRecords(this.d.redis, this.d.keys, ids);
    const pools = new Set<string>();
    let billed = false;
    for (const r of records) {
      if (!r) continue;
      const { before, view, refusal: ref, refusalBefore } = this.jobs.set(r);
      this.emit({ event: 'job', data: view });
      if (ref && (!before || JSON.stringify(refusalBefore) !== JSON.stringify(ref))) this.emit({ event: 'refusal', data: ref });
      if (r.pool) pools.add(r.pool);
      if (await this.bill(r)) billed = true;
    }
    this.trim();
    for (const p of this.pools()) if (pools.has(p.name)) this.emit({ event: 'pool', data: p });
    const batch = this.batch();
    const batchJson = JSON.stringify(batch);
    if (batchJson !== this.lastBatchJson) {
      this.lastBatchJson = batchJson;
      this.emit({ event: 'batch', data: batch });
    }
    if (billed) this.emit({ event: 'savings', data: this.savings() });
  }

  /** A job a Hangar runner ran, completed this month: into the ledger (once). */
  private async bill(r: JobRecord): Promise<boolean> {
    const month = monthOf(this.now());
    if (month !== this.month) {
      this.month = month;
      await this.loadLedger();
    }
    const run = billedRun(r);
    if (!run || monthOf(run.completedAt) !== this.month || this.ledger.get(r.workflowJobId) === run.ms) return false;
    this.ledger.set(r.workflowJobId, run.ms);
    this.savingsView = null;
    this.savingsVersion++;
    const key = this.d.keys.savingsLedger(this.month);
    await this.d.redis.multi().hset(key, String(r.workflowJobId), String(run.ms)).expire(key, LEDGER_TTL_SECONDS).exec();
    return true;
  }

  private async loadLedger(): Promise<void> {
    const key = this.d.keys.savingsLedger(this.month);
    this.ledger.clear();
    this.savingsView = null;
    this.savingsVersion++;
    for (const [id, ms] of Object.entries(await this.d.redis.hgetall(key))) this.ledger.set(Number(id), Number(ms));
    // Jobs that completed while no control was looking.
    const missing: [string, string][] = [];
    for (const r of this.jobs.records()) {
      const run = billedRun(r);
      if (run && monthOf(run.completedAt) === this.month && !this.ledger.has(r.workflowJobId)) {
        this.ledger.set(r.workflowJobId, run.ms);
        missing.push([String(r.workflowJobId), String(run.ms)]);
      }
    }
    if (missing.length > 0) await this.d.redis.multi().hset(key, Object.fromEntries(missing)).expire(key, LEDGER_TTL_SECONDS).exec();
  }

  /** Holds at most maxJobs records: the oldest final ones go first. */
  private trim(): void {
    if (this.jobs.size <= this.maxJobs) return;
    const old = [...this.jobs.records()].filter((r) => !isLive(r)).sort((a, b) => a.updatedAt - b.updatedAt);
    for (const r of old.slice(0, this.jobs.size - this.maxJobs)) this.jobs.delete(r.workflowJobId);
  }

  private emit(m: StreamMessage): void {
    for (const fn of this.listeners) {
      try {
        fn(m);
      } catch (err) {
        this.d.logger.warn({ err: (err as Error).message }, 'dashboard: a stream listener failed');
      }
    }
  }
}

function parseBeat(raw: string | null): Beat | null {
  if (!raw) return null;
  try {
    const b = JSON.parse(raw) as unknown;
    return b && typeof b === 'object' ? (b as Beat) : null;
  } catch {
    return null;
  }
}
