import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { eventsOfJob } from '../../src/jobs/events.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { jobMoves } from '../../src/jobs/transition.js';
import { keys } from '../../src/queue/keys.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { delivery, jobPayload } from '../helpers/payloads.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The job record's one writer: the atomic transition (refuses an illegal move, leaving the record
 * as it was), the events stream, and the agents' reports through the control — against a real
 * control, Redis and the GitHub simulator.
 */
const BUILD_TOKEN = 'build-host-token-0123456789abcdef';
const OTHER_TOKEN = 'other-host-token-0123456789abcdef';

let sim: Sim;
let control: TestControl;
let redis: Redis;
let prefix: string;

const call = (token: string, method: string, path: string, body?: unknown) =>
  fetch(`${control.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }).then(async (r) => ({ status: r.status, body: r.status === 204 ? {} : ((await r.json()) as Record<string, any>) }));

async function queuedJob(): Promise<number> {
  const { jobs } = sim.createRun({ repo: 'acme/app', workflowName: 'ci', jobs: [{ name: 'b', labels: ['self-hosted', 'build'], steps: ['true'] }] });
  await sim.idle();
  const id = jobs[0]!.id;
  await expect.poll(async () => (await readJobRecord(redis, keys(prefix), id))?.phase).toBe('queued');
  return id;
}

async function minted(): Promise<{ id: number; runnerName: string }> {
  const id = await queuedJob();
  const r = await call(BUILD_TOKEN, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: id });
  expect(r.status).toBe(201);
  return { id, runnerName: r.body.runnerName as string };
}

const moves = async (id: number) => (await eventsOfJob(redis, keys(prefix), id)).filter((e) => e.type === 'move').map((e) => `${e.fields.from}>${e.fields.to}`);

beforeAll(async () => {
  prefix = testPrefix();
  redis = new Redis(redisUrl());
  sim = await createSim({ appId: 9, installationId: 3 });
  const simUrl = await sim.listen(0, '127.0.0.1');
  control = await startTestControl({
    redisUrl: redisUrl(), prefix, apiUrl: simUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem,
    hosts: [
      { name: 'minipc', role: 'build', pools: ['build'], token: BUILD_TOKEN },
      { name: 'other', role: 'build', pools: ['build'], token: OTHER_TOKEN },
    ],
  });
  sim.setWebhook({ url: `${control.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
});

afterAll(async () => {
  await control?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
  redis.disconnect();
});

const deliver = (payload: unknown) => {
  const d = delivery(TEST_SECRET, payload);
  return fetch(`${control.webhookUrl}/webhooks/github`, { method: 'POST', headers: d.headers, body: d.body }).then((r) => r.status);
};

describe("the intake's first phase, and GitHub's moves", () => {
  test.each([
    ['accepted, first seen queued', [{ id: 61, action: 'queued' }], 'queued', 'accepted'],
    ['refused at intake, with the reason', [{ id: 62, action: 'queued', repo: 'other/app' }], 'refused', 'repo-not-allowed'],
    ['first seen in progress: never queued by Hangar', [{ id: 63, action: 'in_progress', runnerName: 'laptop' }], 'cancelled', 'first-seen-in_progress'],
    ['completed before any runner took it', [{ id: 64, action: 'queued' }, { id: 64, action: 'completed', conclusion: 'cancelled', runnerName: null }], 'cancelled', 'completed-on-github'],
  ] as const)('%s', async (_n, events, phase, why) => {
    for (const e of events) expect(await deliver(jobPayload(e as Parameters<typeof jobPayload>[0]))).toBe(202);
    const id = events[0]!.id;
    const rec = await readJobRecord(redis, keys(prefix), id);
    expect(rec).toMatchObject({ phase, phaseWhy: why, phaseBy: 'intake' });
    const stream = await eventsOfJob(redis, keys(prefix), id);
    expect(stream.filter((e) => e.type === 'decision')).toHaveLength(1);
    expect(stream.filter((e) => e.type === 'github').map((e) => e.fields.state)).toEqual(events.map((e) => e.action));
  });
});

