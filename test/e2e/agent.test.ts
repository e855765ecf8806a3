import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaps } from '../../src/caps/create-caps.js';
import { readJobRecord } from '../../src/intake/job-store.js';
import { keys, queueName } from '../../src/queue/keys.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';
import { processesWith, sleep } from '../vm/helpers.js';

/**
 * End to end, all real but GitHub: Redis, `hangar control`, `hangar sim`, `hangar agent` and
 * QEMU microVMs under TCG. Runs as root (taps, cgroups).
 */
let fleet: Fleet;
let prefix: string;
let redis: Redis;
const cmdlines = new Set<string>();
let sampling: NodeJS.Timeout | undefined;

interface SimJob { id: number; status: string; conclusion: string | null; output: string; runnerName: string | null; exitCode: number | null }
const job = (id: number) => fleet.api<SimJob>('GET', `/_sim/jobs/${id}`);
const run = (repo: string, jobs: { name: string; labels: string[]; steps: string[] }[], extra: Record<string, unknown> = {}) =>
  fleet.api<{ runId: number; jobs: { id: number }[] }>('POST', '/_sim/runs', { repo, jobs, ...extra }).then((r) => r.jobs.map((j) => j.id));

async function finished(ids: number[], timeout = 180_000): Promise<SimJob[]> {
  await expect.poll(async () => (await Promise.all(ids.map(job))).every((j) => j.status === 'completed'), { timeout, interval: 500 }).toBe(true);
  return Promise.all(ids.map(job));
}

/** Nothing left on the host: no qemu of ours, no VM cgroup, no VM state (overlays, JIT files), no tap. */
async function expectNoLeftovers(): Promise<void> {
  await expect.poll(() => processesWith(fleet.stateDir), { timeout: 15_000 }).toEqual([]);
  const caps = await createCaps({ mode: 'auto', cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 });
  await expect.poll(() => caps.listVmCgroups(), { timeout: 15_000 }).toEqual([]);
  const vmsDir = join(fleet.stateDir, 'vms');
  expect(readdirSync(vmsDir)).toEqual([]);
  const links = readdirSync('/sys/class/net').filter((n) => n.startsWith('hg-'));
  expect(links).toEqual([]);
}

beforeAll(async () => {
  prefix = testPrefix();
  redis = new Redis(redisUrl());
  fleet = await startFleet({ redisUrl: redisUrl(), prefix, slots: 2, timeoutMinutes: 0.5 });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
  await fleet.api('POST', '/_sim/repos', { owner: 'mallory', name: 'app', visibility: 'private', forkOf: 'acme/app' });
  await fleet.startAgent();
  // Every command line seen during the run, to prove no secret was ever on one.
  sampling = setInterval(() => {
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        cmdlines.add(readFileSync(`/proc/${name}/cmdline`, 'utf8'));
      } catch {
        // gone
      }
    }
  }, 100);
}, 300_000);

afterAll(async () => {
  clearInterval(sampling);
  await fleet?.close();
  await dropPrefix(redisUrl(), prefix);
  redis?.disconnect();
}, 120_000);

describe('agent end to end', () => {
  test('6 jobs over two pools on 2 slots: each runs in its own VM, its runner registers once and vanishes, nothing remains', async () => {
    const ids = await run('acme/app', [
      ...[0, 1, 2].map((n) => ({ name: `build ${n}`, labels: ['self-hosted', 'build'], steps: ['uname -r', `echo HANGAR-MARKER-${n}-$((40 + 2))`] })),
      ...[3, 4, 5].map((n) => ({ name: `large ${n}`, labels: ['self-hosted', 'linux', 'large'], steps: ['uname -r', `echo HANGAR-MARKER-${n}-$((40 + 2))`] })),
    ]);
    const jobs = await finished(ids);
    const guestKernel = fleet.image.manifest.kernel.release;
    jobs.forEach((j, n) => {
      expect(j.conclusion, `job ${n}: ${j.output}`).toBe('success');
      expect(j.output).toContain(`HANGAR-MARKER-${n}-42`);
      // The step ran under the guest's kernel, not this host's.
      expect(j.output).toContain(guestKernel);
    });
    const runners = await fleet.api<{ name: string; status: string; jobId: number | null }[]>('GET', '/_sim/runners');
    const ours = runners.filter((r) => ids.includes(r.jobId ?? -1));
    expect(ours).toHaveLength(6);
    expect(new Set(ours.map((r) => r.name)).size).toBe(6);
    expect(ours.every((r) => r.status === 'deleted')).toBe(true);
    for (const r of ours) expect(r.name).toMatch(/^hangar-minipc-\d+-1$/);
    // The pools were really both used, and the agent recorded what happened.
    const recs = await Promise.all(ids.map((id) => readJobRecord(redis, keys(prefix), id)));
    expect(recs.map((r) => r?.pool).sort()).toEqual(['build', 'build', 'build', 'large', 'large', 'large']);
    for (const id of ids) expect(await redis.hget(keys(prefix).job(id), 'agentOutcome')).toBe('ran');
    await expectNoLeftovers();
  }, 300_000);
});
