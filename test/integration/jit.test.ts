import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { runSimRunner } from '../../src/sim/runner.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/** `POST /api/v1/jit` against a real control, a real Redis and the GitHub simulator. */
const BUILD_TOKEN = 'build-host-token-0123456789abcdef';
const DEPLOY_TOKEN = 'deploy-host-token-0123456789abcdef';

let sim: Sim;
let control: TestControl;
let redis: Redis;
let prefix: string;

const jit = (token: string, pool: string, workflowJobId: number) =>
  fetch(`${control.url}/api/v1/jit`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ pool, workflowJobId }),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as Record<string, any>, cache: r.headers.get('cache-control') }));

/** Starts a run in the sim and waits until the control has recorded each job as queued. */
async function queuedJobs(run: Parameters<Sim['createRun']>[0]): Promise<number[]> {
  const { jobs } = sim.createRun(run);
  await sim.idle();
  const ids = jobs.map((j) => j.id);
  await expect.poll(async () => (await Promise.all(ids.map((id) => readJobRecord(redis, keys(prefix), id)))).every((r) => r?.state === 'queued')).toBe(true);
  return ids;
}

const liveRunners = () => sim.runners().filter((r) => r.status !== 'deleted');

beforeAll(async () => {
  prefix = testPrefix();
  redis = new Redis(redisUrl());
  sim = await createSim({ appId: 9, installationId: 3 });
  const simUrl = await sim.listen(0, '127.0.0.1');
  control = await startTestControl({
    redisUrl: redisUrl(),
    prefix,
    apiUrl: simUrl,
    appId: 9,
    appKeyPem: sim.appPrivateKeyPem,
    hosts: [
      { name: 'minipc', role: 'build', pools: ['build'], token: BUILD_TOKEN },
      { name: 'cloud', role: 'deploy', pools: ['deploy'], token: DEPLOY_TOKEN },
    ],
  });
  sim.setWebhook({ url: `${control.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  sim.createRepo({ owner: 'acme', name: 'site', visibility: 'private' });
  sim.createRepo({ owner: 'acme', name: 'soon-public', visibility: 'private' });
  sim.createRepo({ owner: 'mallory', name: 'app', visibility: 'private', forkOf: 'acme/app' });
});

afterAll(async () => {
  await control?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
  redis.disconnect();
});

describe('JIT minting', () => {
  test('a build host gets a runner for its pool; the name derives from the job attempt', async () => {
    const [id] = await queuedJobs({ repo: 'acme/app', jobs: [{ name: 'b', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    const r = await jit(BUILD_TOKEN, 'build', id!);
    expect(r.status).toBe(201);
    expect(r.cache).toBe('no-store');
    expect(r.body.runnerName).toBe(`hangar-minipc-${id}-1`);
    expect(typeof r.body.encodedJitConfig).toBe('string');
    const runner = sim.runners().find((x) => x.name === r.body.runnerName);
    expect(runner?.labels).toEqual(expect.arrayContaining(['self-hosted', 'build']));
    const rec = await redis.hgetall(keys(prefix).job(id!));
    expect(await redis.hget(keys(prefix).job(id!), 'mintedRunner')).toBe(r.body.runnerName);
    expect(JSON.stringify(rec)).not.toContain(r.body.encodedJitConfig);
  });

  test('an unknown token gets 401; a malformed body names the field', async () => {
    expect((await jit('not-a-known-token-at-all', 'build', 1)).status).toBe(401);
    const bad = await fetch(`${control.url}/api/v1/jit`, {
      method: 'POST',
      headers: { authorization: `Bearer ${BUILD_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ pool: 'build', workflowJobId: 'x' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ field: 'workflowJobId' });
  });

  test('a build host asking for a deploy pool gets 403 and nothing is minted', async () => {
    const [id] = await queuedJobs({ repo: 'acme/site', jobs: [{ name: 'd', labels: ['self-hosted', 'deploy'], steps: ['true'] }] });
    const before = sim.runners().length;
    const r = await jit(BUILD_TOKEN, 'deploy', id!);
    expect(r).toMatchObject({ status: 403, body: { reason: 'pool-not-served' } });
    expect(sim.runners().length).toBe(before);
    const audit = await redis.xrange(keys(prefix).events, '-', '+');
    expect(audit.some(([, f]) => f.includes('mint-refused') && f.includes('pool-not-served') && f.includes('host:minipc'))).toBe(true);
    // The deploy host may.
    expect((await jit(DEPLOY_TOKEN, 'deploy', id!)).status).toBe(201);
  });

  test('a repository turned public after its job was queued is refused at mint time', async () => {
    const [id] = await queuedJobs({ repo: 'acme/soon-public', jobs: [{ name: 'p', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    sim.setVisibility('acme/soon-public', 'public');
    const before = sim.runners().length;
    const r = await jit(BUILD_TOKEN, 'build', id!);
    expect(r).toMatchObject({ status: 403, body: { reason: 'public-repo' } });
    expect(sim.runners().length).toBe(before);
    expect((await redis.hget(keys(prefix).job(id!), 'mintRefusal'))).toBe('public-repo');
  });

  test('a run from a fork is refused as fork-pr', async () => {
    const [id] = await queuedJobs({
      repo: 'acme/app',
      event: 'pull_request',
      headBranch: 'evil',
      headRepository: 'mallory/app',
      jobs: [{ name: 'f', labels: ['self-hosted', 'build'], steps: ['curl evil'] }],
    });
    const r = await jit(BUILD_TOKEN, 'build', id!);
    expect(r).toMatchObject({ status: 403, body: { reason: 'fork-pr' } });
    // Its run is cancelled, so the next runner minted in acme/app cannot take it.
    expect(sim.job(id!)).toMatchObject({ status: 'completed', conclusion: 'cancelled', runnerName: null });
  });

  test('asking twice for one job replaces the idle runner; a busy one is never doubled', async () => {
    // A repository of its own: a runner takes the oldest matching job of its repository (as on GitHub).
    sim.createRepo({ owner: 'acme', name: 'solo', visibility: 'private' });
    const [id] = await queuedJobs({ repo: 'acme/solo', jobs: [{ name: 'twice', labels: ['self-hosted', 'build'], steps: ['sleep 1'] }] });
    const first = await jit(BUILD_TOKEN, 'build', id!);
    const second = await jit(BUILD_TOKEN, 'build', id!);
    expect(second.status).toBe(201);
    expect(second.body.runnerName).toBe(first.body.runnerName);
    expect(second.body.runnerId).not.toBe(first.body.runnerId);
    const named = sim.runners().filter((r) => r.name === first.body.runnerName);
    expect(named.filter((r) => r.status !== 'deleted')).toHaveLength(1);
    // The runner takes the job: now GitHub says it is no longer queued.
    const ran = runSimRunner(second.body.encodedJitConfig, { pollMs: 50 });
    await expect.poll(() => sim.job(id!).status, { timeout: 10_000 }).toBe('in_progress');
    const third = await jit(BUILD_TOKEN, 'build', id!);
    expect(third.status).toBe(403);
    expect(third.body.reason).toBe('job-not-queued');
    expect((await ran).exitCode).toBe(0);
    expect(liveRunners().some((r) => r.name === first.body.runnerName)).toBe(false);
  });

  test('a runner minted for a newer job takes an older one (GitHub gives the oldest): the older job is owed a runner, so both run', async () => {
    sim.createRepo({ owner: 'acme', name: 'order', visibility: 'private' });
    const [older, newer] = await queuedJobs({
      repo: 'acme/order',
      jobs: [{ name: 'older', labels: ['self-hosted', 'build'], steps: ['echo OLDER'] }, { name: 'newer', labels: ['self-hosted', 'build'], steps: ['echo NEWER'] }],
    });
    // The newer job's webhook came first: its runner is minted first, and GitHub gives it the older job.
    const forNewer = await jit(BUILD_TOKEN, 'build', newer!);
    expect(forNewer.status).toBe(201);
    expect((await runSimRunner(forNewer.body.encodedJitConfig, { pollMs: 50 })).exitCode).toBe(0);
    expect(sim.job(older!)).toMatchObject({ status: 'completed', runnerName: `hangar-minipc-${newer}-1` });
    expect(sim.job(newer!).status).toBe('queued');
    // The older job's turn: GitHub says it is done, but on a runner minted for another job. Minted anyway.
    const forOlder = await jit(BUILD_TOKEN, 'build', older!);
    expect(forOlder.status).toBe(201);
    expect(forOlder.body.runnerName).toBe(`hangar-minipc-${older}-1`);
    expect((await runSimRunner(forOlder.body.encodedJitConfig, { pollMs: 50 })).exitCode).toBe(0);
    expect(sim.job(newer!)).toMatchObject({ status: 'completed', conclusion: 'success', runnerName: `hangar-minipc-${older}-1` });
    // A queue entry processed again (an agent died): each job has had the one runner it is owed.
    for (const id of [older!, newer!]) {
      const again = await jit(BUILD_TOKEN, 'build', id);
      expect(again.status, `job ${id}`).toBe(403);
      expect(again.body.reason).toBe('job-not-queued');
    }
  });

  test('mints close together in one repository list its open runs once (policy.sweepWindowSeconds), and read no run the vetter read', async () => {
    sim.createRepo({ owner: 'acme', name: 'batch', visibility: 'private' });
    sim.resetCalls();
    const ids: number[] = [];
    for (let i = 0; i < 3; i++) ids.push(...(await queuedJobs({ repo: 'acme/batch', jobs: [{ name: `n${i}`, labels: ['self-hosted', 'build'], steps: ['true'] }] })));
    const RUN = 'GET /repos/:owner/:repo/actions/runs/:run_id';
    // The vetter read each new run once, as its webhook came in.
    await expect.poll(() => sim.calls()[RUN]?.[200] ?? 0).toBe(3);
    sim.resetCalls();
    for (const id of ids) expect((await jit(BUILD_TOKEN, 'build', id)).status).toBe(201);
    const calls = sim.calls();
    // One sweep (queued and in-progress runs) for three mints; each mint reads its repository and
    // its job, and mints its runner; no run is read again.
    expect(calls).toEqual({
      'GET /repos/:owner/:repo': { 200: 3 },
      'GET /repos/:owner/:repo/actions/jobs/:job_id': { 200: 3 },
      'GET /repos/:owner/:repo/actions/runs': { 200: 2 },
      'POST /repos/:owner/:repo/actions/runners/generate-jitconfig': { 201: 3 },
    });
  });

  test('metrics count requests by result; no JIT config is in Redis or the metrics', async () => {
    const text = await (await fetch(`${control.url}/metrics`)).text();
    expect(text).toMatch(/hangar_jit_requests_total\{result="minted",reason=""\} [4-9]/);
    expect(text).toMatch(/hangar_jit_requests_total\{result="refused",reason="fork-pr"\} 1/);
    const [, found] = await redis.scan('0', 'MATCH', `${prefix}:*`, 'COUNT', 10000);
    let dump = '';
    for (const key of found) {
      const type = await redis.type(key);
      if (type === 'hash') dump += JSON.stringify(await redis.hgetall(key));
      else if (type === 'string') dump += await redis.get(key);
      else if (type === 'stream') dump += JSON.stringify(await redis.xrange(key, '-', '+'));
    }
    expect(dump.length).toBeGreaterThan(100);
    for (const t of [BUILD_TOKEN, DEPLOY_TOKEN, 'RUNNER_TOKEN', sim.installationToken()]) expect(dump).not.toContain(t);
  });
});