describe('the atomic transition', () => {
  test('a legal move writes the phase, its fields and one move event', async () => {
    const id = await queuedJob();
    const r = await jobMoves(redis, keys(prefix)).move(id, { to: 'failed', by: 'test', why: 'because', fields: { extra: 'x' } });
    expect(r).toEqual({ ok: true, from: 'queued' });
    const rec = await readJobRecord(redis, keys(prefix), id);
    expect(rec).toMatchObject({ phase: 'failed', phaseBy: 'test', phaseWhy: 'because' });
    expect(await redis.hget(keys(prefix).job(id), 'extra')).toBe('x');
    expect(await moves(id)).toEqual(['queued>failed']);
  });

  test('an illegal move is refused and leaves the record and the stream as they were', async () => {
    const id = await queuedJob();
    const before = await redis.hgetall(keys(prefix).job(id));
    const events = await eventsOfJob(redis, keys(prefix), id);
    for (const to of ['ran', 'started', 'vm-up', 'queued', 'timed-out'] as const) {
      expect(await jobMoves(redis, keys(prefix)).move(id, { to, by: 'test', why: 'should not', fields: { extra: 'y' } })).toEqual({ ok: false, reason: 'illegal', from: 'queued' });
    }
    expect(await redis.hgetall(keys(prefix).job(id))).toEqual(before);
    expect(await eventsOfJob(redis, keys(prefix), id)).toEqual(events);
  });

  test('a compare-and-set move is refused when its field moved on; a move of no record is refused', async () => {
    const { id } = await minted();
    const stale = await jobMoves(redis, keys(prefix)).move(id, { to: 'vm-up', by: 'test', why: 'old runner', onlyIf: { field: 'mintedRunner', equals: 'hangar-minipc-1-1' } });
    expect(stale).toEqual({ ok: false, reason: 'stale', from: 'minted' });
    expect(await jobMoves(redis, keys(prefix)).move(999_999_999, { to: 'failed', by: 'test', why: 'none' })).toEqual({ ok: false, reason: 'no-record' });
    expect(await redis.exists(keys(prefix).job(999_999_999))).toBe(0);
  });
});

