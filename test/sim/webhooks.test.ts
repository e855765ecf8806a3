import { createHmac } from 'node:crypto';
import { createAppAuth } from '@octokit/auth-app';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { runSimRunner } from '../../src/sim/runner.js';
import { expectWorkflowJobPayload } from './helpers/webhook-schema.js';
import { SECRET, startSim, type SimHarness } from './helpers/sim.js';

/** Signed `workflow_job` deliveries: GitHub's headers, GitHub's payload schema, and the unreliability knobs. */
let h: SimHarness;
beforeEach(async () => {
  h = await startSim();
});
afterEach(async () => h.close());

const job = (name: string, labels = ['self-hosted', 'build']) => ({ name, labels, steps: ['echo ok'] });

async function jit(name: string, labels = ['self-hosted', 'build']): Promise<string> {
  const res = await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { name, runner_group_id: 1, labels } });
  expect(res.status).toBe(201);
  return res.body.encoded_jit_config as string;
}

describe('payloads and headers', () => {
  test('queued, in_progress, completed: schema-valid, signed, filled from the run', async () => {
    h.sim.createRepo({ owner: 'acme', name: 'pub', visibility: 'public' });
    h.sim.createRepo({ owner: 'fork', name: 'app', visibility: 'private', forkOf: 'acme/app' });
    const run = h.sim.createRun({ repo: 'acme/app', headBranch: 'dev', workflowName: 'Build', jobs: [job('a', ['self-hosted', 'Build'])] });
    h.sim.createRun({ repo: 'acme/pub', jobs: [job('b')] });
    h.sim.createRun({ repo: 'fork/app', event: 'pull_request', jobs: [job('c', ['x'])] });
    await runSimRunner(await jit('wh-1'), { pollMs: 20 });
    const got = await h.receiver.waitFor(5);
    await h.sim.idle();
    for (const r of got) expectWorkflowJobPayload(r.payload);

    const forA = got.filter((r) => r.payload.workflow_job.id === run.jobs[0]!.id);
    expect(forA.map((r) => r.payload.action)).toEqual(['queued', 'in_progress', 'completed']);
    const [queued, inProgress, completed] = forA.map((r) => r.payload as any);
    expect(queued.workflow_job).toMatchObject({ status: 'queued', labels: ['self-hosted', 'Build'], head_branch: 'dev', run_id: run.runId, run_attempt: 1, workflow_name: 'Build', runner_id: null, runner_name: null, conclusion: null });
    expect(queued.repository).toMatchObject({ full_name: 'acme/app', private: true, visibility: 'private', fork: false, owner: { login: 'acme' } });
    expect(queued.installation).toMatchObject({ id: 7 });
    expect(queued.organization).toMatchObject({ login: 'acme' });
    expect(queued.sender.login).toBe('octocat');
    expect(inProgress.workflow_job).toMatchObject({ status: 'in_progress', runner_name: 'wh-1', runner_group_id: 1 });
    expect(typeof inProgress.workflow_job.runner_id).toBe('number');
    expect(completed.workflow_job).toMatchObject({ status: 'completed', conclusion: 'success', runner_name: 'wh-1' });
    const pub = got.find((r) => (r.payload as any).repository.full_name === 'acme/pub')!.payload as any;
    expect(pub.repository).toMatchObject({ private: false, visibility: 'public' });
    const fork = got.find((r) => (r.payload as any).repository.full_name === 'fork/app')!.payload as any;
    expect(fork.repository).toMatchObject({ fork: true, private: true });

    for (const r of got) {
      expect(r.signatureOk).toBe(true);
      expect(r.headers['x-hub-signature']).toBe(`sha1=${createHmac('sha1', SECRET).update(r.raw).digest('hex')}`);
      expect(r.headers['x-github-event']).toBe('workflow_job');
      expect(r.headers['x-github-delivery']).toMatch(/^[0-9a-f-]{36}$/);
      expect(r.headers['x-github-hook-id']).toMatch(/^\d+$/);
      expect(r.headers['x-github-hook-installation-target-type']).toBe('integration');
      expect(r.headers['x-github-hook-installation-target-id']).toBe('42');
      expect(r.headers['user-agent']).toMatch(/^GitHub-Hookshot\//);
      expect(r.headers['content-type']).toBe('application/json');
    }
  });

  test('a cancelled job completes with conclusion cancelled', async () => {
    const created = await h.call('POST', '/_sim/runs', { body: { repo: 'acme/app', jobs: [job('x')] }, auth: null });
    expect(created.status).toBe(201);
    const id = created.body.jobs[0].id as number;
    const res = await h.call('POST', `/_sim/jobs/${id}/cancel`, { auth: null });
    expect(res.body).toMatchObject({ id, status: 'completed', conclusion: 'cancelled' });
    const got = await h.receiver.waitFor(2);
    expect(got[1]!.payload).toMatchObject({ action: 'completed', workflow_job: { conclusion: 'cancelled' } });
    expectWorkflowJobPayload(got[1]!.payload);
  });
  test('cancelling a run: one completed (cancelled) per open job; the running job\'s runner hears 409', async () => {
    const run = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'slow', labels: ['self-hosted', 'slow'], steps: ['sleep 1'] }, job('idle', ['self-hosted', 'idle']), job('idle-2', ['self-hosted', 'idle'])] });
    const [slow, ...idle] = run.jobs.map((j) => j.id) as [number, ...number[]];
    const { body } = await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { name: 'wh-slow', runner_group_id: 1, labels: ['self-hosted', 'slow'] } });
    const outcome = runSimRunner(body.encoded_jit_config as string, { pollMs: 20 }).catch((e: unknown) => e);
    await expect.poll(() => h.sim.job(slow).status).toBe('in_progress');

    const res = await h.call('POST', `/repos/acme/app/actions/runs/${run.runId}/cancel`);
    expect(res.status).toBe(202);
    const got = await h.receiver.waitFor(7);
    await h.sim.idle();
    expect(got).toHaveLength(7);
    for (const r of got) expectWorkflowJobPayload(r.payload);
    const completed = got.filter((r) => r.payload.action === 'completed');
    expect(completed.map((r) => r.payload.workflow_job.id).sort()).toEqual([slow, ...idle].sort());
    for (const r of completed) expect(r.payload.workflow_job).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
    expect(completed.find((r) => r.payload.workflow_job.id === slow)!.payload.workflow_job).toMatchObject({ runner_name: 'wh-slow' });

    expect(await outcome).toMatchObject({ status: 409 });
    expect(h.sim.job(slow)).toMatchObject({ status: 'completed', conclusion: 'cancelled', exitCode: null });
    expect(h.sim.runners().find((r) => r.name === 'wh-slow')?.status).toBe('deleted');
    expect(h.receiver.received).toHaveLength(7);
  });
});

