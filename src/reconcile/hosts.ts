import { planHosts, type HostAction, type HostFacts, type HostJob } from '../domain/reconcile-hosts.js';
import { RunnerBusyError } from '../github/index.js';
import { releaseJobAttempt } from '../jit/claim.js';
import { openJobRecords } from '../jobs/record.js';
import { jobMoves } from '../jobs/transition.js';
import { fenceHolds, hostVms } from './facts.js';
import type { Fence } from './leader.js';
import type { ReconcileLoop } from './loop.js';
import type { LoopDeps } from './loops.js';

/**
 * Hosts gone quiet (domain/reconcile-hosts.ts): marked down in the events stream, and the jobs
 * their runners were minted for but never started go back to the queue. The queue entry itself
 * is BullMQ's: the dead agent's lock on it lapses and a worker of the pool (another host's, or
 * the same agent once restarted) takes it again as a stalled job.
 */
interface Observed {
  hosts: HostFacts[];
  jobs: HostJob[];
  whereOf: Map<number, Where>;
}

/** Where a job's runner is registered: its repository, and its pool's scope. */
interface Where {
  repo: string;
  pool: string | null;
}

const OPEN_WINDOW_MS = 3 * 24 * 3600 * 1000;

export function hostsLoop(d: LoopDeps): ReconcileLoop<Observed, { actions: HostAction[]; whereOf: Map<number, Where> }> {
  const stateKey = d.keys.reconcileState('hosts');
  return {
    name: 'hosts',
    intervalMs: Math.min(10_000, d.config.reconcile.runnersIntervalSeconds * 1000),
    async observe(now) {
      const names = d.config.hosts.map((h) => h.name);
      const [live, was, open] = await Promise.all([hostVms(d.redis, d.keys, names), d.redis.hgetall(stateKey), openJobRecords(d.redis, d.keys, OPEN_WINDOW_MS, now)]);
      const hosts = names.map((name) => ({ name, alive: live.has(name), was: was[name] === 'up' || was[name] === 'down' ? (was[name] as 'up' | 'down') : null }));
      const jobs = open
        .filter((r) => r.host !== null && r.phase !== null)
        .map((r) => ({ workflowJobId: r.workflowJobId, host: r.host!, phase: r.phase!, mintedRunner: r.mintedRunner, mintedAt: r.mintedAt, runAttempt: r.runAttempt }));
      return { hosts, jobs, whereOf: new Map(open.map((r) => [r.workflowJobId, { repo: r.repo, pool: r.pool }])) };
    },
    plan: (o, now) => ({ actions: planHosts(o.hosts, o.jobs, { now, graceMs: d.config.reconcile.runnerGraceSeconds * 1000 }), whereOf: o.whereOf }),
    describe: (p) => p.actions.map((a) => (a.kind === 'return-job' ? `return job ${a.workflowJobId} to the queue (host ${a.host} down, runner ${a.runnerName ?? '(none)'})` : `${a.kind} ${a.host}`)),
    async apply(p, fence) {
      const counts: Record<string, number> = { 'host-down': 0, 'host-up': 0, 'return-job': 0, busy: 0, fenced: 0 };
      for (const a of p.actions) {
        if (!(await fenceHolds(d.redis, fence))) {
          counts.fenced!++;
          break;
        }
        if (a.kind !== 'return-job') {
          await d.redis.hset(stateKey, a.host, a.kind === 'host-down' ? 'down' : 'up');
          await jobMoves(d.redis, d.keys).note(null, { by: 'reconcile', what: a.kind, why: a.host, fence });
          d.logger[a.kind === 'host-down' ? 'warn' : 'info']({ host: a.host }, a.kind === 'host-down' ? 'host down: its heartbeats stopped' : 'host back up');
          counts[a.kind]!++;
          continue;
        }
        if (await returnJob(d, a, p.whereOf.get(a.workflowJobId), fence)) counts['return-job']!++;
        else counts.busy!++;
      }
      return counts;
    },
  };
}

async function returnJob(d: LoopDeps, a: Extract<HostAction, { kind: 'return-job' }>, where: Where | undefined, fence: Fence): Promise<boolean> {
  if (a.runnerName && where) {
    const [owner, name] = where.repo.split('/') as [string, string];
    const pool = d.config.pools.find((p) => p.name === where.pool);
    const scope = pool?.scope === 'org' ? { scope: 'org' as const, owner } : { scope: 'repo' as const, owner, repo: name };
    const runner = (await d.github.listRunners({ ...scope, namePrefix: a.runnerName })).find((r) => r.name === a.runnerName);
    // Busy: the job runs on it (its VM outlived the agent); GitHub ends it, nothing to give back.
    if (runner?.busy) return false;
    try {
      if (runner) await d.github.deleteRunner({ ...scope, runnerId: runner.id });
    } catch (err) {
      if (err instanceof RunnerBusyError) return false;
      throw err;
    }
  }
  const moved = await jobMoves(d.redis, d.keys).move(a.workflowJobId, {
    to: 'lost', by: 'reconcile', why: 'host-down', fence,
    // Its runner is gone (deleted above): spent, so the job is owed a new one.
    ...(a.runnerName ? { fields: { spentRunner: a.runnerName }, remove: ['mintedRunner'] } : {}),
    ...(a.runnerName ? { onlyIf: { field: 'mintedRunner', equals: a.runnerName } } : {}),
  });
  if (!moved.ok) return false;
  await releaseJobAttempt(d.redis, d.keys, a.workflowJobId, a.runAttempt, a.host);
  d.logger.warn({ workflowJobId: a.workflowJobId, host: a.host, runnerName: a.runnerName }, 'job back to the queue: its host went down before its runner started');
  return true;
}
