import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaps } from '../../src/caps/create-caps.js';
import { eventsOfJob } from '../../src/jobs/events.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { Queue } from 'bullmq';
import { keys, queueName, queueJobId } from '../../src/queue/keys.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { dumpPrefix, testPrefix } from '../helpers/redis.js';
import { processesWith, sleep } from '../vm/helpers.js';

/**
 * End to end, all real but GitHub: Redis, `hangar control`, `hangar sim`, `hangar agent` and
 * QEMU microVMs under TCG. Runs as root (taps, cgroups), in the fleet's own network namespaces:
 * this test reaches Redis, the sim and the control through the fleet's unix sockets.
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
  const caps = await createCaps({ mode: 'auto', sliceName: fleet.slice, cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 });
  await expect.poll(() => caps.listVmCgroups(), { timeout: 15_000 }).toEqual([]);
  const vmsDir = join(fleet.stateDir, 'vms');
  expect(readdirSync(vmsDir)).toEqual([]);
  // The taps are made in the fleet's build host; none ever in the machine's own namespace.
  expect(await fleet.taps()).toEqual([]);
  const links = readdirSync('/sys/class/net').filter((n) => n.startsWith('hg-'));
  expect(links).toEqual([]);
}

beforeAll(async () => {
  prefix = testPrefix();
  fleet = await startFleet({ prefix, slots: 2, timeoutMinutes: 0.5 });
  redis = fleet.redis();
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
  // The fleet's Redis is its own: closing the fleet removes it, keys and all.
  await fleet?.close();
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
    // The runner reports before its VM has powered off; the agent reports the VM's end after.
    for (const id of ids) await expect.poll(async () => (await readJobRecord(redis, keys(prefix), id))?.phase, { timeout: 20_000 }).toBe('ran');
    // Every move of each job's life, once, in order, with who made it; GitHub's states once each.
    for (const id of ids) {
      const events = await eventsOfJob(redis, keys(prefix), id);
      const moves = events.filter((e) => e.type !== 'github' && e.type !== 'note').map((e) => `${e.type === 'decision' ? 'intake' : e.fields.from}>${e.fields.to} by ${e.by}`);
      expect(moves, `job ${id}`).toEqual(['intake>queued by intake', 'queued>minted by host:minipc', 'minted>vm-up by host:minipc', 'vm-up>started by host:minipc', 'started>ran by host:minipc']);
      expect(events.filter((e) => e.type === 'github').map((e) => e.fields.state), `job ${id}`).toEqual(['queued', 'in_progress', 'completed']);
      const rec = await readJobRecord(redis, keys(prefix), id);
      expect(rec?.vm).toMatchObject({ outcome: 'ran' });
      expect(rec?.tries).toBe(1);
    }
    // The agent's heartbeat (through the control) says what it is and what it has.
    const beat = JSON.parse((await redis.get(keys(prefix).host('minipc'))) ?? '{}');
    expect(beat).toMatchObject({ host: 'minipc', role: 'build', pools: ['build', 'large', 'locked'], slots: 2, draining: false });
    expect(beat.usage.memoryMaxBytes).toBe(2048 * 1024 * 1024);
    expect(Date.now() - beat.at).toBeLessThan(15_000);
    await expectNoLeftovers();
  }, 300_000);

  test('a fork bomb and a memory hog stay inside their VMs and cgroups; the VM beside finishes; the time cap kills and reports', async () => {
    const caps = await createCaps({ mode: 'auto', sliceName: fleet.slice, cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 });
    const [bomb] = await run('acme/app', [{ name: 'fork bomb', labels: ['self-hosted', 'build'], steps: ['f() { f | f & }; f; sleep 600'] }]);
    await expect.poll(async () => (await job(bomb!)).status, { timeout: 60_000 }).toBe('in_progress');
    const [beside] = await run('acme/app', [{ name: 'beside', labels: ['self-hosted', 'large'], steps: ['echo BESIDE-OK'] }]);
    let peak = 0;
    let limit = 0;
    const watch = setInterval(() => {
      void caps.usage(`wj-${bomb}-1`).then((u) => {
        if (!u) return;
        peak = Math.max(peak, u.memoryBytes);
        limit = u.memoryMaxBytes ?? 0;
      });
    }, 200);
    let sleeper: number | undefined;
    try {
      const [b] = await finished([beside!], 120_000);
      expect(b!.conclusion).toBe('success');
      expect(b!.output).toContain('BESIDE-OK');
      // In the slot beside the bomb now: a job that never ends by itself. The 30 s time cap kills
      // its VM and the job is reported failed (its cap runs out while the bomb's does: one wait, not two).
      [sleeper] = await run('acme/app', [{ name: 'sleeper', labels: ['self-hosted', 'large'], steps: ['sleep 600'] }]);
      // How the bomb ends is up to its guest: its kernel may refuse forks until the time cap kills
      // the VM, or run out of memory and kill the step, the runner or init first. Either way the
      // VM ends, the agent records it, and the job never succeeds.
      await expect.poll(() => redis.hget(keys(prefix).job(bomb!), 'vmOutcome'), { timeout: 90_000, interval: 500 }).toMatch(/^(ran|timeout)$/);
      expect((await job(bomb!)).conclusion).not.toBe('success');
    } finally {
      clearInterval(watch);
    }
    expect(limit).toBe((256 + 256) * 1024 * 1024);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(limit);

    // A guest that allocates far past its RAM: its own kernel stops it; the job fails, the host does not notice.
    const [hog] = await run('acme/app', [
      { name: 'memory hog', labels: ['self-hosted', 'build'], steps: ['x=$(head -c 300m /dev/zero | tr "\\0" a); echo HOG-SURVIVED ${#x}'] },
    ]);
    // The hog's VM ends (its guest kernel kills or panics; or the time cap) and the agent records it.
    await expect.poll(() => redis.hget(keys(prefix).job(hog!), 'vmOutcome'), { timeout: 90_000 }).not.toBeNull();
    const h = await job(hog!);
    expect(h.conclusion).not.toBe('success');
    // Its step's own text is in the log ("##[sim] step 1: …"); what it would print is a count.
    expect(h.output ?? '').not.toMatch(/^HOG-SURVIVED \d/m);
    const q = new Queue(queueName('large'), { connection: { path: fleet.sockets.redis }, prefix });
    try {
      await expect.poll(async () => (await q.getJob(queueJobId(sleeper!)))?.getState(), { timeout: 90_000, interval: 500 }).toBe('failed');
      expect((await q.getJob(queueJobId(sleeper!)))?.failedReason).toMatch(/time cap/);
    } finally {
      await q.close();
    }
    expect(await readJobRecord(redis, keys(prefix), sleeper!)).toMatchObject({ phase: 'timed-out', vm: { outcome: 'timeout' } });
    // The runner never reported: GitHub still sees the job running until it notices the runner is gone.
    expect((await job(sleeper!)).conclusion).toBeNull();
    await expectNoLeftovers();
  }, 400_000);

  test('a run from a fork is refused before any runner or VM: after intake, before a mint beside it, or at its own mint', async () => {
    const before = (await fleet.api<unknown[]>('GET', '/_sim/runners')).length;
    const [fork] = await run('acme/app', [{ name: 'from a fork', labels: ['self-hosted', 'build'], steps: ['echo PWNED'] }], {
      event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app',
    });
    // Refused for what it is, its run is cancelled: no runner minted for another job can take it.
    await expect.poll(async () => (await job(fork!)).conclusion, { timeout: 60_000 }).toBe('cancelled');
    // Whichever saw it first: the vetter (after the webhook was answered), the sweep before another
    // job's mint, or its own mint. Each writes the record after GitHub answered its cancel, so the
    // record may trail the job's conclusion by a moment: wait for it.
    const rec = () => redis.hgetall(keys(prefix).job(fork!));
    await expect.poll(async () => { const r = await rec(); return [r.vetRefusal, r.mintRefusal, r.runCancelledFor]; }, { timeout: 20_000 }).toContain('fork-pr');
    await expect.poll(async () => (await rec()).runCancelled, { timeout: 20_000 }).toMatch(/^(cancelled|already-completed)$/);
    expect((await fleet.api<unknown[]>('GET', '/_sim/runners')).length).toBe(before);
    expect((await job(fork!)).runnerName).toBeNull();
    expect((await job(fork!)).output).not.toContain('PWNED');
  }, 120_000);

  test('kill -9 of the agent mid-job, then a restart: leftovers removed, the job reported, never on two VMs', async () => {
    const [id] = await run('acme/app', [{ name: 'long', labels: ['self-hosted', 'build'], steps: ['sleep 20', 'echo LONG-DONE'] }]);
    await expect.poll(async () => (await job(id!)).status, { timeout: 60_000 }).toBe('in_progress');
    // Mid-job: past the gate (killed before it, the job fails closed: test/e2e/admission.test.ts).
    await expect.poll(() => fleet.logs().includes(`"startedJob":${id},"msg":"gate: job allowed at start"`), { timeout: 30_000 }).toBe(true);
    const vmDir = join(fleet.stateDir, 'vms', `wj-${id}-1`);
    let most = 0;
    const count = setInterval(() => void processesWith(vmDir).then((p) => (most = Math.max(most, p.length))), 100);
    try {
      expect(await processesWith(vmDir)).toHaveLength(1);
      fleet.agent!.kill('SIGKILL');
      await fleet.agent;
      // The agent is gone; its VM is not (QEMU is not its child any more).
      expect(await processesWith(vmDir)).toHaveLength(1);
      await fleet.startAgent();
      // At start the agent removed its leftovers before taking any job.
      expect(await processesWith(vmDir)).toEqual([]);
      expect(fleet.logs()).toContain('removed leftovers of an earlier run');
      // The stalled job comes back; GitHub says it is no longer queued (its runner took it): refused, not rerun.
      const mintRefused = async () => (await eventsOfJob(redis, keys(prefix), id!)).some((e) => e.fields.what === 'mint-refused' && e.fields.why === 'job-not-queued');
      await expect.poll(mintRefused, { timeout: 90_000, interval: 500 }).toBe(true);
      // The restarted agent told the control its VM was lost: its runner is gone, the job says why.
      expect(await readJobRecord(redis, keys(prefix), id!)).toMatchObject({ phase: 'lost', phaseWhy: 'agent-restarted' });
      expect(most).toBe(1);
    } finally {
      clearInterval(count);
    }
    await expectNoLeftovers();
  }, 240_000);

  test('SIGTERM drains: the agent takes no new job, lets the running one finish, then exits 0', async () => {
    const [id] = await run('acme/app', [{ name: 'drain', labels: ['self-hosted', 'build'], steps: ['sleep 6', 'echo DRAINED-OK'] }]);
    await expect.poll(async () => (await job(id!)).status, { timeout: 60_000 }).toBe('in_progress');
    const agent = fleet.agent!;
    agent.kill('SIGTERM');
    const [late] = await run('acme/app', [{ name: 'after the drain', labels: ['self-hosted', 'build'], steps: ['true'] }]);
    const exit = await agent;
    expect(exit.exitCode).toBe(0);
    expect((await job(id!)).conclusion).toBe('success');
    expect((await job(id!)).output).toContain('DRAINED-OK');
    expect((await job(late!)).status).toBe('queued');
    await expectNoLeftovers();
    // A new agent picks up what was left queued.
    await fleet.startAgent();
    const [l] = await finished([late!], 120_000);
    expect(l!.conclusion).toBe('success');
  }, 240_000);

  test('SIGTERM past agent.drainTimeoutSeconds: the running VM is stopped, its job reported lost (agent-drain-timeout), nothing left behind', async () => {
    // The same agent with a 3 s drain bound (the default is 600 s).
    fleet.agent!.kill('SIGTERM');
    expect((await fleet.agent!).exitCode).toBe(0);
    const original = readFileSync(fleet.configFile, 'utf8');
    expect(original).toMatch(/^ {2}stateDir: /m);
    writeFileSync(fleet.configFile, original.replace(/^ {2}stateDir: /m, '  drainTimeoutSeconds: 3\n  stateDir: '));
    try {
      await fleet.startAgent();
      const [id] = await run('acme/app', [{ name: 'outlasts the drain', labels: ['self-hosted', 'build'], steps: ['sleep 25', 'echo NEVER-PRINTED'] }]);
      await expect.poll(async () => (await job(id!)).status, { timeout: 60_000 }).toBe('in_progress');
      const agent = fleet.agent!;
      const stoppedAt = Date.now();
      agent.kill('SIGTERM');
      const exit = await agent;
      const tookMs = Date.now() - stoppedAt;
      expect(exit.exitCode).toBe(0);
      // Past the bound, not at the job's end (25 s) nor at the VM's time cap (30 s).
      expect(tookMs).toBeGreaterThanOrEqual(3_000);
      expect(tookMs).toBeLessThan(20_000);
      expect(fleet.logs()).toMatch(/drain bound passed: stopping the VMs of the jobs still running/);
      await expect.poll(async () => (await readJobRecord(redis, keys(prefix), id!))?.vm?.reason, { timeout: 10_000 }).toBe('agent-drain-timeout');
      expect((await job(id!)).output).not.toContain('NEVER-PRINTED');
      await expectNoLeftovers();
      // The job is not finished at GitHub (its runner vanished): cancelled here so it takes no later slot.
      await fleet.api('POST', `/_sim/jobs/${id}/cancel`);
    } finally {
      writeFileSync(fleet.configFile, original);
    }
    await fleet.startAgent();
  }, 240_000);

  test('no JIT config or token in a Redis dump, the logs, any command line seen, or the control\'s API answers', async () => {
    const secrets = await fleet.api<{ installationTokens: string[]; runnerTokens: string[]; jitConfigs: string[] }>('GET', '/_sim/secrets');
    expect(secrets.jitConfigs.length).toBeGreaterThanOrEqual(8);
    const webhookSecret = readFileSync(join(fleet.dir, 'webhook-secret'), 'utf8').trim();
    const all = [...secrets.installationTokens, ...secrets.runnerTokens, ...secrets.jitConfigs, fleet.hostToken, webhookSecret];
    const dump = await dumpPrefix(fleet.sockets.redis, prefix);
    const logs = fleet.logs();
    const cmd = [...cmdlines].join('\n');
    const api = [
      (await fleet.controlApi('GET', '/metrics')).body,
      (await fleet.controlApi('GET', '/healthz')).body,
      (await fleet.controlApi('POST', '/api/v1/jit')).body,
    ].join('\n');
    expect(dump.length).toBeGreaterThan(1000);
    expect(logs).toContain('runner minted');
    // The sampler saw the VMs' own command lines (where a careless driver would put a secret).
    expect([...cmdlines].filter((c) => c.includes('qemu-system') && c.includes('fw_cfg')).length).toBeGreaterThanOrEqual(5);
    for (const s of all) {
      expect(dump.includes(s), 'redis').toBe(false);
      expect(logs.includes(s), 'logs').toBe(false);
      expect(cmd.includes(s), 'command lines').toBe(false);
      expect(api.includes(s), 'api').toBe(false);
    }
  });
});
