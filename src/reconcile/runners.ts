import type { Redis } from 'ioredis';
import { isOurRunner, parseRunnerName } from '../domain/mint-policy.js';
import { planRunners, type RunnerAction, type RunnerFacts } from '../domain/reconcile-runners.js';
import { isJobPhase } from '../domain/job-phase.js';
import { RunnerBusyError, type RunnerScope } from '../github/index.js';
import { jobMoves } from '../jobs/transition.js';
import type { Keys } from '../queue/keys.js';
import { fenceHolds, hostVms, recentRepos } from './facts.js';
import type { Fence } from './leader.js';
import type { ReconcileLoop } from './loop.js';
import type { LoopDeps } from './loops.js';

/**
 * Orphaned runners and idle VMs: every runner this installation named, in every scope Hangar
 * mints in, against what is alive (hosts' heartbeats) and what the job records say. Runners of
 * other installations, and runners Hangar did not name, are filtered out before the plan sees
 * anything. Deleting an idle VM's runner ends the VM too: its runner loses its registration and
 * exits (GitHub: "Runner registration has been deleted from the server"), the VM ends with no job
 * run, the agent reports `not-run`, and the job it was minted for gets a new try if still queued.
 */
interface Observed {
  facts: RunnerFacts[];
  scopes: Map<string, RunnerScope>;
}

/** How far back job records name the repositories runners may be registered in. */
const REPO_WINDOW_MS = 3 * 24 * 3600 * 1000;

export function runnersLoop(d: LoopDeps): ReconcileLoop<Observed, { actions: RunnerAction[]; scopes: Map<string, RunnerScope> }> {
  const r = d.config.reconcile;
  return {
    name: 'runners',
    intervalMs: r.runnersIntervalSeconds * 1000,
    observe: (now) => observe(d, now),
    plan: (o, now) => ({ actions: planRunners(o.facts, { now, graceMs: r.runnerGraceSeconds * 1000, idleMs: r.idleVmSeconds * 1000 }), scopes: o.scopes }),
    describe: (p) => p.actions.map((a) => `${a.kind} ${a.name} (${a.scope}, job ${a.workflowJobId}): ${a.why}`),
    apply: (p, fence) => apply(d, p.actions, p.scopes, fence),
  };
}

/** The scopes runners are minted in: each org pool's owners; each repository pool's repositories. */
export function runnerScopes(d: LoopDeps, repos: Iterable<string>): Map<string, RunnerScope> {
  const out = new Map<string, RunnerScope>();
  const exact = d.config.policy.repositories.filter((p) => !p.endsWith('/*'));
  const owners = new Set(d.config.policy.repositories.map((p) => p.split('/')[0]!));
  for (const pool of d.config.pools) {
    if (pool.scope === 'org') {
      for (const owner of owners) out.set(`org:${owner}`, { scope: 'org', owner });
      continue;
    }
    for (const full of new Set([...exact, ...repos])) {
      const [owner, repo] = full.split('/') as [string, string];
      out.set(`repo:${full}`, { scope: 'repo', owner, repo });
    }
  }
  return out;
}

async function observe(d: LoopDeps, now: number): Promise<Observed> {
  const scopes = runnerScopes(d, await recentRepos(d.redis, d.keys, REPO_WINDOW_MS, now));
  const vms = await hostVms(d.redis, d.keys, d.config.hosts.map((h) => h.name));
  const found: { scope: string; runner: { id: number; name: string; busy: boolean; status: string } }[] = [];
  for (const [key, scope] of scopes) {
    for (const runner of await d.github.listRunners({ ...scope, namePrefix: 'hangar-' })) {
      if (isOurRunner(runner, d.installationId)) found.push({ scope: key, runner });
    }
  }
  const facts = await Promise.all(found.map(({ scope, runner }) => factsOf(d.redis, d.keys, scope, runner, vms)));
  return { facts: facts.filter((f): f is RunnerFacts => f !== null), scopes };
}

async function factsOf(
  redis: Redis, k: Keys, scope: string, runner: { id: number; name: string; busy: boolean; status: string }, vms: Map<string, Set<number>>,
): Promise<RunnerFacts | null> {
  const p = parseRunnerName(runner.name);
  if (!p) return null;
  const [[phase, mintedRunner, mintedAt, state], claim] = await Promise.all([
    redis.hmget(k.job(p.workflowJobId), 'phase', 'mintedRunner', 'mintedAt', 'state'),
    redis.get(k.mintClaim(p.workflowJobId, p.runAttempt)),
  ]);
  const [holder, since] = (claim ?? '').split('|');
  return {
    runnerId: runner.id, name: runner.name, scope, busy: runner.busy, status: runner.status, host: p.host, workflowJobId: p.workflowJobId,
    job: state ? { phase: isJobPhase(phase) ? phase : null, mintedRunner: mintedRunner ?? null, mintedAt: mintedAt ? Number(mintedAt) : null } : null,
    claimedAt: holder === p.host && since ? Number(since) : null,
    vmLive: vms.get(p.host)?.has(p.workflowJobId) ?? false,
  };
}

async function apply(d: LoopDeps, actions: RunnerAction[], scopes: Map<string, RunnerScope>, fence: Fence): Promise<Record<string, number>> {
  const counts: Record<string, number> = { 'delete-orphan': 0, 'delete-idle': 0, busy: 0, fenced: 0 };
  const jobs = jobMoves(d.redis, d.keys);
  for (const a of actions) {
    // GitHub's side cannot check the fence: ask Redis before each delete.
    if (!(await fenceHolds(d.redis, fence))) {
      counts.fenced!++;
      break;
    }
    try {
      await d.github.deleteRunner({ ...scopes.get(a.scope)!, runnerId: a.runnerId });
    } catch (err) {
      if (err instanceof RunnerBusyError) {
        counts.busy!++;
        continue;
      }
      throw err;
    }
    counts[a.kind]!++;
    const what = a.kind === 'delete-idle' ? 'idle-vm-runner-deleted' : 'orphan-runner-deleted';
    await jobs.note(a.workflowJobId, { by: 'reconcile', what, why: `${a.name}: ${a.why}`, fence });
    d.logger.info({ runnerName: a.name, scope: a.scope, workflowJobId: a.workflowJobId, why: a.why }, a.kind === 'delete-idle' ? 'idle VM: its runner deleted' : 'orphaned runner deleted');
  }
  return counts;
}
