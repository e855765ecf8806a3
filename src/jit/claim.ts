import type { Redis } from 'ioredis';
import type { Keys } from '../queue/keys.js';

/**
 * One runner per job attempt, across hosts. Runner names carry the host
 * (`hangar-<host>-<job>-<attempt>`), so two hosts asking for one job would each get a name of
 * their own and GitHub would happily register both. The claim is what keeps it to one: the first
 * host to ask holds it; the same host asking again (a replay after a crash) still holds it.
 * Another host may take it over only from a holder it names (compare and set), which the caller
 * does once the holder's runner cannot take the job any more (see jit/mint.ts).
 *
 * The value is `<host>|<ms since epoch of the claim>`.
 */
const CLAIM = `
local cur = redis.call('GET', KEYS[1])
local holder = cur and string.match(cur, '^([^|]*)')
if not cur or holder == ARGV[1] or (ARGV[3] ~= '' and holder == ARGV[3]) then
  local at = (holder == ARGV[1]) and string.match(cur, '|(%d+)$') or ARGV[4]
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. at, 'EX', ARGV[2])
  if not cur then return 'claimed' end
  if holder == ARGV[1] then return 'mine' end
  return 'taken-over'
end
return 'held:' .. cur
`;

export type ClaimResult = { kind: 'claimed' | 'mine' | 'taken-over' } | { kind: 'held'; by: string; since: number };

/** A job attempt is over within days; its claim need not outlive that. */
const CLAIM_TTL_SECONDS = 7 * 24 * 3600;

export async function claimJobAttempt(
  redis: Redis,
  k: Keys,
  workflowJobId: number,
  runAttempt: number,
  host: string,
  takeOverFrom = '',
  now = Date.now(),
): Promise<ClaimResult> {
  const r = (await redis.eval(CLAIM, 1, k.mintClaim(workflowJobId, runAttempt), host, CLAIM_TTL_SECONDS, takeOverFrom, now)) as string;
  if (!r.startsWith('held:')) return { kind: r as 'claimed' | 'mine' | 'taken-over' };
  const [by = '', since = '0'] = r.slice(5).split('|');
  return { kind: 'held', by, since: Number(since) };
}

/** Gives a job attempt up (its runner is gone): only the holder can, and then any host may claim it. */
export async function releaseJobAttempt(redis: Redis, k: Keys, workflowJobId: number, runAttempt: number, host: string): Promise<boolean> {
  const released = await redis.eval(
    "local cur = redis.call('GET', KEYS[1]) if cur and string.match(cur, '^([^|]*)') == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    1, k.mintClaim(workflowJobId, runAttempt), host,
  );
  return released === 1;
}
