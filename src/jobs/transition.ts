import type { Redis } from 'ioredis';
import { movesInto, OPERATOR_RETRY_FROM, OWED_REOPEN_FROM, type JobPhase } from '../domain/job-phase.js';
import type { Keys } from '../queue/keys.js';
import type { Fence } from '../reconcile/leader.js';
import { EVENTS_MAXLEN } from './events.js';

/**
 * The one way a job's phase moves: a Lua script that reads the phase, refuses a move the table
 * (domain/job-phase.ts) does not allow — leaving the record exactly as it was — and otherwise
 * writes the phase, the caller's fields and one `move` event, all at once. Who moved it (`by`)
 * and why travel with every move.
 */
export type TransitionResult =
  | { ok: true; from: JobPhase }
  | { ok: false; reason: 'illegal'; from: JobPhase | null }
  | { ok: false; reason: 'no-record' }
  /** `onlyIf` did not hold: someone else moved the job since (e.g. a newer runner was minted). */
  | { ok: false; reason: 'stale'; from: JobPhase | null }
  /** The move was made for a reconcile leader that no longer leads (reconcile/leader.ts). */
  | { ok: false; reason: 'fenced' };

export interface Move {
  to: JobPhase;
  /** Who: `intake`, `control`, `gate`, `vetter`, `sweep`, `host:<name>`, `reconcile`. */
  by: string;
  /** Why, in a word or two (a refusal's reason, a VM's end). */
  why: string;
  /** Record fields written with the move (never a secret). */
  fields?: Record<string, string | number>;
  /** Fields to remove with the move (e.g. a spent runner's name). */
  remove?: readonly string[];
  /** Only if the record's field equals this value (compare and set), e.g. the runner that was minted. */
  onlyIf?: { field: string; equals: string };
  /** Only while this reconcile leader still leads (its fencing token); else refused as `fenced`. */
  fence?: Fence;
  /** The operator's retry: to `queued` from a phase in OPERATOR_RETRY_FROM (domain/job-phase.ts), and from nowhere else. */
  operatorRetry?: boolean;
  /** Reconcile's reopen of a job owed a runner: to `queued` from OWED_REOPEN_FROM, and from nowhere else. */
  owedReopen?: boolean;
}

const NOTE = `
local jobId, now, by, what, why = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if KEYS[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[6] then return 0 end
if #ARGV > 6 and KEYS[1] ~= '' and redis.call('EXISTS', KEYS[1]) == 1 then
  local fields = {}
  for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[1], unpack(fields))
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '${EVENTS_MAXLEN}', '*', 'workflowJobId', jobId, 'at', now,
  'type', 'note', 'by', by, 'what', what, 'why', why)
return 1
`;

const SCRIPT = `
local to, allowed, now, by, why, jobId = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local nset, ndel, condField, condValue = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
if KEYS[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[11] then return {'fenced', ''} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {'no-record', ''} end
local from = redis.call('HGET', KEYS[1], 'phase') or ''
if not string.find(',' .. allowed .. ',', ',' .. from .. ',', 1, true) then return {'illegal', from} end
if condField ~= '' and redis.call('HGET', KEYS[1], condField) ~= condValue then return {'stale', from} end
local fields = {'phase', to, 'phaseAt', now, 'phaseBy', by, 'phaseWhy', why, 'at:' .. to, now}
for i = 12, 11 + 2 * nset do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if ndel > 0 then
  local del = {}
  for i = 12 + 2 * nset, 11 + 2 * nset + ndel do del[#del + 1] = ARGV[i] end
  redis.call('HDEL', KEYS[1], unpack(del))
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', '${EVENTS_MAXLEN}', '*', 'workflowJobId', jobId, 'at', now,
  'type', 'move', 'by', by, 'from', from, 'to', to, 'why', why)
return {'ok', from}
`;

export class JobTransitions {
  private readonly run: (...args: (string | number)[]) => Promise<[string, string]>;
  private readonly runNote: (...args: (string | number)[]) => Promise<number>;

