import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createControlClient } from '../../src/agent/control-client.js';
import { eventsOfJob, readEvents } from '../../src/jobs/events.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys, queueJobId } from '../../src/queue/keys.js';
import { agentCall, beat, BUILD_TOKEN, DEPLOY_TOKEN, http, recordedJobs, runThrough, startDashboardRig, type DashboardRig } from '../helpers/dashboard.js';

/**
 * The operator's actions against a real control, Redis and the sim: drain and undrain (the flag,
 * the heartbeat's answer, the mint's backstop), cancel (the run, as GitHub cancels runs) and
 * retry (a new try in the queue, or GitHub's re-run), each written to the events stream.
 */
let rig: DashboardRig;

const record = (id: number) => readJobRecord(rig.redis, keys(rig.prefix), id);
const operatorNotes = async () => (await readEvents(rig.redis, keys(rig.prefix), { count: 10_000 })).filter((e) => e.by === 'operator').map((e) => `${e.fields.what}: ${e.fields.why}`);
const simCalls = async (route: string) => Object.entries(rig.sim.calls()).filter(([k]) => k.includes(route)).reduce((n, [, v]) => n + Object.values(v as Record<string, number>).reduce((a, b) => a + b, 0), 0);

beforeAll(async () => {
  rig = await startDashboardRig();
}, 30_000);
afterAll(async () => rig?.close());

describe('drain and undrain', () => {
  test('drain sets the flag, the heartbeat tells the agent, the mint refuses the host and the job stays queued; undrain clears it', async () => {
    const client = createControlClient(rig.control.url, BUILD_TOKEN);
    const hb = { slots: 2, busy: 0, vms: [], draining: false };
    expect(await client.heartbeat(hb)).toEqual({ drain: false });

    const r = await http(`${rig.dash}/api/v1/hosts/minipc/drain`, { method: 'POST', json: { why: 'new disk' } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, host: 'minipc', drained: true });
    expect(JSON.parse((await rig.redis.get(keys(rig.prefix).hostDrain('minipc')))!)).toMatchObject({ why: 'new disk' });
    expect(await client.heartbeat(hb)).toEqual({ drain: true });
    const hosts = (await http(`${rig.dash}/api/v1/overview`)).body.hosts;
    expect(hosts.find((h: { name: string }) => h.name === 'minipc')).toMatchObject({ up: true, drained: true });

    // The backstop: a job the agent took before it heard.
    const [id] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'b', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    const refused = await agentCall(rig, BUILD_TOKEN, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: id });
    expect(refused).toMatchObject({ status: 403, body: { reason: 'host-drained' } });
    expect(await record(id!)).toMatchObject({ phase: 'queued', mintedRunner: null });
    // Another host of the pool may take it.
    expect((await agentCall(rig, DEPLOY_TOKEN, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: id })).status).toBe(201);

    const u = await http(`${rig.dash}/api/v1/hosts/minipc/undrain`, { method: 'POST' });
    expect(u.body).toMatchObject({ ok: true, drained: false });
    expect(await rig.redis.exists(keys(rig.prefix).hostDrain('minipc'))).toBe(0);
    expect(await client.heartbeat(hb)).toEqual({ drain: false });
    const [next] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'c', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    expect((await agentCall(rig, BUILD_TOKEN, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: next })).status).toBe(201);

    expect(await operatorNotes()).toEqual(expect.arrayContaining(['host-drained: minipc: new disk', 'host-undrained: minipc: operator']));
    expect((await http(`${rig.dash}/api/v1/hosts/nope/drain`, { method: 'POST' })).status).toBe(404);
    // GitHub hands a runner the oldest queued job: none of these may be left for the next tests.
    for (const j of [id!, next!]) rig.sim.cancelJob(j);
    await rig.sim.idle();
  });
});

describe('cancel', () => {
  test('a waiting job: its run is cancelled on GitHub (the sim saw it) and the webhooks end it; a job not waiting is refused with why', async () => {
    const [id] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'waits', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    const before = await simCalls('/cancel');
    const r = await http(`${rig.dash}/api/v1/jobs/${id}/cancel`, { method: 'POST', json: { why: 'not needed' } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, action: 'cancel', how: 'run-cancelled', runId: rig.sim.job(id!).runId });
    expect(r.body.message).toContain('GitHub cancels runs, not jobs');
    expect(await simCalls('/cancel')).toBe(before + 1);
    expect(rig.sim.job(id!)).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
    await expect.poll(async () => (await record(id!))?.phase, { timeout: 10_000 }).toBe('cancelled');
    expect((await eventsOfJob(rig.redis, keys(rig.prefix), id!)).some((e) => e.by === 'operator' && e.fields.what === 'run-cancelled' && e.fields.why === 'not needed')).toBe(true);

    const again = await http(`${rig.dash}/api/v1/jobs/${id}/cancel`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: 'not-waiting' });
    expect(again.body.message).toMatch(/is not waiting \(phase cancelled, GitHub: completed\)/);
    expect((await http(`${rig.dash}/api/v1/jobs/424242/cancel`, { method: 'POST' })).status).toBe(404);
  });
});

