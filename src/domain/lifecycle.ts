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
 */
export function queueEffect(state: JobState, decision: Decision): QueueEffect {
  if (decision.kind !== 'accept') return 'none';
  if (state === 'queued') return 'enqueue';
  if (state === 'completed') return 'cancel';
  return 'none';
}