  constructor(
    private readonly redis: Redis,
    private readonly k: Keys,
  ) {
    redis.defineCommand('hangarJobMove', { numberOfKeys: 3, lua: SCRIPT });
    redis.defineCommand('hangarJobNote', { numberOfKeys: 3, lua: NOTE });
    const commands = redis as unknown as Record<string, (...a: (string | number)[]) => Promise<never>>;
    this.run = commands.hangarJobMove!.bind(redis);
    this.runNote = commands.hangarJobNote!.bind(redis);
  }

  /** Moves a job's phase, or refuses and changes nothing. */
  async move(workflowJobId: number, m: Move, now = Date.now()): Promise<TransitionResult> {
    const set = Object.entries(m.fields ?? {}).flatMap(([f, v]) => [f, String(v)]);
    const del = m.remove ?? [];
    const [status, from] = await this.run(
      this.k.job(workflowJobId), this.k.events, m.fence?.key ?? '',
      m.to, fromPhases(m).join(','), now, m.by, m.why, workflowJobId,
      set.length / 2, del.length, m.onlyIf?.field ?? '', m.onlyIf?.equals ?? '', m.fence?.value ?? '',
      ...set, ...del,
    );
    if (status === 'ok') return { ok: true, from: from as JobPhase };
    if (status === 'fenced') return { ok: false, reason: 'fenced' };
    if (status === 'no-record') return { ok: false, reason: 'no-record' };
    const was = from === '' ? null : (from as JobPhase);
    return status === 'stale' ? { ok: false, reason: 'stale', from: was } : { ok: false, reason: 'illegal', from: was };
  }

  /**
   * Moves the job, or, when the move is refused, keeps a `note` saying so (the record stays as it
   * was). For moves that follow from something done already (a run cancelled, a VM ended), where
   * the caller has nothing to undo.
   */
  async moveOrNote(workflowJobId: number, m: Move, now = Date.now()): Promise<TransitionResult> {
    const r = await this.move(workflowJobId, m, now);
    if (!r.ok && r.reason !== 'no-record' && r.reason !== 'fenced') await this.note(workflowJobId, { by: m.by, what: `refused-move:${m.to}`, why: `${m.why}: ${describeRefusal(r, m.to)}` }, now);
    return r;
  }

  /**
   * Writes fields of a job that move no phase (a run cancelled, the details of a VM's end) and
   * one `note` event, at once. Without a record only the event is written.
   */
  async note(workflowJobId: number | null, n: { by: string; what: string; why?: string; fields?: Record<string, string | number>; fence?: Fence }, now = Date.now()): Promise<boolean> {
    const set = Object.entries(n.fields ?? {}).flatMap(([f, v]) => [f, String(v)]);
    const key = workflowJobId === null ? '' : this.k.job(workflowJobId);
    const r = await this.runNote(key, this.k.events, n.fence?.key ?? '', workflowJobId ?? '', now, n.by, n.what, n.why ?? '', n.fence?.value ?? '', ...set);
    return r === 1;
  }
}

/** One line for a log or an error: why a move was refused. */
export function describeRefusal(r: Exclude<TransitionResult, { ok: true }>, to: JobPhase): string {
  if (r.reason === 'no-record') return `no record of the job (to ${to})`;
  if (r.reason === 'fenced') return `this replica no longer leads reconcile (to ${to})`;
  if (r.reason === 'stale') return `the job moved on since (it is ${r.from ?? '(none)'}; to ${to} refused)`;
  return `cannot move from ${r.from ?? '(none)'} to ${to}`;
}

const byConnection = new WeakMap<Redis, JobTransitions>();

/** The transitions on one connection (its scripts are defined once per connection). */
export function jobMoves(redis: Redis, k: Keys): JobTransitions {
  let t = byConnection.get(redis);
  if (!t) byConnection.set(redis, (t = new JobTransitions(redis, k)));
  return t;
}

/** The phases a move may start from: the table's, or one of the two moves outside it. */
function fromPhases(m: Move): readonly JobPhase[] {
  if (m.to === 'queued' && m.operatorRetry) return OPERATOR_RETRY_FROM;
  if (m.to === 'queued' && m.owedReopen) return OWED_REOPEN_FROM;
  return movesInto(m.to);
}