describe("agents report through the control", () => {
  test('vm-up, then a VM that ran its job: minted → vm-up → started → ran, each move once, with who', async () => {
    const { id, runnerName } = await minted();
    expect(await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-up', vmId: `wj-${id}-1`, runnerName })).toEqual({ status: 200, body: { phase: 'vm-up' } });
    // Without the gate's allow, a VM's end is never "ran".
    const early = await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-ended', end: 'ran', vmId: `wj-${id}-1`, runnerName, vmMs: 1 });
    expect(early).toMatchObject({ status: 409, body: { message: 'cannot move from vm-up to ran' } });
    // The gate's move (test/integration/start-gate.test.ts makes it through the real gate).
    expect((await jobMoves(redis, keys(prefix)).move(id, { to: 'started', by: 'host:minipc', why: 'allowed-at-start' })).ok).toBe(true);
    const ended = { kind: 'vm-ended', end: 'ran', vmId: `wj-${id}-1`, runnerName, vmMs: 1234, exitCode: 0, egress: { denied: [] } };
    expect(await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, ended)).toEqual({ status: 200, body: { phase: 'ran' } });
    const rec = await readJobRecord(redis, keys(prefix), id);
    expect(rec).toMatchObject({ phase: 'ran', phaseBy: 'host:minipc', tries: 1, vm: { outcome: 'ran', exitCode: 0, ms: 1234 }, egress: { denied: [] } });
    expect(await moves(id)).toEqual(['queued>minted', 'minted>vm-up', 'vm-up>started', 'started>ran']);
    // The same report again is an illegal move (ran is final): 409, and nothing changes.
    const before = await redis.hgetall(keys(prefix).job(id));
    const again = await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { ...ended, end: 'not-run' });
    expect(again).toMatchObject({ status: 409, body: { error: 'illegal-move' } });
    expect(await redis.hgetall(keys(prefix).job(id))).toEqual(before);
  });

  test('a VM whose runner never ran a job: not-run, its console tail kept, its runner deleted, the attempt free again', async () => {
    const { id, runnerName } = await minted();
    expect(sim.runners().find((r) => r.name === runnerName && r.deletedAt === null)).toBeDefined();
    await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-up', vmId: `wj-${id}-1`, runnerName });
    const r = await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, {
      kind: 'vm-ended', end: 'not-run', reason: 'runner-never-started-a-job', vmId: `wj-${id}-1`, runnerName, vmMs: 50, exitCode: 0, consoleTail: 'cannot reach api.github.com\n',
    });
    expect(r).toEqual({ status: 200, body: { phase: 'not-run' } });
    const rec = await readJobRecord(redis, keys(prefix), id);
    expect(rec).toMatchObject({ phase: 'not-run', phaseWhy: 'runner-never-started-a-job', vm: { outcome: 'not-run', consoleTail: 'cannot reach api.github.com\n' } });
    expect(sim.runners().find((x) => x.name === runnerName)?.deletedAt).not.toBeNull();
    // Any host may take the next try: the other host's mint is not refused as already-minted.
    const next = await call(OTHER_TOKEN, 'POST', '/api/v1/jit', { pool: 'build', workflowJobId: id });
    expect(next.status).toBe(201);
    expect(await moves(id)).toEqual(['queued>minted', 'minted>vm-up', 'vm-up>not-run', 'not-run>minted']);
    // The agent gives up after its tries: failed, with the reason.
    const failed = await call(OTHER_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'failed', reason: 'gave up after 5 attempts', attempts: 5 });
    expect(failed).toEqual({ status: 200, body: { phase: 'failed' } });
  });

  test("a host cannot report on another host's job; an unknown job is 404; a bad token 401; a bad body names its field", async () => {
    const { id, runnerName } = await minted();
    expect(await call(OTHER_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-up', vmId: 'x', runnerName })).toMatchObject({ status: 403, body: { error: 'not-yours' } });
    expect(await call(BUILD_TOKEN, 'POST', '/api/v1/jobs/424242/report', { kind: 'vm-up', vmId: 'x', runnerName })).toMatchObject({ status: 404 });
    expect((await call('not-a-known-token-at-all', 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-up', vmId: 'x', runnerName })).status).toBe(401);
    expect(await call(BUILD_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-ended', end: 'exploded', vmId: 'x', runnerName, vmMs: 1 })).toMatchObject({ status: 400, body: { field: 'end' } });
    expect((await readJobRecord(redis, keys(prefix), id))?.phase).toBe('minted');
  });

  test('giving up on a job no host minted for (the control failed every try): any host serving its pool may say so', async () => {
    const id = await queuedJob();
    const failed = await call(OTHER_TOKEN, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'failed', reason: 'gave up after 5 attempts: control answered 502', attempts: 5 });
    expect(failed).toEqual({ status: 200, body: { phase: 'failed' } });
    expect(await readJobRecord(redis, keys(prefix), id)).toMatchObject({ phase: 'failed', phaseBy: 'host:other' });
    // Only "failed", and only before a mint: nothing else can be said of another host's job.
    const id2 = await queuedJob();
    expect((await call(OTHER_TOKEN, 'POST', `/api/v1/jobs/${id2}/report`, { kind: 'vm-up', vmId: 'x', runnerName: 'y' })).status).toBe(403);
  });

  test('heartbeats: the host is the one its token names; a drained host removes its own', async () => {
    const beat = { slots: 2, busy: 1, vms: [{ vmId: 'wj-1-1', workflowJobId: 1 }], draining: false };
    const answered = await call(BUILD_TOKEN, 'PUT', '/api/v1/hosts/self/heartbeat', beat);
    expect(answered.status).toBe(200);
    // Not drained by the operator (test/integration/dashboard-actions.test.ts drains one).
    expect(answered.body).toEqual({ drain: false });
    const stored = JSON.parse((await redis.get(keys(prefix).host('minipc')))!);
    expect(stored).toMatchObject({ host: 'minipc', role: 'build', pools: ['build'], busy: 1, vms: beat.vms });
    expect(await redis.ttl(keys(prefix).host('minipc'))).toBeGreaterThan(0);
    expect((await call(BUILD_TOKEN, 'PUT', '/api/v1/hosts/self/heartbeat', { ...beat, host: 'other' })).status).toBe(400);
    expect((await call(BUILD_TOKEN, 'DELETE', '/api/v1/hosts/self/heartbeat')).status).toBe(204);
    expect(await redis.exists(keys(prefix).host('minipc'))).toBe(0);
  });
});