describe('retry', () => {
  test('a job Hangar failed that GitHub still holds queued: back to queued, a new entry in its pool queue', async () => {
    const [id] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'gave-up', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    // The agent gives up on it (its tries spent), as it reports through the control.
    expect((await agentCall(rig, BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'failed', reason: 'gave up after 5 attempts', attempts: 5 })).body).toEqual({ phase: 'failed' });
    // Its queue entry is gone or failed, as an agent leaves it.
    const q = rig.control.queues.queue('build');
    const entry = await q.getJob(queueJobId(id!));
    await entry?.remove();

    const r = await http(`${rig.dash}/api/v1/jobs/${id}/retry`, { method: 'POST', json: { why: 'flaky host' } });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, action: 'retry', how: 'requeued' });
    expect(await record(id!)).toMatchObject({ phase: 'queued', phaseBy: 'operator', phaseWhy: 'flaky host' });
    const fresh = await q.getJob(queueJobId(id!));
    expect(await fresh?.getState()).toBe('waiting');
    expect(fresh?.data).toMatchObject({ workflowJobId: id, pool: 'build', repo: 'acme/app' });
    // A host can mint for it again.
    expect((await agentCall(rig, BUILD_TOKEN, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: id })).status).toBe(201);
    // Waiting, not failed: refused with why.
    const notFailed = await http(`${rig.dash}/api/v1/jobs/${id}/retry`, { method: 'POST' });
    expect(notFailed).toMatchObject({ status: 409, body: { error: 'not-retryable' } });
    expect(notFailed.body.message).toContain('it has not failed (phase minted, GitHub: queued)');
    rig.sim.cancelJob(id!);
    await rig.sim.idle();
  });

  test('a job GitHub finished as failed: GitHub\'s re-run (the sim saw it), a new job of a new run attempt arrives; a succeeded one is refused', async () => {
    expect((await beat(rig, BUILD_TOKEN)).status).toBe(200);
    const [id] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'flaky', labels: ['self-hosted', 'build'], steps: ['exit 1'] }] });
    await runThrough(rig, id!, { exit: 1 });
    await expect.poll(async () => (await record(id!))?.conclusion).toBe('failure');
    const runId = rig.sim.job(id!).runId;
    const before = await simCalls('/rerun');
    const r = await http(`${rig.dash}/api/v1/jobs/${id}/retry`, { method: 'POST' });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ how: 'rerun', runId });
    expect(await simCalls('/rerun')).toBe(before + 1);
    await rig.sim.idle();
    // The re-run job: a new record, attempt 2 of the same run, queued in its pool.
    await expect.poll(async () => {
      const o = (await http(`${rig.dash}/api/v1/overview`)).body;
      return o.jobs.find((j: { runId: number; runAttempt: number }) => j.runId === runId && j.runAttempt === 2)?.phase;
    }, { timeout: 10_000 }).toBe('queued');
    const rerun = (await http(`${rig.dash}/api/v1/overview`)).body.jobs.find((j: { runId: number; runAttempt: number }) => j.runId === runId && j.runAttempt === 2);
    expect(rerun.workflowJobId).not.toBe(id);
    rig.sim.cancelJob(rerun.workflowJobId);
    await rig.sim.idle();

    const [ok] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'fine', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    await runThrough(rig, ok!);
    await expect.poll(async () => (await record(ok!))?.conclusion).toBe('success');
    const refused = await http(`${rig.dash}/api/v1/jobs/${ok}/retry`, { method: 'POST' });
    expect(refused).toMatchObject({ status: 409, body: { error: 'not-retryable' } });
    expect(refused.body.message).toContain('GitHub finished it as success');
    expect((await http(`${rig.dash}/api/v1/jobs/${ok}/retry`, { method: 'POST', json: { why: 1 } })).body).toMatchObject({ error: 'bad-request', field: 'why' });
  }, 30_000);
});
