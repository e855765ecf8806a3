import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createCaps } from '../../src/caps/create-caps.js';
import { keys } from '../../src/queue/keys.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { runOnHostIn } from '../helpers/host-runner.js';
import { testPrefix } from '../helpers/redis.js';
import { processesWith } from '../vm/helpers.js';

/**
 * Admission end to end: Redis, `hangar control`, `hangar sim`, `hangar agent` and QEMU microVMs
 * whose runners run the real job-started hook (busybox wget to the agent's metadata endpoint on
 * the VM's gateway). GitHub (the sim) hands a queued job to any idle runner whose labels fit,
 * oldest first. Each scenario runs with the early defences on (the refused run is cancelled
 * before a runner takes it) and off (the gate alone holds). The agent here is a deploy host (it
 * serves build, large and deploy), so the deploy scenario has a deploy runner to be handed to.
 * Each fleet is in network namespaces of its own with its own Redis, reached through its sockets.
 */
interface SimJob { id: number; runId: number; status: string; conclusion: string | null; output: string; runnerName: string | null; stepExits: number[] }
interface SimRunner { name: string; status: string; jobId: number | null }

const SPARE = 'spare-host-token-0123456789abcdef';

function helpers(fleet: () => Fleet, prefix: () => string) {
  const job = (id: number) => fleet().api<SimJob>('GET', `/_sim/jobs/${id}`);
  const run = (repo: string, jobs: { name: string; labels: string[]; steps: string[] }[], extra: Record<string, unknown> = {}) =>
    fleet().api<{ runId: number; jobs: { id: number }[] }>('POST', '/_sim/runs', { repo, jobs, ...extra }).then((r) => r.jobs.map((j) => j.id));
  const done = async (ids: number[], timeout = 180_000) => {
    await expect.poll(async () => (await Promise.all(ids.map(job))).every((j) => j.status === 'completed'), { timeout, interval: 500 }).toBe(true);
    return Promise.all(ids.map(job));
  };
  const noStep = async (id: number) => {
    const j = await job(id);
    expect(j.stepExits, `job ${id} ran a step:\n${j.output}`).toEqual([]);
    expect(j.output).not.toMatch(/REFUSED-RAN-42/);
  };
  const ranOnce = async (id: number, marker: string) => {
    const j = await job(id);
    expect(j.conclusion, j.output).toBe('success');
    expect(j.output.match(new RegExp(`${marker}-42`, 'g'))).toHaveLength(1);
  };
  const liveRunners = async () => (await fleet().api<SimRunner[]>('GET', '/_sim/runners')).filter((r) => r.status !== 'deleted');
  const refusedAtStart = async (id: number, reason: string) => {
    const j = await job(id);
    expect(j.conclusion).toMatch(/^(failure|cancelled)$/);
    expect(j.output).toContain(`Hangar refused this job at start: ${reason}`);
    await expect.poll(() => fleet().redis().hget(keys(prefix()).job(id), 'startRefusal'), { timeout: 20_000 }).toBe(reason);
    await expect.poll(() => fleet().redis().hget(keys(prefix()).job(id), 'runCancelled'), { timeout: 20_000 }).toMatch(/^(cancelled|already-completed)$/);
  };
  const noLeftovers = async () => {
    await expect.poll(() => processesWith(fleet().stateDir), { timeout: 20_000 }).toEqual([]);
    const caps = await createCaps({ mode: 'auto', sliceName: fleet().slice, cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 });
    await expect.poll(() => caps.listVmCgroups(), { timeout: 20_000 }).toEqual([]);
    await expect.poll(() => readdirSync(join(fleet().stateDir, 'vms')), { timeout: 20_000 }).toEqual([]);
    await expect.poll(() => fleet().taps(), { timeout: 20_000 }).toEqual([]);
    expect(readdirSync('/sys/class/net').filter((n) => n.startsWith('hg-'))).toEqual([]);
    await expect.poll(liveRunners, { timeout: 30_000 }).toEqual([]);
  };
  return { job, run, done, noStep, ranOnce, liveRunners, refusedAtStart, noLeftovers };
}

const REFUSED_STEP = 'echo REFUSED-RAN-$((40 + 2))';

