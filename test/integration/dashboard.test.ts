import { readFileSync } from 'node:fs';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { JobDetail, Overview } from '../../src/dashboard/api-types.js';
import type { FastifyRequest } from 'fastify';
import { DashboardAuth } from '../../src/dashboard/auth.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { jobMoves } from '../../src/jobs/transition.js';
import { keys } from '../../src/queue/keys.js';
import { OPERATOR_TOKEN, TEST_SECRET, writeTestConfig } from '../helpers/control.js';
import { beat, BUILD_TOKEN, DEPLOY_TOKEN, http, openStream, recordedJobs, runThrough, startDashboardRig, type DashboardRig } from '../helpers/dashboard.js';
import { dumpPrefix, redisUrl } from '../helpers/redis.js';

/**
 * The dashboard's server against a real control, Redis and the sim: every overview section
 * from jobs fed through the intake and the agents' API, the SSE stream, the job detail, the
 * login and its defences, and `hangar status`.
 */
let rig: DashboardRig;
let scheduled: number;
let failedOnGitHub: number;
let forkJob: number;

const overview = async (): Promise<Overview> => (await http(`${rig.dash}/api/v1/overview`)).body as Overview;

beforeAll(async () => {
  rig = await startDashboardRig();
  expect((await beat(rig, BUILD_TOKEN, { slots: 2 })).status).toBe(200);
}, 30_000);

afterAll(async () => rig?.close());