describe('like GitHub: no retry, redelivery through the API', () => {
  test('a failed delivery is recorded once, then redelivered with the same guid', async () => {
    h.receiver.respondWith(500);
    const run = h.sim.createRun({ repo: 'acme/app', jobs: [job('a')] });
    await h.sim.idle();
    await new Promise((r) => setTimeout(r, 200));
    expect(h.receiver.received).toHaveLength(1);
    const [d] = h.sim.deliveries();
    expect(d).toMatchObject({ event: 'workflow_job', action: 'queued', workflowJobId: run.jobs[0]!.id, statusCode: 500, redelivery: false, dropped: false });

    h.receiver.respondWith(202);
    const { token: jwt } = await createAppAuth({ appId: 42, privateKey: h.sim.appPrivateKeyPem })({ type: 'app' });
    const list = await h.call('GET', '/app/hook/deliveries?status=failure', { auth: `Bearer ${jwt}` });
    expect(list.body).toHaveLength(1);
    expect(list.body[0]).toMatchObject({ status_code: 500, status: 'Invalid HTTP Response: 500' });
    const re = await h.call('POST', `/app/hook/deliveries/${list.body[0].id}/attempts`, { auth: `Bearer ${jwt}` });
    expect(re.status).toBe(202);
    const got = await h.receiver.waitFor(2);
    expect(got[1]!.headers['x-github-delivery']).toBe(d!.guid);
    expect(got[1]!.raw).toBe(got[0]!.raw);
    await h.sim.idle();
    expect(h.sim.deliveries()[1]).toMatchObject({ guid: d!.guid, statusCode: 202, redelivery: true });
  });

  test('PUT /_sim/webhook moves the target; without one, deliveries are recorded as failed', async () => {
    const sim = h.sim;
    sim.setWebhook({ url: 'http://127.0.0.1:1/nothing', secret: 's' });
    sim.createRun({ repo: 'acme/app', jobs: [job('a')] });
    await sim.idle();
    expect(sim.deliveries()[0]).toMatchObject({ statusCode: 0, dropped: false });
    const put = await h.call('PUT', '/_sim/webhook', { body: { url: h.receiver.url, secret: SECRET }, auth: null });
    expect(put.status).toBe(200);
    sim.createRun({ repo: 'acme/app', jobs: [job('b')] });
    const [r] = await h.receiver.waitFor(1);
    expect(r!.signatureOk).toBe(true);
  });
});