for (const defences of [true, false]) {
  describe(`admission end to end, early defences ${defences ? 'on' : 'off'}`, () => {
    let fleet: Fleet;
    let prefix: string;
    const h = helpers(() => fleet, () => prefix);

    beforeAll(async () => {
      prefix = testPrefix();
      fleet = await startFleet({
        prefix, slots: 2, timeoutMinutes: 2, role: 'deploy', cancelRefusedRuns: defences,
        // A stopped control fails a starting job closed after 8 s, not 15 (the test below waits it out).
        gateTimeoutSeconds: 8,
        extraHosts: [{ name: 'spare', role: 'build', pools: ['build'], token: SPARE }],
      });
      for (const [owner, name, forkOf] of [['acme', 'app'], ['acme', 'site'], ['mallory', 'app', 'acme/app']] as const) {
        await fleet.api('POST', '/_sim/repos', { owner, name, visibility: 'private', ...(forkOf ? { forkOf } : {}) });
      }
      await fleet.startAgent();
    }, 300_000);

    afterAll(async () => {
      // The fleet's Redis is its own: closing the fleet removes it, keys and all.
      await fleet?.close();
    }, 120_000);

    test('a feature-branch deploy job refused at intake never runs on the deploy runner; the allowed deploy runs once', async () => {
      const [wip] = await h.run('acme/site', [{ name: 'deploy', labels: ['self-hosted', 'deploy'], steps: [REFUSED_STEP] }], { headBranch: 'wip' });
      // Its webhook is in before the allowed one is made (so it is the older queued job). With the
      // early defences its run may be cancelled (state completed) before a poll sees it queued.
      await expect.poll(() => fleet.redis().hget(keys(prefix).job(wip!), 'state'), { timeout: 20_000 }).toMatch(/^(queued|completed)$/);
      const [main] = await h.run('acme/site', [{ name: 'deploy', labels: ['self-hosted', 'deploy'], steps: ['echo DEPLOYED-$((40 + 2))'] }], { headBranch: 'main' });
      await h.done([wip!, main!]);
      await h.noStep(wip!);
      await h.ranOnce(main!, 'DEPLOYED');
      if (defences) expect(await h.job(wip!)).toMatchObject({ conclusion: 'cancelled', runnerName: null });
      else await h.refusedAtStart(wip!, 'deploy-not-allowed');
      await h.noLeftovers();
    }, 300_000);

    test('a fork pull request queued first is never run by the runner minted for the job after it', async () => {
      const [fork] = await h.run('acme/app', [{ name: 'pwn', labels: ['self-hosted', 'build'], steps: [REFUSED_STEP] }], {
        event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app',
      });
      await expect.poll(() => fleet.redis().hget(keys(prefix).job(fork!), 'state'), { timeout: 20_000 }).toBeTruthy();
      const [push] = await h.run('acme/app', [{ name: 'build', labels: ['self-hosted', 'build'], steps: ['echo BUILT-$((40 + 2))'] }]);
      await h.done([fork!, push!]);
      await h.noStep(fork!);
      await h.ranOnce(push!, 'BUILT');
      if (defences) expect(await h.job(fork!)).toMatchObject({ conclusion: 'cancelled', runnerName: null });
      else await h.refusedAtStart(fork!, 'fork-pr');
      await h.noLeftovers();
    }, 300_000);

    test('two hosts minting for one queued job: one live runner, the job runs once', async () => {
      const [id] = await h.run('acme/app', [{ name: 'contested', labels: ['self-hosted', 'build'], steps: ['echo CONTESTED-$((40 + 2))'] }]);
      await expect.poll(() => fleet.redis().hget(keys(prefix).job(id!), 'state'), { timeout: 20_000 }).toBe('queued');
      // A second host asks for the same job while the agent does (or just did), from the build host's namespace.
      const spare = await runOnHostIn(fleet, SPARE, 'build', id!);
      const [j] = await h.done([id!]);
      await h.ranOnce(id!, 'CONTESTED');
      const runners = (await fleet.api<SimRunner[]>('GET', '/_sim/runners')).filter((r) => r.name.endsWith(`-${id}-1`));
      expect(runners, JSON.stringify(runners)).toHaveLength(1);
      // Exactly one of the two got the runner: the spare host (201; the agent's entry then fails,
      // never "completed", saying so), or the agent (spare: 409).
      if (spare.status === 201) await expect.poll(() => fleet.logs().includes('no runner for this job: already-minted'), { timeout: 30_000 }).toBe(true);
      else expect(spare).toMatchObject({ status: 409, body: { error: 'already-minted' } });
      expect(j!.runnerName).toBe(runners[0]!.name);
      await h.noLeftovers();
    }, 300_000);

    if (!defences) {
      // 12 + 12 (it was 20 + 20): every kind of job still comes 6 times, interleaved, with the
      // webhooks reordered and duplicated; the run costs half the VMs (TCG boots are the time).
      test('a mixed batch: 12 allowed and 12 refused jobs, webhooks reordered and duplicated, 2 slots', async () => {
        await fleet.api('PUT', '/_sim/knobs', { reorderWindowMs: 300, duplicateRate: 0.3, seed: 8 });
        try {
          const refused: number[] = [];
          const allowed: number[] = [];
          for (let i = 0; i < 6; i++) {
            refused.push(...(await h.run('acme/site', [{ name: `wip deploy ${i}`, labels: ['self-hosted', 'deploy'], steps: [REFUSED_STEP] }], { headBranch: `wip-${i}` })));
            refused.push(...(await h.run('acme/app', [{ name: `fork ${i}`, labels: ['self-hosted', 'build'], steps: [REFUSED_STEP] }], { event: 'pull_request', headBranch: `p-${i}`, headRepository: 'mallory/app' })));
            allowed.push(...(await h.run('acme/app', [{ name: `build ${i}`, labels: ['self-hosted', 'build'], steps: [`echo ALLOWED-${i}-$((40 + 2))`] }])));
            allowed.push(...(await h.run('acme/site', [{ name: `deploy ${i}`, labels: ['self-hosted', 'deploy'], steps: [`echo ALLOWED-${i}-$((40 + 2))`] }], { headBranch: 'main' })));
          }
          await h.done(allowed, 600_000);
          // A refused job is handed to a runner only while an allowed one is minted after it; one
          // never handed stays queued (GitHub would time it out), never run.
          for (const id of refused) {
            await h.noStep(id);
            const j = await h.job(id);
            if (j.status !== 'completed') {
              expect(j).toMatchObject({ status: 'queued', runnerName: null });
              await fleet.api('POST', `/_sim/jobs/${id}/cancel`);
            }
          }
          for (const id of allowed) {
            const j = await h.job(id);
            expect(j.conclusion, `allowed job ${id}: ${j.output}`).toBe('success');
            expect(j.output.match(/ALLOWED-\d+-42/g), `job ${id}`).toHaveLength(1);
          }
          await h.noLeftovers();
        } finally {
          await fleet.api('PUT', '/_sim/knobs', { reorderWindowMs: 0, duplicateRate: 0 });
        }
      }, 700_000);

      /** The agent handed the job's VM its JIT config (its runner is coming online). */
      const configHanded = (id: number) => new RegExp(`"workflowJobId":${id},[^\\n]*"msg":"jit config handed to the guest"`).test(fleet.logs());

      test('the agent killed at job start: the job fails closed with the reason in its log; nothing is left behind', async () => {
        // GitHub hands the runner its job 6 s after it comes online: the agent dies in between.
        await fleet.api('PUT', '/_sim/knobs', { assignAfterMs: 6000 });
        try {
          const [id] = await h.run('acme/app', [{ name: 'orphaned', labels: ['self-hosted', 'build'], steps: [REFUSED_STEP] }]);
          await expect.poll(() => configHanded(id!), { timeout: 60_000, interval: 100 }).toBe(true);
          fleet.agent!.kill('SIGKILL');
          await fleet.agent;
          const [j] = await h.done([id!], 120_000);
          expect(j!.conclusion).toBe('failure');
          expect(j!.output).toContain('Hangar refused this job at start: agent-unreachable');
          await h.noStep(id!);
        } finally {
          await fleet.api('PUT', '/_sim/knobs', { assignAfterMs: 0 });
          await fleet.startAgent();
        }
        expect(fleet.logs()).toContain('removed leftovers of an earlier run');
        await h.noLeftovers();
      }, 300_000);

      test('the control down at job start: the job fails closed with the reason in its log; nothing is left behind', async () => {
        await fleet.api('PUT', '/_sim/knobs', { assignAfterMs: 6000 });
        const [id] = await h.run('acme/app', [{ name: 'alone', labels: ['self-hosted', 'build'], steps: [REFUSED_STEP] }]);
        // The guest has its runner's config (so the mint is done); its job starts 6 s later.
        await expect.poll(() => configHanded(id!), { timeout: 60_000, interval: 100 }).toBe(true);
        fleet.control!.kill('SIGKILL');
        await fleet.control;
        try {
          const [j] = await h.done([id!], 120_000);
          expect(j!.conclusion).toBe('failure');
          expect(j!.output).toContain('Hangar refused this job at start: control-unreachable');
          await h.noStep(id!);
        } finally {
          await fleet.startControl();
          await fleet.api('PUT', '/_sim/knobs', { assignAfterMs: 0 });
        }
        await h.noLeftovers();
      }, 300_000);
    }
  });
}