describe('the overview and the stream', () => {
  test('a scheduled job from queued to done arrives on the stream, move by move, without asking again', async () => {
    const stream = await openStream(`${rig.dash}/api/v1/stream`, { authorization: `Bearer ${OPERATOR_TOKEN}` });
    try {
      await expect.poll(() => stream.messages[0]?.event).toBe('overview');
      scheduled = (await recordedJobs(rig, { repo: 'acme/app', event: 'schedule', workflowName: 'nightly', jobs: [{ name: 'build-and-boot', labels: ['self-hosted', 'build'], steps: ['true'] }] }))[0]!;
      await runThrough(rig, scheduled!);
      const phasesSeen = () => stream.messages.filter((m) => m.event === 'job' && m.data.workflowJobId === scheduled).map((m) => m.data.phase);
      await expect.poll(() => phasesSeen().at(-1), { timeout: 10_000 }).toBe('ran');
      // Every phase it passed, in order (repeats are other fields changing: GitHub's states).
      const distinct = phasesSeen().filter((p, i, a) => p !== a[i - 1]);
      expect(distinct).toEqual(['queued', 'minted', 'vm-up', 'started', 'ran']);
      await expect.poll(() => stream.messages.filter((m) => m.event === 'job' && m.data.workflowJobId === scheduled).at(-1)?.data.result, { timeout: 10_000 }).toBe('succeeded');
      // The batch and the savings changed with it.
      await expect.poll(() => stream.messages.some((m) => m.event === 'batch' && m.data?.jobs.some((j: { workflowJobId: number }) => j.workflowJobId === scheduled))).toBe(true);
      await expect.poll(() => stream.messages.some((m) => m.event === 'savings' && m.data.jobs >= 1)).toBe(true);
      const ids = stream.messages.map((m) => Number(m.id));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    } finally {
      stream.close();
    }
  }, 30_000);

  test('every section of the overview has the fed jobs', async () => {
    const o = await overview();
    const hosts = Object.fromEntries(o.hosts.map((h) => [h.name, h]));
    expect(hosts.minipc).toMatchObject({ role: 'build', pools: ['build'], up: true, drained: false, slots: { used: 0, total: 2 }, driver: 'qemu-microvm', accelerator: 'tcg' });
    expect(hosts.cloud).toMatchObject({ role: 'deploy', up: false, slots: null, lastBeatAt: null });

    const job = o.jobs.find((j) => j.workflowJobId === scheduled)!;
    expect(job).toMatchObject({ repo: 'acme/app', workflow: 'nightly', jobName: 'build-and-boot', event: 'schedule', pool: 'build', host: 'minipc', vm: `wj-${scheduled}-1`, phase: 'ran', state: 'completed', conclusion: 'success', result: 'succeeded' });
    const t = job.times;
    expect([t.queued, t.minted, t.vmUp, t.started, t.finished].every((x) => typeof x === 'number')).toBe(true);
    expect(t.queued! <= t.minted! && t.minted! <= t.vmUp! && t.vmUp! <= t.started! && t.started! <= t.finished!).toBe(true);

    expect(o.batch).toMatchObject({ total: 1, done: 1, failed: 0, running: 0, waiting: 0 });
    expect(o.batch!.runIds).toEqual([rig.sim.job(scheduled).runId]);
    expect(o.batch!.makespanMs).toBeGreaterThanOrEqual(0);
    expect(o.batch!.utilisation.some((p) => p.busy === 1 && p.total === 2)).toBe(true);

    expect(o.savings).toMatchObject({ plan: 'free', pricePerMinute: 0.006, includedMinutes: 2000, jobs: 1, minutes: 1, gross: 0.006, included: 0.006, saved: 0, platformCharge: 0.002, net: -0.002 });
    // The ledger outlives the records: the month's hash holds the job.
    const month = new Date().toISOString().slice(0, 7);
    expect(await rig.redis.hget(keys(rig.prefix).savingsLedger(month), String(scheduled))).not.toBeNull();

    const pool = o.pools.find((p) => p.name === 'build')!;
    expect(pool).toMatchObject({ labels: ['self-hosted', 'linux', 'x64', 'build'], deploy: false, hosts: ['minipc', 'cloud'] });
  });

  test('a waiting job shows in its pool as the oldest, with why it waits', async () => {
    // Every live host of the pool is busy: slots-full.
    expect((await beat(rig, BUILD_TOKEN, { slots: 2, busy: 2 })).status).toBe(200);
    const [waiting] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'waits', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    await expect.poll(async () => (await overview()).pools.find((p) => p.name === 'build')?.oldestWaiting, { timeout: 10_000 })
      .toMatchObject({ workflowJobId: waiting, why: 'slots-full' });
    const o = await overview();
    expect(o.pools.find((p) => p.name === 'build')!.waiting).toBeGreaterThanOrEqual(1);
    expect(o.jobs.find((j) => j.workflowJobId === waiting)).toMatchObject({ phase: 'queued', result: 'waiting' });
    expect(o.hosts.find((h) => h.name === 'minipc')?.slots).toEqual({ used: 2, total: 2 });
    expect((await beat(rig, BUILD_TOKEN, { slots: 2, busy: 0 })).status).toBe(200);
    // The overview's sections are kept as text between changes: a beat just sent shows in the next one, asked at once.
    const [a, b] = await Promise.all([overview(), overview()]);
    for (const x of [a, b]) expect(x.hosts.find((h) => h.name === 'minipc')?.slots).toEqual({ used: 0, total: 2 });
    // Cancelled so the next tests start with an empty queue.
    rig.sim.cancelJob(waiting!);
    await rig.sim.idle();
  });

  test('a fork PR refused by the vetter is in refusals with where and why; a refusal at intake too', async () => {
    forkJob = (await recordedJobs(rig, { repo: 'acme/app', event: 'pull_request', headBranch: 'feature', headRepository: 'mallory/app', jobs: [{ name: 'pwn', labels: ['self-hosted', 'build'], steps: ['true'] }] }, (r) => r.vetRefusal === 'fork-pr'))[0]!;
    const d = await import('../helpers/payloads.js');
    const p = d.jobPayload({ id: 777_001, action: 'queued', repo: 'other/thing' });
    const sent = d.delivery(TEST_SECRET, p);
    expect((await fetch(`${rig.control.webhookUrl}/webhooks/github`, { method: 'POST', headers: sent.headers, body: sent.body })).status).toBe(202);
    await expect.poll(async () => (await overview()).refusals.map((r) => `${r.workflowJobId} ${r.where} ${r.why}`), { timeout: 10_000 })
      .toEqual(expect.arrayContaining([`${forkJob} vet fork-pr`, '777001 intake repo-not-allowed']));
    const fork = (await overview()).refusals.find((r) => r.workflowJobId === forkJob)!;
    expect(fork).toMatchObject({ repo: 'acme/app', jobName: 'pwn', headBranch: 'feature' });
    expect((await overview()).jobs.find((j) => j.workflowJobId === forkJob)?.result).toBe('refused');
    // Refused in its record before its run was cancelled: the cancel's own webhook (completed,
    // cancelled) can only find it refused, so the refusal never turns into a plain "cancelled".
    const detail = (await http(`${rig.dash}/api/v1/jobs/${forkJob}`)).body as JobDetail;
    const refusedAt = detail.events.find((e) => e.type === 'move' && e.fields.to === 'refused')?.at;
    const cancelAt = rig.sim.callLog().filter((c) => c.call === 'POST /repos/:owner/:repo/actions/runs/:run_id/cancel').at(-1)?.at;
    expect(refusedAt).toBeDefined();
    expect(cancelAt).toBeDefined();
    expect(refusedAt!).toBeLessThanOrEqual(cancelAt!);
    // The cancel's webhook may come before the cancel's own answer: it finds the job refused already.
    const order = detail.events.map((e) => (e.type === 'move' ? `move:${e.fields.to}` : e.type === 'github' ? `github:${e.fields.state}` : e.type));
    expect(order.indexOf('move:refused')).toBeLessThan(order.indexOf('github:completed'));
    expect(order).not.toContain('move:cancelled');
    expect(await readJobRecord(rig.redis, keys(rig.prefix), forkJob)).toMatchObject({ phase: 'refused', vetRefusal: 'fork-pr', runCancelled: 'cancelled' });
  });

  test('a move shows in the next overview and detail: what the read model keeps between changes follows it', async () => {
    const [id] = await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'moves', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    const build = (o: Overview) => o.pools.find((p) => p.name === 'build')!;
    await expect.poll(async () => (await overview()).jobs.find((j) => j.workflowJobId === id)?.phase, { timeout: 10_000 }).toBe('queued');
    const before = await overview();
    expect(build(before).waiting).toBeGreaterThanOrEqual(1);
    expect((await jobMoves(rig.redis, keys(rig.prefix)).move(id!, { to: 'refused', by: 'test', why: 'fork-pr', fields: { mintRefusal: 'fork-pr' } })).ok).toBe(true);
    // The detail reads what the model has not followed yet from the stream: the move is there at once.
    const detail = (await http(`${rig.dash}/api/v1/jobs/${id}`)).body as JobDetail;
    expect(detail.events.map((e) => e.type)).toEqual(['decision', 'github', 'move']);
    expect(detail.events.at(-1)!.fields).toMatchObject({ from: 'queued', to: 'refused', why: 'fork-pr' });
    await expect.poll(async () => (await overview()).refusals[0]?.workflowJobId, { timeout: 10_000 }).toBe(id);
    const after = await overview();
    expect(after.refusals[0]).toMatchObject({ where: 'mint', why: 'fork-pr' });
    expect(after.jobs.find((j) => j.workflowJobId === id)).toMatchObject({ phase: 'refused', result: 'refused' });
    expect(build(after).waiting).toBe(build(before).waiting - 1);
    expect(((await http(`${rig.dash}/api/v1/jobs/${id}`)).body as JobDetail).events).toEqual(detail.events);
    // GitHub still holds it queued: cancelled, so the next tests' runners are not handed it.
    rig.sim.cancelJob(id!);
    await rig.sim.idle();
  });

  test('the job detail: phases with times, the VM, a failed job\'s console tail, its events', async () => {
    failedOnGitHub = (await recordedJobs(rig, { repo: 'acme/app', jobs: [{ name: 'flaky', labels: ['self-hosted', 'build'], steps: ['exit 1'] }] }))[0]!;
    await runThrough(rig, failedOnGitHub!, { exit: 1 });
    const r = await http(`${rig.dash}/api/v1/jobs/${scheduled}`);
    expect(r.status).toBe(200);
    const d = r.body as JobDetail;
    expect(Object.keys(d.phases)).toEqual(expect.arrayContaining(['queued', 'minted', 'vm-up', 'started', 'ran']));
    expect(d).toMatchObject({ vmEnd: { outcome: 'ran', exitCode: 0, ms: 1500 }, egress: { denied: [] }, refusal: null, actions: { cancel: false, retry: false } });
    expect(d.events.map((e) => e.type)).toEqual(expect.arrayContaining(['decision', 'move', 'github']));
    expect(d.events.filter((e) => e.type === 'move').map((e) => e.fields.to)).toEqual(['minted', 'vm-up', 'started', 'ran']);
    await expect.poll(async () => ((await http(`${rig.dash}/api/v1/jobs/${failedOnGitHub}`)).body as JobDetail).result, { timeout: 10_000 }).toBe('failed');
    expect(((await http(`${rig.dash}/api/v1/jobs/${failedOnGitHub}`)).body as JobDetail).actions).toEqual({ cancel: false, retry: true });
    expect((await http(`${rig.dash}/api/v1/jobs/999999999`)).status).toBe(404);
    expect((await http(`${rig.dash}/api/v1/jobs/abc`)).body).toMatchObject({ error: 'bad-request', field: 'id' });
  }, 30_000);

  test('the overview\'s JSON, from kept sections, is the overview the stream sends, after every kind of change', async () => {
    const same = async () => {
      const api = await overview();
      const stream = await openStream(`${rig.dash}/api/v1/stream`, { authorization: `Bearer ${OPERATOR_TOKEN}` });
      try {
        await expect.poll(() => stream.messages.length, { timeout: 5_000 }).toBeGreaterThan(0);
        const first = stream.messages[0]!;
        expect(first.event).toBe('overview');
        expect({ ...(first.data as Overview), generatedAt: 0 }).toEqual({ ...api, generatedAt: 0 });
      } finally {
        stream.close();
      }
    };
    await same();
    // A host's change, a job's, and the ledger's (a scheduled job run to the end).
    expect((await beat(rig, BUILD_TOKEN, { slots: 2, busy: 1 })).status).toBe(200);
    await same();
    const [id] = await recordedJobs(rig, { repo: 'acme/app', event: 'schedule', workflowName: 'nightly', jobs: [{ name: 'again', labels: ['self-hosted', 'build'], steps: ['true'] }] });
    await runThrough(rig, id!);
    await expect.poll(async () => (await overview()).jobs.find((j) => j.workflowJobId === id)?.result, { timeout: 10_000 }).toBe('succeeded');
    expect((await beat(rig, BUILD_TOKEN, { slots: 2, busy: 0 })).status).toBe(200);
    await same();
  });
});

