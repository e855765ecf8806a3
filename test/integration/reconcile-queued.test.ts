import { createAppAuth } from '@octokit/auth-app';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { parseWorkflowJob } from '../../src/intake/parse.js';
import { JobStore } from '../../src/jobs/intake-record.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { readEvents } from '../../src/jobs/events.js';
import { keys, queueJobId, type Keys } from '../../src/queue/keys.js';
import { LeaderLock, type Fence } from '../../src/reconcile/leader.js';
import { createLoops, loopDeps } from '../../src/reconcile/loops.js';
import { queuedRunsLoop } from '../../src/reconcile/queued-runs.js';
import { stuckJobsLoop } from '../../src/reconcile/stuck-jobs.js';
import type { AnyLoop } from '../../src/reconcile/loop.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The queued-runs and stuck-jobs loops against a real control (its intake, Redis, the outbox
 * relay into BullMQ) and the sim as GitHub. The control's own reconciler is off, so each pass
 * here is the one loop under test, run as its leader (a fence of its own lock).
 */
const BUILD = 'build-host-token-0123456789abcdef';

let sim: Sim;
let c: TestControl;
let prefix: string;
let k: Keys;
let fence: Fence;
let queued: AnyLoop;
let stuck: AnyLoop;
let appAuth: ReturnType<typeof createAppAuth>;

