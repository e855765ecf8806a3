import { isJobPhase } from '../domain/job-phase.js';
import { planStuckJobs, WAITING_PHASES, type HostView, type StuckCandidate, type StuckFlag } from '../domain/stuck-jobs.js';
import { readJobRecord } from '../jobs/record.js';
import { jobMoves } from '../jobs/transition.js';
import type { LoopDeps } from './loops.js';
import type { ReconcileLoop } from './loop.js';

/**
 * Stuck jobs: every `reconcile.runnersIntervalSeconds`, the accepted jobs GitHub still holds
 * queued past `reconcile.stuckAfterSeconds` with no VM up for them are flagged with why
 * (domain/stuck-jobs.ts): `stuck`/`stuckWhy` on the record and one `note` in the events stream,
 * both in one fenced write, and only when the reason changed since the last flag. Nothing is
 * moved: a flag is for the operator and the dashboard.
 *
 * Which records: the job index (by last GitHub event, which for a job still queued is when it
 * was queued) from `GITHUB_QUEUE_LIMIT_MS` back to the threshold; GitHub cancels a job queued
 * longer than that, so nothing older can still be waiting. The few fields that tell a waiting job
 * are read first in one pipeline, whole records only for those. Hosts: config.hosts with their
 * pools, and each one's heartbeat (`keys.host`; none: down).
 *
 * A job that moves on between observe and apply (its VM came up) still gets the flag: the note
 * has no compare-and-set, and the flag says when (`stuck`), so the record's later phase tells.
 */
export interface StuckJobsObservation {
  jobs: StuckCandidate[];
  hosts: HostView[];
}

/** GitHub cancels a job that waited 24 hours for a self-hosted runner; a margin for clock skew. */
const GITHUB_QUEUE_LIMIT_MS = 25 * 3600 * 1000;
const SCAN_LIMIT = 20_000;

interface Beat {
  slots: number;
  busy: number;
  draining: boolean;
}

const isBeat = (v: unknown): v is Beat =>
  typeof v === 'object' && v !== null && typeof (v as Beat).slots === 'number' && typeof (v as Beat).busy === 'number';

export function stuckJobsLoop(d: LoopDeps): ReconcileLoop<StuckJobsObservation, StuckFlag[]> {
  const log = d.logger.child({ loop: 'stuck-jobs' });
  const stuckAfterMs = d.config.reconcile.stuckAfterSeconds * 1000;
  const moves = jobMoves(d.redis, d.keys);

  async function hosts(): Promise<HostView[]> {
    const raw = d.config.hosts.length ? await d.redis.mget(...d.config.hosts.map((h) => d.keys.host(h.name))) : [];
    return d.config.hosts.map((h, i) => {
      let beat: HostView['beat'] = null;
      try {
        const v: unknown = raw[i] ? JSON.parse(raw[i]!) : null;
        if (isBeat(v)) beat = { slots: v.slots, busy: v.busy, draining: v.draining === true };
      } catch {
        log.warn({ host: h.name }, 'stuck jobs: a heartbeat that is not JSON; read as none');
      }
      return { name: h.name, pools: h.pools, beat };
    });
  }

  async function waiting(now: number): Promise<StuckCandidate[]> {
    const ids = await d.redis.zrevrangebyscore(d.keys.jobIndex, now - stuckAfterMs, now - GITHUB_QUEUE_LIMIT_MS, 'LIMIT', 0, SCAN_LIMIT);
    if (ids.length === 0) return [];
    const pipe = d.redis.pipeline();
    for (const id of ids) pipe.hmget(d.keys.job(Number(id)), 'state', 'phase');
    const heads = (await pipe.exec()) ?? [];
    const picked = ids.filter((_, i) => {
      const [state, phase] = (heads[i]?.[1] as (string | null)[] | undefined) ?? [];
      return state === 'queued' && isJobPhase(phase) && WAITING_PHASES.includes(phase);
    });
    const out: StuckCandidate[] = [];
    for (const id of picked) {
      const r = await readJobRecord(d.redis, d.keys, Number(id));
      if (!r) continue;
      out.push({ workflowJobId: r.workflowJobId, state: r.state, phase: r.phase, pool: r.pool, createdAt: r.createdAt, startRefusal: r.startRefusal, stuckWhy: r.stuckWhy });
    }
    return out;
  }

  return {
    name: 'stuck-jobs',
    intervalMs: d.config.reconcile.runnersIntervalSeconds * 1000,
    async observe(now) {
      const [jobs, hs] = await Promise.all([waiting(now), hosts()]);
      return { jobs, hosts: hs };
    },
    plan: (o, now) => planStuckJobs({ jobs: o.jobs, hosts: o.hosts, pools: d.config.pools.map((p) => p.name), now, stuckAfterMs }),
    describe: (plan) =>
      plan.map((f) => `flag job ${f.workflowJobId} stuck: ${f.why}${f.was ? ` (was ${f.was})` : ''}, waiting ${Math.round(f.waitedMs / 1000)} s`),
    async apply(plan, fence) {
      const counts: Record<string, number> = { flagged: 0, fenced: 0 };
      for (const f of plan) {
        const now = Date.now();
        const ok = await moves.note(f.workflowJobId, {
          by: 'reconcile', what: 'stuck', why: f.why, fields: { stuck: now, stuckWhy: f.why }, fence,
        }, now);
        if (!ok) {
          counts.fenced! += 1;
          continue;
        }
        counts.flagged! += 1;
        log.warn({ workflowJobId: f.workflowJobId, why: f.why, was: f.was, waitedSeconds: Math.round(f.waitedMs / 1000) }, 'job stuck');
      }
      return counts;
    },
  };
}
