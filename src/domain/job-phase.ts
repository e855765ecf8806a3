/**
 * Hangar's own phases of a job: what Hangar has done for the job's queue entry (its runner and
 * its VM), beside what GitHub says of the job (`state`, from its webhooks). A runner is not bound
 * to the job it was minted for (GitHub hands it the oldest queued job its labels fit), so a
 * phase follows the entry's runner: "started" means the runner minted for this job started *a*
 * job, which the gate allowed; which one is on the record (`startedJob`).
 *
 * The table is data: every phase, and the phases it may move to. Everything that moves a job
 * (intake, mint, gate, the agent's reports, reconcile) goes through one atomic transition that
 * checks this table (jobs/transition.ts), so an illegal move is refused and changes nothing.
 * Pure; tested from tables.
 */
export const JOB_PHASES = [
  /** Accepted at intake, waiting in its pool's queue for a host. */
  'queued',
  /** Refused: by policy at intake, or by the control when a host asked for its runner. Final. */
  'refused',
  /** A host got a just-in-time runner for it. */
  'minted',
  /** Its VM is up, with its runner's config to fetch. */
  'vm-up',
  /** The gate allowed the job its runner was handed. */
  'started',
  /** The gate refused the job its runner was handed: that runner is spent, this job still owed one. */
  'refused-at-start',
  /** Its VM ended after its runner ran a job. Final. */
  'ran',
  /** Its VM ended and its runner never started a job: retried, a bounded number of times. */
  'not-run',
  /** Its VM passed its time cap and was killed. Final. */
  'timed-out',
  /** Its VM vanished (QEMU died, the host lost it). */
  'lost',
  /** Hangar gave up on it, with a reason (retries spent, a fatal error). Final. */
  'failed',
  /** GitHub finished it (cancelled, or another runner ran it) before Hangar had to. Final. */
  'cancelled',
] as const;

export type JobPhase = (typeof JOB_PHASES)[number];

/** The VM ended, its runner never having started a job, or it vanished before it did: worth another try. */
const RETRY: readonly JobPhase[] = ['minted', 'failed', 'refused', 'cancelled'];

export const MOVES: Readonly<Record<JobPhase, readonly JobPhase[]>> = {
  queued: ['minted', 'refused', 'cancelled', 'failed'],
  refused: [],
  minted: [
    // A replay: the agent died after minting and its job's entry came back; the holder replaces its idle runner.
    'minted',
    'vm-up',
    // Only when the agent's "VM up" report was lost: the gate's answer comes from the control itself.
    'started',
    'refused-at-start',
    'not-run', 'timed-out', 'lost', 'failed', 'refused', 'cancelled',
  ],
  'vm-up': [
    'started', 'refused-at-start', 'not-run', 'timed-out', 'lost', 'failed', 'cancelled',
    // The agent died with the VM up; the entry came back (stalled) and asks for its runner again.
    'minted',
  ],
  started: ['ran', 'timed-out', 'lost', 'failed'],
  // Its runner is spent; the job is still owed one, so a new runner may be minted for it.
  'refused-at-start': RETRY,
  'not-run': RETRY,
  lost: RETRY,
  ran: [],
  'timed-out': [],
  failed: [],
  cancelled: [],
};

export const FINAL_PHASES: readonly JobPhase[] = JOB_PHASES.filter((p) => MOVES[p].length === 0);

/** Where a record starts (no phase yet): the intake's decision. */
export const FIRST_PHASES: readonly JobPhase[] = ['queued', 'refused'];

export const isJobPhase = (s: unknown): s is JobPhase => typeof s === 'string' && (JOB_PHASES as readonly string[]).includes(s);

/**
 * The operator's retry (dashboard): a job Hangar failed (it gave up, the VM ran past its cap, was
 * lost or ran no job) while GitHub still holds it queued goes back to `queued` for a new try.
 * Not in MOVES: nothing but an operator's say-so reopens a final phase.
 */
export const OPERATOR_RETRY_FROM: readonly JobPhase[] = ['failed', 'timed-out', 'lost', 'not-run'];

/**
 * Reconcile's reopen of a job owed a runner (domain/owed-jobs.ts): `ran` back to `queued` when
 * the runner minted for the job ran another one and GitHub still holds this one queued. Not in
 * MOVES either: `ran` stays final for everything else (the agent's reports, replays).
 */
export const OWED_REOPEN_FROM: readonly JobPhase[] = ['ran'];

/** May a job in `from` (null: no record yet) move to `to`? */
export function canMove(from: JobPhase | null, to: JobPhase): boolean {
  return from === null ? FIRST_PHASES.includes(to) : MOVES[from].includes(to);
}

/** The phases a job may be in to move to `to` (what the atomic transition checks). */
export function movesInto(to: JobPhase): JobPhase[] {
  return JOB_PHASES.filter((from) => MOVES[from].includes(to));
}

/**
 * How a VM's end maps to a phase. A VM whose gate was never asked ran no job, whatever its exit
 * code: that is never "ran".
 */
export type VmEnd = 'ran' | 'not-run' | 'timeout' | 'lost' | 'refused-at-start';

export function phaseForVmEnd(end: VmEnd): JobPhase {
  return end === 'timeout' ? 'timed-out' : end;
}
