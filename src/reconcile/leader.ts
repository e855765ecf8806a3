import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * One reconcile leader at a time across control replicas: a Redis lock that lapses with its
 * holder (`SET NX PX`), renewed at a third of its life, and a **fencing token** that grows with
 * every new leadership (`INCR`). The lock's value is `<token>|<replica>`; every write the
 * reconciler makes carries the value it leads with and is refused once another replica leads
 * (`FENCED` Lua below, and transition.ts's `fence`), so a leader paused past its lease (a GC
 * stall, a frozen VM) cannot act on a plan made while it led.
 */
export interface Fence {
  key: string;
  /** The lock's value while this replica leads: `<token>|<replica>`. */
  value: string;
  token: number;
}

const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  if string.sub(cur, -string.len(ARGV[1]) - 1) == '|' .. ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return cur
  end
  return false
end
local token = redis.call('INCR', KEYS[2])
local value = token .. '|' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return value
`;

const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/** Runs `body` only while `fence` still holds (a Lua prelude for scripts that write for the leader). */
export const FENCE_CHECK_LUA = (keyIndex: number, argIndex: number) =>
  `if redis.call('GET', KEYS[${keyIndex}]) ~= ARGV[${argIndex}] then return 'fenced' end`;

export class LeaderLock {
  readonly replica: string;
  private current: Fence | null = null;

  constructor(
    private readonly redis: Redis,
    private readonly lockKey: string,
    private readonly tokenKey: string,
    private readonly ttlMs: number,
    replica?: string,
  ) {
    this.replica = replica ?? randomUUID().slice(0, 8);
  }

  /** Takes the lock if free, or renews it if this replica holds it. Null: another replica leads. */
  async acquire(): Promise<Fence | null> {
    const v = (await this.redis.eval(ACQUIRE, 2, this.lockKey, this.tokenKey, this.replica, this.ttlMs)) as string | null;
    if (!v) {
      this.current = null;
      return null;
    }
    this.current = { key: this.lockKey, value: v, token: Number(v.split('|')[0]) };
    return this.current;
  }

  /** The fence this replica last led with, if it still believes it leads. */
  get fence(): Fence | null {
    return this.current;
  }


  /** Hands the lock back at once (a clean stop), so the next replica need not wait for its TTL. */
  async release(): Promise<void> {
    const f = this.current;
    this.current = null;
    if (f) await this.redis.eval(RELEASE, 1, this.lockKey, f.value);
  }

  /** Who leads, as Redis says: `{ token, replica }`, or null. */
  async leader(): Promise<{ token: number; replica: string } | null> {
    const v = await this.redis.get(this.lockKey);
    if (!v) return null;
    const [token, replica] = v.split('|');
    return { token: Number(token), replica: replica ?? '' };
  }
}
