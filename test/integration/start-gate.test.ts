import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { runOnHost } from '../helpers/host-runner.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The gate at job start against a real control, Redis and the sim, with the real job-started
 * hook run by sim runners on this host (no VM: test/e2e has those). GitHub hands a queued job
 * to any idle runner whose labels fit, oldest first; every scenario makes it hand a runner the
 * wrong job. Each runs twice: early defences on (the refused run is cancelled before a runner
 * takes it) and off (the gate alone holds).
 */
const BUILD = 'build-host-token-0123456789abcdef';
const BUILD2 = 'second-build-host-token-0123456789';
const DEPLOY = 'deploy-host-token-0123456789abcdef';
const hosts = [
  { name: 'minipc', role: 'build' as const, pools: ['build'], token: BUILD },
  { name: 'spare', role: 'build' as const, pools: ['build'], token: BUILD2 },
  { name: 'cloud', role: 'deploy' as const, pools: ['deploy'], token: DEPLOY },
];

let sim: Sim;
let redis: Redis;
const closers: (() => Promise<void>)[] = [];
const prefixes: string[] = [];

beforeAll(() => {
  redis = new Redis(redisUrl());
});

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  for (const p of prefixes) await dropPrefix(redisUrl(), p);
  redis.disconnect();
});

/** A GitHub of its own (the sim) and a control for each setting, with acme/app, acme/site and a fork. */
async function installation(cancelRefusedRuns: boolean): Promise<{ c: TestControl; prefix: string; sim: Sim }> {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const s = await createSim({ appId: 9, installationId: 3 });
  closers.push(() => s.close());
  const apiUrl = await s.listen(0, '127.0.0.1');
  const c = await startTestControl({ redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: s.appPrivateKeyPem, hosts, cancelRefusedRuns });
  closers.push(() => c.close());
  s.setWebhook({ url: `${c.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  s.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  s.createRepo({ owner: 'acme', name: 'site', visibility: 'private' });
  s.createRepo({ owner: 'mallory', name: 'app', visibility: 'private', forkOf: 'acme/app' });
  return { c, prefix, sim: s };
}

async function recorded(prefix: string, ids: number[]): Promise<void> {
  await sim.idle();
  await expect.poll(async () => (await Promise.all(ids.map((id) => readJobRecord(redis, keys(prefix), id)))).every((r) => r !== null)).toBe(true);
}

/** The job never ran a step: no step marker in its log, no step exit recorded. */
function expectNoStep(id: number): void {
  const j = sim.job(id)!;
  expect(j.output).not.toContain('##[sim] step 1');
  expect(j.stepExits).toEqual([]);
}

for (const defences of [true, false]) {
  describe(`the gate at job start, early defences ${defences ? 'on' : 'off'}`, () => {
    let c: TestControl;
    let prefix: string;
    beforeAll(async () => ({ c, prefix, sim } = await installation(defences)));

    test('a feature-branch deploy job refused at intake never runs on the deploy runner minted for an allowed deploy', async () => {
      const r = await runDeployScenario(c, prefix, 'acme/site');
      if (defences) {
        expect(r.first.gate?.decision).toBe('allow');
        expect(sim.job(r.wip)).toMatchObject({ status: 'completed', conclusion: 'cancelled', runnerName: null });
      } else {
        expect(r.first.gate).toMatchObject({ decision: 'deny', reason: 'deploy-not-allowed', workflowJobId: r.wip });
        expect(sim.job(r.wip)!.output).toContain('Hangar refused this job at start: deploy-not-allowed');
        await expectRefusedAtStart(prefix, r.wip, 'deploy-not-allowed');
      }
      expectNoStep(r.wip);
      expect(sim.job(r.main)).toMatchObject({ status: 'completed', conclusion: 'success' });
      expect(sim.job(r.main)!.output).toContain('MAIN-DEPLOYED-42');
      expect(sim.job(r.main)!.output.match(/MAIN-DEPLOYED-42/g)).toHaveLength(1);
    });

    test('a fork pull request queued first is never run by the runner minted for the job after it', async () => {
      const app = 'acme/app';
      const [fork] = sim.createRun({ repo: app, event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/app', jobs: [{ name: 'pwn', labels: ['self-hosted', 'build'], steps: ['echo PWNED-$((40 + 2))'] }] }).jobs.map((j) => j.id);
      const [push] = sim.createRun({ repo: app, jobs: [{ name: 'b', labels: ['self-hosted', 'build'], steps: ['echo BUILT-$((40 + 2))'] }] }).jobs.map((j) => j.id);
      await recorded(prefix, [fork!, push!]);
      const runs = await runUntilDone(c, BUILD, 'build', push!);
      if (defences) {
        expect(runs[0]!.gate?.decision).toBe('allow');
        expect(sim.job(fork!)).toMatchObject({ conclusion: 'cancelled', runnerName: null });
      } else {
        expect(runs[0]!.gate).toMatchObject({ decision: 'deny', reason: 'fork-pr', workflowJobId: fork });
        expect(sim.job(fork!)!.output).toContain('Hangar refused this job at start: fork-pr');
        await expectRefusedAtStart(prefix, fork!, 'fork-pr');
      }
      expectNoStep(fork!);
      expect(sim.job(fork!)!.output).not.toContain('PWNED-42');
      expect(sim.job(push!)).toMatchObject({ conclusion: 'success' });
      expect(sim.job(push!)!.output.match(/BUILT-42/g)).toHaveLength(1);
    });
  });
}

/**
 * Refused at start: the job failed before its first step (or was cancelled, whichever reached
 * GitHub first), the refusal is on its record and in the decisions, and its run's cancel was sent.
 */
async function expectRefusedAtStart(prefix: string, id: number, reason: string): Promise<void> {
  expect(sim.job(id).conclusion).toMatch(/^(failure|cancelled)$/);
  expect(await redis.hget(keys(prefix).job(id), 'startRefusal')).toBe(reason);
  await expect.poll(() => redis.hget(keys(prefix).job(id), 'runCancelled')).toMatch(/^(cancelled|already-completed)$/);
  const decisions = await redis.xrange(keys(prefix).events, '-', '+');
  expect(decisions.some(([, f]) => f.includes('refused-at-start') && f.includes(String(id)) && f.includes(reason))).toBe(true);
}

/** Mints for `id` until it has run (a runner handed a refused job leaves it owed one), at most 3 times. */
async function runUntilDone(c: TestControl, token: string, pool: string, id: number) {
  const runs = [];
  for (let i = 0; i < 3 && sim.job(id)!.status !== 'completed'; i++) runs.push(await runOnHost(c.url, token, pool, id));
  return runs;
}

async function runDeployScenario(c: TestControl, prefix: string, site: string) {
  const [wip] = sim.createRun({ repo: site, headBranch: 'wip', jobs: [{ name: 'deploy', labels: ['self-hosted', 'deploy'], steps: ['echo WIP-DEPLOYED-$((40 + 2))'] }] }).jobs.map((j) => j.id);
  const [main] = sim.createRun({ repo: site, headBranch: 'main', jobs: [{ name: 'deploy', labels: ['self-hosted', 'deploy'], steps: ['echo MAIN-DEPLOYED-$((40 + 2))'] }] }).jobs.map((j) => j.id);
  await recorded(prefix, [wip!, main!]);
  const runs = await runUntilDone(c, DEPLOY, 'deploy', main!);
  return { wip: wip!, main: main!, first: runs[0]! };
}

describe('one runner per job attempt, and a gate that fails closed', () => {
  let c: TestControl;
  let prefix: string;
  beforeAll(async () => ({ c, prefix, sim } = await installation(true)));

  const jit = (token: string, id: number) =>
    fetch(`${c.url}/api/v1/jit`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ pool: 'build', workflowJobId: id }) })
      .then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));
  const live = (id: number) => sim.runners().filter((r) => r.status !== 'deleted' && r.name.endsWith(`-${id}-1`));

  test('two hosts asking for one queued job: the second gets 409 already-minted; at most one live runner', async () => {
    const [id] = sim.createRun({ repo: 'acme/app', jobs: [{ name: 'one', labels: ['self-hosted', 'build'], steps: ['true'] }] }).jobs.map((j) => j.id);
    await recorded(prefix, [id!]);
    const [a, b] = await Promise.all([jit(BUILD, id!), jit(BUILD2, id!)]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    const loser = a.status === 409 ? a : b;
    expect(loser.body).toMatchObject({ error: 'already-minted' });
    expect(live(id!)).toHaveLength(1);
    // The holder asking again (its agent crashed after the mint) replaces its idle runner.
    const holder = a.status === 201 ? BUILD : BUILD2;
    expect((await jit(holder, id!)).status).toBe(201);
    expect(live(id!)).toHaveLength(1);
    // Past the grace, a holder whose runner is registered but whose host shows no VM for the job
    // (its agent died) cannot run it: another host takes over, and the idle runner is removed.
    const claimKey = keys(prefix).mintClaim(id!, 1);
    const age = async () => redis.set(claimKey, (await redis.get(claimKey))!.replace(/\|\d+$/, `|${Date.now() - 61_000}`));
    await age();
    const other = holder === BUILD ? BUILD2 : BUILD;
    expect((await jit(other, id!)).status).toBe(201);
    expect((await jit(holder, id!)).status).toBe(409);
    expect(live(id!)).toHaveLength(1);
    expect(live(id!)[0]!.name).toMatch(other === BUILD ? /^hangar-minipc-/ : /^hangar-spare-/);
    // Leave nothing queued for the next test's runner to be handed.
    sim.cancelJob(id!);
    for (const r of live(id!)) sim.deleteRunner(r.id);

  });

  test('the control unreachable at job start: the job fails before its first step with the reason in its log', async () => {
    const [id] = sim.createRun({ repo: 'acme/app', jobs: [{ name: 'x', labels: ['self-hosted', 'build'], steps: ['echo RAN-$((40 + 2))'] }] }).jobs.map((j) => j.id);
    await recorded(prefix, [id!]);
    const r = await runOnHost(c.url, BUILD, 'build', id!, { gateControlUrl: 'http://127.0.0.1:1' });
    expect(r.gate).toMatchObject({ decision: 'deny', reason: 'control-unreachable' });
    expect(r.exitCode).not.toBe(0);
    expect(sim.job(id!).conclusion).toBe('failure');
    expect(sim.job(id!).output).toContain('Hangar refused this job at start: control-unreachable');
    expect(sim.job(id!).output).toContain('fail closed');
    expectNoStep(id!);
    expect(live(id!)).toEqual([]);
  });

  test('GitHub not answering the control at job start: refused as github-unreachable, within the bound', async () => {
    const [id] = sim.createRun({ repo: 'acme/app', jobs: [{ name: 'y', labels: ['self-hosted', 'build'], steps: ['echo RAN-$((40 + 2))'] }] }).jobs.map((j) => j.id);
    await recorded(prefix, [id!]);
    const res = await fetch(`${c.url}/api/v1/jit`, { method: 'POST', headers: { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' }, body: JSON.stringify({ pool: 'build', workflowJobId: id }) });
    const minted = (await res.json()) as { runnerName: string; encodedJitConfig: string };
    // Every REST call now answers a secondary rate limit of 60 s: the control's GitHub client waits.
    sim.setKnobs({ rateLimitShare: 1, retryAfterSeconds: 60 });
    try {
      const started = Date.now();
      const a = await fetch(`${c.url}/api/v1/job-started`, {
        method: 'POST', headers: { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' },
        body: JSON.stringify({ runnerName: minted.runnerName, hints: { repository: 'acme/app', runId: sim.job(id!).runId, runAttempt: 1 } }),
      }).then((x) => x.json());
      expect(a).toMatchObject({ decision: 'deny', reason: 'github-unreachable' });
      expect(Date.now() - started).toBeLessThan(20_000);
    } finally {
      sim.setKnobs({ rateLimitShare: 0 });
      // The control paused every GitHub call for the 60 s GitHub asked (its shared rate budget);
      // this GitHub has recovered at once, so the next test need not wait that minute out.
      await redis.del(keys(prefix).rateBudget);
    }
  }, 40_000);

  test('gate questions the control must refuse: a runner it never minted, another host\'s runner, hints that point elsewhere', async () => {
    const ask = (token: string, runnerName: string, hints: Record<string, unknown>) =>
      fetch(`${c.url}/api/v1/job-started`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ runnerName, hints }) })
        .then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any> }));
    const [id] = sim.createRun({ repo: 'acme/app', jobs: [{ name: 'z', labels: ['self-hosted', 'build'], steps: ['true'] }] }).jobs.map((j) => j.id);
    await recorded(prefix, [id!]);
    const minted = await jit(BUILD, id!);
    const runId = sim.job(id!).runId;
    expect((await ask(BUILD, 'hangar-minipc-1-1', { repository: 'acme/app', runId, runAttempt: 1 })).body).toMatchObject({ decision: 'deny', reason: 'unknown-runner' });
    expect((await ask(BUILD2, minted.body.runnerName, { repository: 'acme/app', runId, runAttempt: 1 })).body).toMatchObject({ decision: 'deny', reason: 'unknown-runner' });
    expect((await ask(DEPLOY, minted.body.runnerName, { repository: 'acme/app', runId, runAttempt: 1 })).body).toMatchObject({ decision: 'deny', reason: 'unknown-runner' });
    // The runner has taken no job yet: GitHub shows none on it, whatever the hints say. A refused
    // runner is spent (it fails whatever job it holds): a second question finds no runner.
    for (const hints of [{ repository: 'acme/app', runId, runAttempt: 1 }, { repository: 'acme/app', runId: 123456, runAttempt: 1 }, {}]) {
      const fresh = await jit(BUILD, id!);
      expect(fresh.status).toBe(201);
      expect((await ask(BUILD, fresh.body.runnerName, hints)).body, JSON.stringify(hints)).toMatchObject({ decision: 'deny', reason: 'job-not-on-runner' });
      expect((await ask(BUILD, fresh.body.runnerName, hints)).body).toMatchObject({ decision: 'deny', reason: 'unknown-runner' });
    }
    expect((await ask('not-a-known-token-at-all', minted.body.runnerName, {})).status).toBe(401);
    const bad = await ask(BUILD, minted.body.runnerName, { runId: 'x' });
    expect(bad).toMatchObject({ status: 400, body: { field: 'hints.runId' } });
  });
});
