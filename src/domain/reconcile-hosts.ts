import type { JobPhase } from './job-phase.js';

/**
 * Host liveness: a host whose heartbeats stopped (its key expired: jit/report-route.ts) is down,
 * and the jobs whose runner it minted but never started go back to the queue: the runner is
 * deleted (unless busy: then the job runs, and GitHub ends it), the job moves to `lost`, and the
 * job attempt's claim is released so another host may mint for it. Nothing runs twice: the old
 * runner is gone before anyone else can claim. A started job is left to GitHub (its runner is
 * busy, or the job fails when the runner stops answering). Pure; tested from tables.
 */
export interface HostFacts {
  name: string;
  alive: boolean;
  /** What the last pass saw (null: never seen, e.g. a new leader's first pass). */
  was: 'up' | 'down' | null;
}

export interface HostJob {
  workflowJobId: number;
  host: string;
  phase: JobPhase;
  mintedRunner: string | null;
  /** When its runner was minted (ms): a host may not have sent its first heartbeat yet. */
  mintedAt: number | null;
  runAttempt: number;
}

export type HostAction =
  | { kind: 'host-down' | 'host-up'; host: string }
  | { kind: 'return-job'; host: string; workflowJobId: number; runnerName: string | null; runAttempt: number };

const RETURNABLE: readonly JobPhase[] = ['minted', 'vm-up'];

/**
 * `graceMs`: a job minted this recently stays with its host even while the host is silent (a beat
 * missed, an agent restarting: it reports its own leftover VMs when it is back).
 */
export function planHosts(hosts: readonly HostFacts[], jobs: readonly HostJob[], l: { now: number; graceMs: number } = { now: 0, graceMs: 0 }): HostAction[] {
  const out: HostAction[] = [];
  const down = new Set<string>();
  for (const h of hosts) {
    if (!h.alive) down.add(h.name);
    // First sight of a host that is down counts as a change: a leader that just took over must still say so.
    if (h.alive && h.was === 'down') out.push({ kind: 'host-up', host: h.name });
    if (!h.alive && h.was !== 'down') out.push({ kind: 'host-down', host: h.name });
  }
  for (const j of jobs) {
    const young = j.mintedAt !== null && l.now - j.mintedAt < l.graceMs;
    if (down.has(j.host) && RETURNABLE.includes(j.phase) && !young) {
      out.push({ kind: 'return-job', host: j.host, workflowJobId: j.workflowJobId, runnerName: j.mintedRunner, runAttempt: j.runAttempt });
    }
  }
  return out;
}
