import type { JobAction } from './workflow-job.js';
import type { Decision } from './policy.js';

/**
 * A workflow job's state as Hangar records it. GitHub's events can arrive late, twice or out
 * of order, so the state only moves forward: a `queued` arriving after `completed` changes
 * nothing. The rank is what the store compares atomically.
 */
export type JobState = JobAction;

export const STATE_RANK: Readonly<Record<JobState, number>> = {
  queued: 1,
  in_progress: 2,
  completed: 3,
};

/** What the queue must do when a job's record moves to `state`. */
export type QueueEffect = 'enqueue' | 'cancel' | 'none';

/**
 * Only an accepted job touches the queue: it is enqueued when first seen queued, and a
 * still-waiting entry is removed when the job completes before a runner took it (cancelled).
 * A job first seen in progress or completed was never ours to start.
 *
 * Not removed: a job that completed on a Hangar runner. GitHub hands a job to any idle runner
 * whose labels fit, so that runner may have been minted for another job, and this job's entry
 * is what mints the runner that other job is owed (mint-policy's runnerOwed). On its own runner,
 * its entry was taken already (the mint came from it); a replay of it is refused at mint time.
 */
export function queueEffect(state: JobState, decision: Decision, runnerName: string | null = null): QueueEffect {
  if (decision.kind !== 'accept') return 'none';
  if (state === 'queued') return 'enqueue';
  if (state === 'completed' && !isHangarRunner(runnerName)) return 'cancel';
  return 'none';
}

/** Runner names Hangar mints: `hangar-<host>-<workflow job id>-<attempt>`. */
export const isHangarRunner = (name: string | null): boolean => name !== null && /^hangar-.+-\d+-\d+$/.test(name);
