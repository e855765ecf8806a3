import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { installationIdOf } from '../../src/config/installation-id.js';
import { createGitHubClient } from '../../src/github/index.js';
import { eventsOfJob, readEvents } from '../../src/jobs/events.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The runners and hosts loops against a real control, Redis and the sim: what this installation
 * named and no live VM holds is deleted; what it did not name — 100 runners registered by hand,
 * 20 of another installation with Hangar-shaped names — is never touched; a host gone quiet
 * gives its waiting jobs back, and another host may then mint for them.
 */
const MINIPC = 'minipc-host-token-0123456789abcdef';
const SPARE = 'spare-host-token-0123456789abcdef0';
const hosts = [
  { name: 'minipc', role: 'build' as const, pools: ['build'], token: MINIPC },
  { name: 'spare', role: 'build' as const, pools: ['build'], token: SPARE },
];
const BUILD = ['self-hosted', 'linux', 'x64', 'build'];

let sim: Sim;
let redis: Redis;
let c: TestControl;
let prefix: string;

beforeAll(async () => {
  redis = new Redis(redisUrl());
  prefix = testPrefix();
  sim = await createSim({ appId: 9, installationId: 3 });
  const apiUrl = await sim.listen(0, '127.0.0.1');
  c = await startTestControl({
    redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem, hosts, cancelRefusedRuns: false,
    // Long intervals: the test drives passes itself (runOnce), after the start-up pass.
    reconcile: '{enabled: true, runnersIntervalSeconds: 3600, queuedRunsIntervalSeconds: 3600, deliveriesIntervalSeconds: 3600, runnerGraceSeconds: 3, idleVmSeconds: 5}',
  });
  sim.setWebhook({ url: `${c.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
});

afterAll(async () => {
  await c?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
  redis.disconnect();
});

const api = (path: string, token: string, method: string, body: unknown) =>
  fetch(`${c.url}${path}`, { method, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

async function queuedJobs(n: number): Promise<number[]> {
  const ids = Array.from({ length: n }, () => sim.createRun({ repo: 'acme/app', jobs: [{ name: 'b', labels: BUILD, steps: ['true'] }] }).jobs[0]!.id);
  await sim.idle();
  await expect.poll(async () => (await Promise.all(ids.map((id) => readJobRecord(redis, keys(prefix), id)))).every((r) => r?.phase === 'queued')).toBe(true);
  return ids;
}

async function mint(token: string, id: number): Promise<string> {
  const res = await api('/api/v1/jit', token, 'POST', { pool: 'build', workflowJobId: id });
  const body = (await res.json()) as { runnerName: string };
  expect(res.status).toBe(201);
  return body.runnerName;
}

const heartbeat = (token: string, vms: { vmId: string; workflowJobId: number }[]) =>
  api('/api/v1/hosts/self/heartbeat', token, 'PUT', { slots: 4, busy: vms.length, vms, draining: false });

describe('reconcile: runners', () => {
  test('only this installation\'s runners are deleted: orphans and idle VMs; 120 runners it did not name stay', async () => {
    const github = createGitHubClient({ apiUrl: c.config.github.apiUrl, appId: 9, privateKey: sim.appPrivateKeyPem, throttle: { writeSpacingMs: 0 } });
    const scope = { scope: 'repo' as const, owner: 'acme', repo: 'app' };
    for (let i = 0; i < 100; i++) await github.mintJitConfig({ ...scope, name: `ci-box-${i}`, labels: BUILD, runnerGroupId: 1 });
    // Another Hangar in the same organization: names shaped like ours, its own label.
    for (let i = 0; i < 20; i++) await github.mintJitConfig({ ...scope, name: `hangar-minipc-${900_000 + i}-1`, labels: [...BUILD, 'hangar-id-otherinstall'], runnerGroupId: 1 });
    // One made by hand with a Hangar-like name and no label at all.
    await github.mintJitConfig({ ...scope, name: 'hangar-minipc-123456-1', labels: BUILD, runnerGroupId: 1 });

    const [idle, orphan] = await queuedJobs(2);
    const idleRunner = await mint(MINIPC, idle!);
    const orphanRunner = await mint(MINIPC, orphan!);
    const ours = (await github.listRunners(scope)).filter((r) => r.labels.includes(`hangar-id-${installationIdOf(c.config)}`));
    expect(ours.map((r) => r.name).sort()).toEqual([idleRunner, orphanRunner].sort());

    // Young: both within the grace, one held by a live VM. Nothing to do yet.
    await heartbeat(MINIPC, [{ vmId: `wj-${idle}-1`, workflowJobId: idle! }]);
    const early = await c.reconciler!.runOnce({ dryRun: true });
    expect(early!.find((r) => r.loop === 'runners')!.actions).toEqual([]);

    // Past the grace (3 s) the VM-less one is an orphan; past the idle limit (5 s) the other is idle.
    await new Promise((r) => setTimeout(r, 5_500));
    await heartbeat(MINIPC, [{ vmId: `wj-${idle}-1`, workflowJobId: idle! }]);
    const dry = await c.reconciler!.runOnce({ dryRun: true });
    const planned = dry!.find((r) => r.loop === 'runners')!.actions;
    expect(planned).toHaveLength(2);
    expect(planned.find((a) => a.startsWith('delete-idle'))).toContain(idleRunner);
    expect(planned.find((a) => a.startsWith('delete-orphan'))).toContain(orphanRunner);
    expect((await github.listRunners(scope)).length).toBe(123);

    const done = await c.reconciler!.runOnce({ dryRun: false });
    expect(done!.find((r) => r.loop === 'runners')!.applied).toMatchObject({ 'delete-orphan': 1, 'delete-idle': 1, busy: 0 });
    const left = (await github.listRunners(scope)).map((r) => r.name);
    expect(left).toHaveLength(121);
    expect(left.filter((n) => n.startsWith('ci-box-'))).toHaveLength(100);
    expect(left.filter((n) => n.startsWith('hangar-minipc-9'))).toHaveLength(20);
    expect(left).toContain('hangar-minipc-123456-1');
    expect(left).not.toContain(idleRunner);
    expect(left).not.toContain(orphanRunner);
    const notes = (await eventsOfJob(redis, keys(prefix), idle!)).filter((e) => e.type === 'note').map((e) => e.fields.what);
    expect(notes).toContain('idle-vm-runner-deleted');

    // A second pass finds nothing more: what it did not name it never touches.
    const again = await c.reconciler!.runOnce({ dryRun: false });
    expect(again!.find((r) => r.loop === 'runners')!.actions).toEqual([]);
    expect((await github.listRunners(scope)).length).toBe(121);
  });
});

describe('reconcile: hosts', () => {
  test('a host gone quiet gives back the jobs its runners never started; another host then mints them', async () => {
    const [job] = await queuedJobs(1);
    const runner = await mint(SPARE, job!);
    await heartbeat(MINIPC, []);
    // spare never sends a heartbeat: it is down. (The busy/started case is the plan's table.)
    // Within the grace (3 s here: room for a loaded machine between the mint and this look) its
    // job stays with it: a host may be restarting.
    expect((await c.reconciler!.runOnce({ dryRun: true, only: ['hosts'] }))![0]!.actions.filter((a) => a.startsWith('return'))).toEqual([]);
    await new Promise((r) => setTimeout(r, 3_100));
    const pass = await c.reconciler!.runOnce({ dryRun: false });
    const hostsPass = pass!.find((r) => r.loop === 'hosts')!;
    expect(hostsPass.actions).toContain(`return job ${job} to the queue (host spare down, runner ${runner})`);
    // Down was said once, at the first pass that saw spare silent (here: the control's start-up pass).
    const downs = (await readEvents(redis, keys(prefix))).filter((e) => e.type === 'note' && e.fields.what === 'host-down');
    expect(downs.filter((e) => e.fields.why === 'spare')).toHaveLength(1);
    const record = await readJobRecord(redis, keys(prefix), job!);
    expect(record).toMatchObject({ phase: 'lost', phaseBy: 'reconcile', phaseWhy: 'host-down' });
    expect(sim.runners().find((r) => r.name === runner)?.status).toBe('deleted');
    // The claim is free: minipc may mint now, and gets a runner of its own.
    const second = await mint(MINIPC, job!);
    expect(second).toBe(`hangar-minipc-${job}-1`);
    expect((await readJobRecord(redis, keys(prefix), job!))!.phase).toBe('minted');
    // Said once: the next pass does not repeat "down".
    const next = await c.reconciler!.runOnce({ dryRun: true });
    expect(next!.find((r) => r.loop === 'hosts')!.actions.filter((a) => a.startsWith('host-down'))).toEqual([]);
  });
});

describe('reconcile: fencing', () => {
  test('a move made for a leader that no longer leads changes nothing', async () => {
    const [job] = await queuedJobs(1);
    const k = keys(prefix);
    const lock = c.reconciler!.lock;
    const fence = await lock.acquire();
    expect(fence).not.toBeNull();
    // Another replica takes over (the lock lapsed while this one was paused).
    await redis.set(k.leader, `${fence!.token + 1}|other`);
    const { jobMoves } = await import('../../src/jobs/transition.js');
    const moved = await jobMoves(c.redis, k).move(job!, { to: 'failed', by: 'reconcile', why: 'test', fence: fence! });
    expect(moved).toEqual({ ok: false, reason: 'fenced' });
    expect((await readJobRecord(redis, k, job!))!.phase).toBe('queued');
    expect(await jobMoves(c.redis, k).note(job!, { by: 'reconcile', what: 'x', fence: fence! })).toBe(false);
    expect(await c.reconciler!.runOnce({ dryRun: false })).toBeNull();
    await redis.del(k.leader);
  });
});