describe('knobs', () => {
  const knobs = (body: Record<string, unknown>) => h.call('PUT', '/_sim/knobs', { body, auth: null });

  test('dropRate 1: recorded as dropped, nothing sent', async () => {
    expect((await knobs({ dropRate: 1 })).status).toBe(200);
    h.sim.createRun({ repo: 'acme/app', jobs: [job('a'), job('b')] });
    await h.sim.idle();
    await new Promise((r) => setTimeout(r, 100));
    expect(h.receiver.received).toHaveLength(0);
    const ds = (await h.call('GET', '/_sim/deliveries', { auth: null })).body;
    expect(ds).toHaveLength(2);
    for (const d of ds) expect(d).toMatchObject({ dropped: true, statusCode: 0 });
  });

  test('duplicateRate 1: every delivery arrives twice with the same guid', async () => {
    await knobs({ duplicateRate: 1 });
    h.sim.createRun({ repo: 'acme/app', jobs: [job('a'), job('b')] });
    const got = await h.receiver.waitFor(4);
    const guids = got.map((r) => r.headers['x-github-delivery']);
    expect(new Set(guids).size).toBe(2);
    expect(guids[0]).toBe(guids[1]);
  });

  test('reorderWindowMs: deliveries are held for the window, then sent shuffled (seeded)', async () => {
    await knobs({ reorderWindowMs: 300, seed: 7 });
    const start = Date.now();
    const run = h.sim.createRun({ repo: 'acme/app', jobs: Array.from({ length: 8 }, (_, i) => job(`j${i}`)) });
    const got = await h.receiver.waitFor(8);
    expect(got[0]!.at - start).toBeGreaterThanOrEqual(290);
    const order = got.map((r) => r.payload.workflow_job.id);
    const emitted = run.jobs.map((j) => j.id);
    expect([...order].sort()).toEqual([...emitted].sort());
    expect(order).not.toEqual(emitted);
  });

  test('delayMs: each delivery waits', async () => {
    await knobs({ delayMs: 300 });
    const start = Date.now();
    h.sim.createRun({ repo: 'acme/app', jobs: [job('a')] });
    const [r] = await h.receiver.waitFor(1);
    expect(r!.at - start).toBeGreaterThanOrEqual(290);
  });

  test('bad knobs are refused with every problem listed', async () => {
    const res = await knobs({ dropRate: 2, bogus: 1 });
    expect(res.status).toBe(400);
    expect(res.body.issues.length).toBeGreaterThanOrEqual(1);
  });
});
