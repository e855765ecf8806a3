import type { Redis } from 'ioredis';
import type { Keys } from '../queue/keys.js';
import type { Fence } from './leader.js';

/** Reads several loops share: hosts' heartbeats, the repositories jobs came from, the fence. */

/** Per host with a live heartbeat: the workflow job ids its VMs serve. A host missing here is silent. */
export async function hostVms(redis: Redis, k: Keys, hosts: readonly string[]): Promise<Map<string, Set<number>>> {
  const out = new Map<string, Set<number>>();
  if (hosts.length === 0) return out;
  const beats = await redis.mget(hosts.map((h) => k.host(h)));
  hosts.forEach((h, i) => {
    const beat = beats[i];
    if (!beat) return;
    const vms = (JSON.parse(beat) as { vms?: { workflowJobId: number }[] }).vms ?? [];
    out.set(h, new Set(vms.map((v) => v.workflowJobId)));
  });
  return out;
}

/** What never changes of each job GitHub moved in the last `withinMs` (its record's `job` field), read in pipelined batches. */
async function recentJobs(redis: Redis, k: Keys, withinMs: number, now: number): Promise<{ repo?: string; runId?: number; runAttempt?: number }[]> {
  const ids = await redis.zrangebyscore(k.jobIndex, now - withinMs, '+inf');
  const out: { repo?: string; runId?: number; runAttempt?: number }[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const pipe = redis.pipeline();
    for (const id of ids.slice(i, i + 500)) pipe.hget(k.job(Number(id)), 'job');
    for (const [err, v] of (await pipe.exec()) ?? []) if (!err && typeof v === 'string') out.push(JSON.parse(v) as never);
  }
  return out;
}

/** The repositories of jobs GitHub moved in the last `withinMs`: where Hangar may have minted. */
export async function recentRepos(redis: Redis, k: Keys, withinMs: number, now: number): Promise<Set<string>> {
  return new Set((await recentJobs(redis, k, withinMs, now)).flatMap((j) => (j.repo ? [j.repo] : [])));
}

/** `<run id>:<attempt>` of every run attempt Hangar has a job record of, among jobs GitHub moved in the last `withinMs`. */
export async function recentRunAttempts(redis: Redis, k: Keys, withinMs: number, now: number): Promise<Set<string>> {
  return new Set((await recentJobs(redis, k, withinMs, now)).flatMap((j) => (j.runId !== undefined ? [`${j.runId}:${j.runAttempt ?? 1}`] : [])));
}

/** Does the leader that made a plan still lead? (For writes Redis cannot fence: GitHub calls.) */
export async function fenceHolds(redis: Redis, fence: Fence): Promise<boolean> {
  return (await redis.get(fence.key)) === fence.value;
}

