import type { Redis } from 'ioredis';
import type { Keys } from '../queue/keys.js';

/**
 * The events stream: every decision and every move of a job, with who made it and why, in the
 * order they happened. Bounded (MAXLEN ~). Reconcile and the dashboard read it; nothing reads
 * a job's state from it (the record is the state), so a trimmed entry loses history, not truth.
 *
 * Entry fields: `workflowJobId`, `at` (ms), `type`, `by`, and per type:
 * - `decision`: the intake's policy decision (`decision` accept|reject, `reason`, `pool`, `repo`, `headBranch`, `to`);
 * - `move`: a phase transition (`from`, `to`, `why`);
 * - `github`: GitHub's state of the job moved (`state`, `runnerName`), from its webhooks;
 * - `note`: something worth keeping that moves no phase (`what`, `why`): a refused mint of a job
 *   Hangar has no record of, a run cancelled, an illegal move that was refused (transition.ts `note`).
 */
export const EVENTS_MAXLEN = 10_000;

export type EventType = 'decision' | 'move' | 'github' | 'note';

export interface JobEvent {
  id: string;
  workflowJobId: number | null;
  at: number;
  type: EventType;
  by: string;
  fields: Record<string, string>;
}

/** Events after `after` (a stream id; `-` from the start), oldest first. */
export async function readEvents(redis: Redis, k: Keys, opts: { after?: string; count?: number } = {}): Promise<JobEvent[]> {
  const start = opts.after ? `(${opts.after}` : '-';
  const raw = await redis.xrange(k.events, start, '+', 'COUNT', opts.count ?? 1000);
  return raw.map(([id, flat]) => toEvent(id, flat));
}

/** Every event of one job still in the stream, oldest first. */
export async function eventsOfJob(redis: Redis, k: Keys, workflowJobId: number): Promise<JobEvent[]> {
  const out: JobEvent[] = [];
  let after: string | undefined;
  for (;;) {
    const batch = await readEvents(redis, k, { ...(after ? { after } : {}), count: 1000 });
    out.push(...batch.filter((e) => e.workflowJobId === workflowJobId));
    if (batch.length < 1000) return out;
    after = batch[batch.length - 1]!.id;
  }
}

export function toEvent(id: string, flat: string[]): JobEvent {
  const fields: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
  const { workflowJobId, at, type, by, ...rest } = fields;
  return { id, workflowJobId: workflowJobId ? Number(workflowJobId) : null, at: Number(at), type: (type ?? 'note') as EventType, by: by ?? '', fields: rest };
}