describe('who may look', () => {
  test('without a token: the API answers 401 JSON, the page sends to /login; a wrong token is refused', async () => {
    for (const path of ['/api/v1/overview', '/api/v1/stream', '/api/v1/session', `/api/v1/jobs/${scheduled}`]) {
      const r = await http(`${rig.dash}${path}`, { token: null });
      expect(r.status, path).toBe(401);
      expect(r.body).toMatchObject({ error: 'unauthorized' });
    }
    const page = await http(`${rig.dash}/`, { token: null });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/login');
    expect((await http(`${rig.dash}/api/v1/overview`, { token: 'not-the-operator-token' })).status).toBe(401);
    expect((await http(`${rig.dash}/api/v1/overview`, { token: BUILD_TOKEN })).status).toBe(401);
    expect((await http(`${rig.dash}/api/v1/hosts/minipc/drain`, { method: 'POST', token: null })).status).toBe(401);
  });

  test('every answer carries the strict CSP, nosniff and no referrer; the API is not cached', async () => {
    for (const path of ['/login', '/api/v1/overview', '/healthz']) {
      const r = await http(`${rig.dash}${path}`);
      expect(r.headers.get('content-security-policy'), path).toBe("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'");
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
    }
    expect((await http(`${rig.dash}/api/v1/overview`)).headers.get('cache-control')).toBe('no-store');
    const unauthorised = await http(`${rig.dash}/api/v1/overview`, { token: null });
    expect(unauthorised.headers.get('content-security-policy')).toContain("default-src 'none'");
  });

  test('a cookie session: login sets it, the API takes it, an action needs its CSRF token, logout ends it', async () => {
    const form = await http(`${rig.dash}/login`, { token: null });
    expect(form.status).toBe(200);
    expect(form.text).toContain('<form method="post" action="/login">');
    expect(form.text).not.toContain('<script');
    const wrong = await http(`${rig.dash}/login`, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=nope-nope-nope' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    expect(wrong.text).not.toContain('nope-nope-nope');

    const ok = await http(`${rig.dash}/login`, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(OPERATOR_TOKEN)}` });
    expect(ok.status).toBe(303);
    expect(ok.headers.get('location')).toBe('/');
    const setCookie = ok.headers.get('set-cookie')!;
    expect(setCookie).toMatch(/^hangar_session=[A-Za-z0-9_-]{40,}; Max-Age=\d+; HttpOnly; SameSite=Strict; Path=\/$/);
    const cookie = setCookie.split(';')[0]!;
    const id = cookie.split('=')[1]!;
    // Only the id's hash is in Redis.
    expect(await dumpPrefix(redisUrl(), rig.prefix)).not.toContain(id);

    expect((await http(`${rig.dash}/api/v1/overview`, { cookie })).status).toBe(200);
    expect((await http(`${rig.dash}/`, { cookie })).status).toBe(200);
    const session = (await http(`${rig.dash}/api/v1/session`, { cookie })).body;
    expect(session).toMatchObject({ via: 'cookie' });
    expect(session.csrf.length).toBeGreaterThan(20);
    expect((await http(`${rig.dash}/api/v1/session`)).body).toEqual({ csrf: '', via: 'bearer', expiresAt: null });

    // An action without the CSRF token, or with a wrong one, is refused and changes nothing.
    for (const csrf of [undefined, 'wrong-csrf-token']) {
      const r = await http(`${rig.dash}/api/v1/hosts/minipc/drain`, { method: 'POST', cookie, ...(csrf ? { csrf } : {}) });
      expect(r.status).toBe(403);
      expect(r.body).toMatchObject({ error: 'csrf' });
    }
    expect(await rig.redis.exists(keys(rig.prefix).hostDrain('minipc'))).toBe(0);
    const drained = await http(`${rig.dash}/api/v1/hosts/minipc/drain`, { method: 'POST', cookie, csrf: session.csrf, json: { why: 'csrf test' } });
    expect(drained.status).toBe(200);
    const undrained = await http(`${rig.dash}/api/v1/hosts/minipc/undrain`, { method: 'POST', cookie, csrf: session.csrf });
    expect(undrained.body).toMatchObject({ ok: true, drained: false });

    const out = await http(`${rig.dash}/logout`, { method: 'POST', cookie });
    expect(out.status).toBe(303);
    expect(out.headers.get('set-cookie')).toMatch(/^hangar_session=; Max-Age=0/);
    expect((await http(`${rig.dash}/api/v1/overview`, { cookie })).status).toBe(401);
  });

  test('a session holds only under the token it logged in with: a new token ends every session', async () => {
    const ok = await http(`${rig.dash}/login`, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${encodeURIComponent(OPERATOR_TOKEN)}` });
    const cookie = ok.headers.get('set-cookie')!.split(';')[0]!;
    const asked = { headers: { cookie } } as unknown as FastifyRequest;
    const auth = (token: string) => new DashboardAuth({ redis: rig.redis, keys: keys(rig.prefix), token, sessionSeconds: 60 });
    expect((await auth(OPERATOR_TOKEN).caller(asked)).via).toBe('cookie');
    // The control restarted with the token file replaced: the same cookie is no session.
    expect((await auth('a-rotated-operator-token-0123456789').caller(asked)).via).toBe('none');
    expect(await dumpPrefix(redisUrl(), rig.prefix)).not.toContain(OPERATOR_TOKEN);
  });

  test('no secret in any answer: operator and host tokens, webhook secret, App key, JIT configs', async () => {
    const answers = [
      (await http(`${rig.dash}/api/v1/overview`)).text,
      ...(await Promise.all([scheduled, failedOnGitHub, forkJob].map(async (id) => (await http(`${rig.dash}/api/v1/jobs/${id}`)).text))),
      (await http(`${rig.dash}/login`, { token: null })).text,
      (await http(`${rig.dash}/api/v1/session`)).text,
    ].join('\n');
    const pem = readFileSync(`${rig.control.config.github.privateKeyFile}`, 'utf8').split('\n')[1]!;
    for (const secret of [OPERATOR_TOKEN, BUILD_TOKEN, DEPLOY_TOKEN, TEST_SECRET, pem]) expect(answers).not.toContain(secret);
    expect(answers).not.toMatch(/encodedJitConfig|encoded_jit_config/);
  });
});