beforeAll(async () => {
  prefix = testPrefix();
  k = keys(prefix);
  sim = await createSim({ appId: 9, installationId: 3 });
  const apiUrl = await sim.listen(0, '127.0.0.1');
  c = await startTestControl({
    redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem, cancelRefusedRuns: false,
    hosts: [{ name: 'minipc', role: 'build', pools: ['build'], token: BUILD }],
    extraYaml: 'reconcile: {enabled: false, stuckAfterSeconds: 5}',
  });
  sim.setWebhook({ url: `${c.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  for (const name of ['app', 'lib', 'site']) sim.createRepo({ owner: 'acme', name, visibility: 'private' });
  sim.createRepo({ owner: 'acme', name: 'open', visibility: 'public' });
  sim.createRepo({ owner: 'zed', name: 'app', visibility: 'private' });
  const deps = loopDeps({
    config: c.config, redis: c.redis, keys: k, github: c.github, logger: pino({ level: 'silent' }),
    store: new JobStore(c.redis, k, { deliveryTtlSeconds: c.config.control.deliveryTtlHours * 3600 }),
  });
  queued = queuedRunsLoop(deps);
  stuck = stuckJobsLoop(deps);
  appAuth = createAppAuth({ appId: 9, privateKey: sim.appPrivateKeyPem });
  fence = (await new LeaderLock(c.redis, k.leader, k.leaderToken, 60_000, 'test').acquire())!;
});

afterAll(async () => {
  await c?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
});

beforeEach(() => {
  sim.setKnobs({ dropRate: 0 });
});

async function pass(loop: AnyLoop, now = Date.now()): Promise<{ actions: string[]; applied: Record<string, number> }> {
  const plan = loop.plan(await loop.observe(now), now);
  const actions = loop.describe(plan);
  return { actions, applied: await loop.apply(plan, fence) };
}

/** Completes the jobs on GitHub, delivered, so the next test sees none of them queued. */
async function cancel(ids: number[]): Promise<void> {
  sim.setKnobs({ dropRate: 0 });
  for (const id of ids) sim.cancelJob(id);
  await sim.idle();
}

/** The payload GitHub tried to deliver for a job's `queued` event (GET /app/hook/deliveries/{id}). */
async function deliveredPayload(jobId: number): Promise<unknown> {
  const d = sim.deliveries().find((x) => x.workflowJobId === jobId && x.action === 'queued' && !x.redelivery)!;
  const { token } = await appAuth({ type: 'app' });
  const res = await fetch(`${sim.url}/app/hook/deliveries/${d.id}`, { headers: { authorization: `Bearer ${token}` } });
  return ((await res.json()) as { request: { payload: unknown } }).request.payload;
}

const build = (steps = ['true']) => ({ name: 'b', labels: ['self-hosted', 'build'], steps });
const entries = async (ids: number[]) =>
  (await Promise.all(ids.map((id) => c.queues.queue('build').getJob(queueJobId(id))))).filter((j) => j !== undefined).length;
async function eventsOf(ids: number[]) {
  const want = new Set(ids);
  const all = [];
  for (let after: string | undefined; ; ) {
    const batch = await readEvents(c.redis, k, { ...(after ? { after } : {}), count: 1000 });
    all.push(...batch.filter((e) => e.workflowJobId !== null && want.has(e.workflowJobId)));
    if (batch.length < 1000) return all;
    after = batch[batch.length - 1]!.id;
  }
}

test('the control runs both loops, queued runs before stuck jobs', () => {
  const names = createLoops(loopDeps({ config: { ...c.config, reconcile: { ...c.config.reconcile, enabled: true } }, redis: c.redis, keys: k, github: c.github, logger: pino({ level: 'silent' }), store: null as never })).map((l) => l.name);
  expect(names.indexOf('queued-runs')).toBeGreaterThanOrEqual(0);
  expect(names.indexOf('stuck-jobs')).toBeGreaterThan(names.indexOf('queued-runs'));
});

describe('queued runs no delivery announced', () => {
  test('50 jobs whose webhooks never arrived: one pass records all 50, one queue entry each; a late real delivery adds none', async () => {
    sim.setKnobs({ dropRate: 1 });
    const ids: number[] = [];
    const hosted: number[] = [];
    for (let r = 0; r < 25; r++) {
      const created = sim.createRun({ repo: r % 2 ? 'acme/app' : 'acme/lib', jobs: [build(), build(), { name: 'hosted', labels: ['ubuntu-latest'], steps: ['true'] }] });
      ids.push(...created.jobs.filter((j) => j.name === 'b').map((j) => j.id));
      hosted.push(...created.jobs.filter((j) => j.name === 'hosted').map((j) => j.id));
    }
    await sim.idle();
    expect(ids).toHaveLength(50);
    expect(sim.deliveries().filter((d) => ids.includes(d.workflowJobId!)).every((d) => d.dropped)).toBe(true);
    expect((await Promise.all(ids.map((id) => readJobRecord(c.redis, k, id)))).every((r) => r === null)).toBe(true);

    const first = await pass(queued);
    expect(first.actions).toHaveLength(50);
    expect(first.applied).toMatchObject({ enqueued: 50, refused: 0, 'already-recorded': 0, fenced: 0 });
    for (const id of ids) {
      const rec = await readJobRecord(c.redis, k, id);
      expect(rec).toMatchObject({ state: 'queued', phase: 'queued', pool: 'build', decision: 'accept', firstDeliveryId: `reconcile-${id}-1` });
      // Every field the record keeps is the one the job's own (dropped) webhook carried.
      const ev = parseWorkflowJob(await deliveredPayload(id))!;
      expect(rec).toMatchObject({
        repo: ev.repo, owner: ev.owner, repoId: ev.repoId, visibility: ev.visibility, runId: ev.runId, runAttempt: ev.runAttempt,
        jobName: ev.jobName, workflowName: ev.workflowName, labels: ev.labels, headBranch: ev.headBranch, headSha: ev.headSha,
        installationId: ev.installationId,
      });
      expect(ev.installationId).toBe(3);
    }
    // GitHub-hosted jobs of the same runs: nothing of Hangar's, as the webhook route leaves them.
    expect(await Promise.all(hosted.map((id) => readJobRecord(c.redis, k, id)))).toEqual(hosted.map(() => null));
    await expect.poll(() => entries(ids), { timeout: 15_000 }).toBe(50);

    // A second pass finds nothing to do; the real deliveries come late (redelivered): no second entry.
    expect((await pass(queued)).actions).toEqual([]);
    sim.setKnobs({ dropRate: 0 });
    for (const d of sim.deliveries().filter((x) => ids.includes(x.workflowJobId!))) await c.github.redeliver(d.id);
    await sim.idle();
    const redelivered = sim.deliveries().filter((d) => d.redelivery && ids.includes(d.workflowJobId!));
    expect(redelivered).toHaveLength(50);
    expect(redelivered.every((d) => d.statusCode === 202)).toBe(true);
    const evs = await eventsOf(ids);
    for (const id of ids) {
      // One decision and one GitHub `queued` move per job: the outbox got one enqueue for each.
      expect(evs.filter((e) => e.workflowJobId === id && e.type === 'decision')).toHaveLength(1);
      expect(evs.filter((e) => e.workflowJobId === id && e.type === 'github')).toHaveLength(1);
    }
    expect(await entries(ids)).toBe(50);
    await cancel([...ids, ...hosted]);
  });

  test('a repository policy.repositories does not name is never polled, its job never recorded; a public one is recorded refused', async () => {
    sim.setKnobs({ dropRate: 1 });
    const [outside] = sim.createRun({ repo: 'zed/app', jobs: [build()] }).jobs.map((j) => j.id);
    const [open] = sim.createRun({ repo: 'acme/open', jobs: [build()] }).jobs.map((j) => j.id);
    const [inside] = sim.createRun({ repo: 'acme/site', jobs: [build()] }).jobs.map((j) => j.id);
    await sim.idle();
    sim.resetCalls();
    const p = await pass(queued);
    expect(p.applied).toMatchObject({ enqueued: 1, refused: 1 });
    expect(await readJobRecord(c.redis, k, outside!)).toBeNull();
    expect(await readJobRecord(c.redis, k, open!)).toMatchObject({ phase: 'refused', decision: 'reject', reason: 'public-repo' });
    expect(await readJobRecord(c.redis, k, inside!)).toMatchObject({ phase: 'queued', pool: 'build' });
    // The outbox relay moves it into BullMQ on its own time: a loaded machine may take seconds.
    await expect.poll(() => entries([inside!]), { timeout: 15_000 }).toBe(1);
    expect(await entries([outside!, open!])).toBe(0);
    // What the pass cost: the owner/* listing, two run lists for each of acme's 4 repositories (zed's
    // never), one job list per open run (the two of acme's).
    const calls = sim.calls();
    expect(calls['GET /installation/repositories']).toEqual({ 200: 1 });
    expect(calls['GET /repos/:owner/:repo/actions/runs']).toEqual({ 200: 2 * 4 });
    expect(calls['GET /repos/:owner/:repo/actions/runs/:run_id/attempts/:attempt_number/jobs']).toEqual({ 200: 2 });
    await cancel([outside!, open!, inside!]);
  });
});

describe('stuck jobs', () => {
  const heartbeat = (body: unknown) =>
    fetch(`${c.url}/api/v1/hosts/self/heartbeat`, { method: 'PUT', headers: { authorization: `Bearer ${BUILD}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  test('with no heartbeat flagged every-host-down, once; with every slot busy, slots-full; a deploy job no host serves, no-host', async () => {
    const [id] = sim.createRun({ repo: 'acme/app', jobs: [build()] }).jobs.map((j) => j.id);
    const [deploy] = sim.createRun({ repo: 'acme/site', headBranch: 'main', jobs: [{ name: 'd', labels: ['self-hosted', 'deploy'], steps: ['true'] }] }).jobs.map((j) => j.id);
    await sim.idle();
    await expect.poll(async () => (await readJobRecord(c.redis, k, deploy!))?.phase).toBe('queued');
    // Not yet past stuckAfterSeconds: nothing flagged.
    expect((await pass(stuck)).actions.filter((a) => a.includes(String(id)))).toEqual([]);

    const later = () => Date.now() + 10_000;
    const flagsOf = async (job: number) => (await eventsOf([job])).filter((e) => e.type === 'note' && e.fields.what === 'stuck').map((e) => e.fields.why);
    await pass(stuck, later());
    expect(await readJobRecord(c.redis, k, id!)).toMatchObject({ stuckWhy: 'every-host-down', stuck: expect.any(Number) });
    expect(await readJobRecord(c.redis, k, deploy!)).toMatchObject({ stuckWhy: 'no-host' });
    // Once per reason, not every pass.
    expect((await pass(stuck, later())).actions).toEqual([]);
    expect(await flagsOf(id!)).toEqual(['every-host-down']);

    expect((await heartbeat({ slots: 2, busy: 2, vms: [], draining: false })).status).toBe(200);
    const p = await pass(stuck, later());
    // This test's jobs only: one left by a test before it (say, one that failed) may be flagged too.
    expect(p.applied).toMatchObject({ fenced: 0 });
    expect(p.actions.filter((a) => a.includes(String(id)) || a.includes(String(deploy)))).toHaveLength(1);
    expect(await readJobRecord(c.redis, k, id!)).toMatchObject({ stuckWhy: 'slots-full', phase: 'queued' });
    expect(await flagsOf(id!)).toEqual(['every-host-down', 'slots-full']);
    expect(await flagsOf(deploy!)).toEqual(['no-host']);
    await cancel([id!, deploy!]);
  });

  test('a replica that no longer leads flags nothing', async () => {
    const [id] = sim.createRun({ repo: 'acme/lib', jobs: [build()] }).jobs.map((j) => j.id);
    await sim.idle();
    await expect.poll(async () => (await readJobRecord(c.redis, k, id!))?.phase).toBe('queued');
    await c.redis.del(k.host('minipc'));
    const now = Date.now() + 10_000;
    const plan = stuck.plan(await stuck.observe(now), now);
    expect(stuck.describe(plan).some((a) => a.includes(String(id)))).toBe(true);
    const stale: Fence = { ...fence, value: `${fence.token - 1}|gone` };
    expect(await stuck.apply(plan, stale)).toMatchObject({ flagged: 0 });
    expect(await readJobRecord(c.redis, k, id!)).toMatchObject({ stuckWhy: null });
    await cancel([id!]);
  });
});
