import type { JobPhase } from './job-phase.js';

/**
 * Which of this installation's runners to delete: orphans (no live VM holds them) and idle ones
 * (a live VM whose runner has taken no job past the idle limit). Only runners that carry this
 * installation's label reach this plan (mint-policy.ts `isOurRunner`); anything else is never
 * looked at. Pure; tested from tables (test/unit/reconcile-runners.test.ts).
 *
 * garm's rule, kept here: one pass marks what it saw, and a runner is only deleted when what the
 * pass saw says it cannot be doing anything — busy runners are never deleted (GitHub would answer
 * 422 anyway), and a young runner may still be waiting for its VM to boot.
 */
export interface RunnerFacts {
  runnerId: number;
  name: string;
  /** Where it is registered, as the loop keys scopes (`repo:owner/name` or `org:owner`). */
  scope: string;
  busy: boolean;
  status: string;
  /** From its name: the host that minted it and the job attempt it was minted for. */
  host: string;
  workflowJobId: number;
  /** The record of that job, if Redis still has it. */
  job: { phase: JobPhase | null; mintedRunner: string | null; mintedAt: number | null } | null;
  /** When its host claimed the job attempt (jit/claim.ts), if the claim is this host's. */
  claimedAt: number | null;
  /** Its host's heartbeat lists a VM for that job. */
  vmLive: boolean;
}

export interface RunnerLimits {
  now: number;
  /** A runner younger than this may be registering or booting: left alone. */
  graceMs: number;
  /** A live VM whose runner took no job this long is idle. */
  idleMs: number;
}

export type RunnerAction = {
  kind: 'delete-orphan' | 'delete-idle';
  runnerId: number;
  name: string;
  scope: string;
  workflowJobId: number;
  why: string;
};

/** Phases in which the runner minted for the job has not started one. */
const WAITING: readonly (JobPhase | null)[] = ['minted', 'vm-up'];
/** Phases in which nothing is owed a runner any more (not `ran`: that VM is ending on its own). */
const OVER: readonly (JobPhase | null)[] = ['cancelled', 'refused', 'failed'];

export function planRunners(facts: readonly RunnerFacts[], l: RunnerLimits): RunnerAction[] {
  const out: RunnerAction[] = [];
  for (const f of facts) {
    const d = decideRunner(f, l);
    if (d) out.push({ kind: d.kind, runnerId: f.runnerId, name: f.name, scope: f.scope, workflowJobId: f.workflowJobId, why: d.why });
  }
  return out;
}

export function decideRunner(f: RunnerFacts, l: RunnerLimits): { kind: RunnerAction['kind']; why: string } | null {
  if (f.busy) return null;
  // The runner the record names is this one: its mint time dates it. Otherwise the claim does
  // (a replaced runner's own job was minted again since).
  const current = f.job?.mintedRunner === f.name;
  const since = current ? (f.job?.mintedAt ?? f.claimedAt) : f.claimedAt;
  const age = since === null ? Infinity : l.now - since;
  if (f.vmLive) {
    // A VM holds it. Idle only while the job it was minted for waits on it (the runner started
    // nothing yet); once started, the VM's own time cap governs.
    if (current && WAITING.includes(f.job?.phase ?? null) && age > l.idleMs) return { kind: 'delete-idle', why: `no job taken in ${Math.round(age / 1000)} s` };
    // The job it was minted for is over (cancelled on GitHub, refused, given up) and it runs
    // nothing: no job is owed this runner any more (a queued job it could take has a queue entry
    // of its own), so its VM need not wait out the idle limit. Taking a job between this look and
    // the delete makes it busy: GitHub refuses the delete (422) and the runner runs.
    if (current && OVER.includes(f.job?.phase ?? null)) return { kind: 'delete-idle', why: `its job is ${f.job?.phase}, it runs nothing` };
    return null;
  }
  if (age < l.graceMs) return null;
  if (!f.job) return { kind: 'delete-orphan', why: 'no record of its job, no live VM' };
  return { kind: 'delete-orphan', why: `no live VM holds it (job ${f.job.phase ?? 'unknown'}${current ? '' : ', replaced'})` };
}