describe('hangar status', () => {
  test('--json equals /api/v1/overview (but for generatedAt); the columns name every section; clear errors', async () => {
    const { file } = writeTestConfig({ redisUrl: redisUrl(), prefix: rig.prefix, dashboard: '{listen: "127.0.0.1:0"}' });
    const hangar = (args: string[]) => execa('node', ['dist/main/cli.js', 'status', '--config', file, ...args], { reject: false, timeout: 20_000 });
    const [json, api] = await Promise.all([hangar(['--json', '--url', rig.dash]), overview()]);
    expect(json.stderr).toBe('');
    expect(json.exitCode).toBe(0);
    const got = JSON.parse(json.stdout) as Overview;
    expect({ ...got, generatedAt: 0 }).toEqual({ ...api, generatedAt: 0 });

    const plain = await hangar(['--url', rig.dash]);
    expect(plain.exitCode).toBe(0);
    for (const heading of ['HOSTS', 'POOLS', 'JOBS', 'REFUSALS', 'NIGHTLY BATCH', 'SAVINGS']) expect(plain.stdout).toContain(heading);
    expect(plain.stdout).toMatch(/minipc\s+build\s+up\s+0\/2/);
    expect(plain.stdout).toContain('fork-pr');

    // A port nothing listens on.
    const { createServer } = await import('node:net');
    const free = await new Promise<number>((res) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const port = (s.address() as { port: number }).port;
        s.close(() => res(port));
      });
    });
    const away = await hangar(['--url', `http://127.0.0.1:${free}`]);
    expect(away.exitCode).toBe(1);
    expect(away.stderr).toContain(`hangar: the control's dashboard at http://127.0.0.1:${free} did not answer (ECONNREFUSED)`);
    const other = writeTestConfig({ redisUrl: redisUrl(), prefix: rig.prefix, dashboard: '{listen: "127.0.0.1:0"}' });
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${other.dir}/operator-token`, 'a-token-that-is-not-the-operators');
    const refused = await execa('node', ['dist/main/cli.js', 'status', '--config', other.file, '--url', rig.dash], { reject: false, timeout: 20_000 });
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toContain('refused the operator token in dashboard.tokenFile');
    expect(refused.stderr).not.toContain('a-token-that-is-not-the-operators');
  }, 60_000);
});

// Last: it holds this address back for a minute.
describe('guessing', () => {
  test('failed logins are limited per address', async () => {
    const fails: number[] = [];
    for (let i = 0; i < 12; i++) {
      fails.push((await http(`${rig.dash}/login`, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=guess-${i}` })).status);
    }
    // Ten failures a minute (the wrong tokens of the tests above count too), then 429 for every try.
    const first = fails.indexOf(429);
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThanOrEqual(10);
    expect(fails.slice(0, first).every((s) => s === 401)).toBe(true);
    expect(fails.slice(first).every((s) => s === 429)).toBe(true);
    // The right token is refused too while the address is held back.
    const held = await http(`${rig.dash}/login`, { method: 'POST', token: null, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `token=${OPERATOR_TOKEN}` });
    expect(held.status).toBe(429);
    expect(Number(held.headers.get('retry-after'))).toBeGreaterThan(0);
    // The bearer API is held back for that address too (a guessed token is a failed login).
    expect((await http(`${rig.dash}/api/v1/overview`)).status).toBe(429);
  });
});
