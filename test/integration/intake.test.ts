import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { queueJobId } from '../../src/queue/keys.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { delivery, examplePayloads, jobPayload, sign, type Delivery } from '../helpers/payloads.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

let control: TestControl;
let prefix: string;
let redis: Redis;

const post = (d: { body: string | Uint8Array; headers: Record<string, string> }, url = control.webhookUrl!) =>
  fetch(`${url}/webhooks/github`, { method: 'POST', headers: d.headers, body: d.body });

/** Waits until the outbox relay has applied everything written so far. */
async function settled(): Promise<void> {
  const k = keys(prefix);
  for (let i = 0; i < 200; i++) {
    const len = await redis.xlen(k.outbox);
    if (len === 0) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('outbox did not drain');
}

async function queueEntries(pool = 'build') {
  return control.queues.queue(pool).getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed']);
}

/**
 * Every key under the test's prefix, sorted (a whole SCAN: one call may return only part), but
 * the GitHub rate budget's: the control's own bookkeeping of its calls to GitHub (the vetter's,
 * in the background), which comes and goes whatever a delivery stores.
 */
async function keyNames(): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    found.push(...batch);
  } while (cursor !== '0');
  return [...new Set(found)].filter((k) => k !== `${prefix}:github:budget`).sort();
}

/** A workflow_job delivery whose body is `bytes` around the job name, signed over exactly those bytes. */
function byteDelivery(id: number, name: Buffer, o: { bom?: boolean } = {}) {
  const [head, tail] = JSON.stringify(jobPayload({ id })).split(`"name":${JSON.stringify(jobPayload().workflow_job.name)}`);
  const body = Buffer.concat([Buffer.from(o.bom ? [0xef, 0xbb, 0xbf] : []), Buffer.from(`${head}"name":"`), name, Buffer.from(`"${tail}`)]);
  return { body, headers: { ...delivery(TEST_SECRET, {}).headers, 'x-hub-signature-256': sign(TEST_SECRET, body) } };
}

beforeAll(() => {
  redis = new Redis(redisUrl());
});
afterAll(() => redis.disconnect());

describe('webhook intake', () => {
  beforeAll(async () => {
    prefix = testPrefix();
    control = await startTestControl({ redisUrl: redisUrl(), prefix, previousSecret: "It's a Secret to Everybody" });
    // Tests below compare the keys before and after; the control makes some of its own after
    // buildControl resolves (the relay thread its stream, once its connection is up; BullMQ each
    // queue's meta). Take "before" only once they are there.
    const startup = [`${prefix}:outbox`, `${prefix}:pool-build:meta`, `${prefix}:pool-deploy:meta`];
    await vi.waitFor(async () => expect(await keyNames()).toEqual(expect.arrayContaining(startup)), { timeout: 20_000, interval: 25 });
  });
  afterAll(async () => {
    await control.close();
    await dropPrefix(redisUrl(), prefix);
  });
  afterEach(async () => {
    await settled();
  });

  test("GitHub's documented signature vector is accepted over HTTP (as the rotation secret)", async () => {
    const headers = { 'content-type': 'application/json', 'x-github-event': 'ping', 'x-github-delivery': 'vector' };
    const good = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    const ok = await post({ body: 'Hello, World!', headers: { ...headers, 'x-hub-signature-256': good } });
    expect(ok.status).toBe(200);
    const bad = await post({ body: 'Hello, World?', headers: { ...headers, 'x-hub-signature-256': good } });
    expect(bad.status).toBe(401);
  });

  test('1,000 deliveries with bad signatures: each 401, nothing stored or enqueued', async () => {
    const before = await keyNames();
    const body = JSON.stringify(jobPayload({ id: 777 }));
    const good = sign(TEST_SECRET, body);
    const kinds: ((i: number) => string | undefined)[] = [
      (i) => sign(`wrong-secret-${i}`, body), // bad
      () => undefined, // missing
      () => `sha1=${good.slice(7, 47)}`, // sha1=
      (i) => good.slice(0, 7 + (i % 63)), // wrong length
      (i) => `sha256=${'g'.repeat(64 - (i % 3))}${good.slice(-(i % 3) || 64).slice(0, i % 3)}`, // non-hex
      () => good.replace(/^sha256=./, (m) => `${m.slice(0, 7)}${m.at(-1) === 'a' ? 'b' : 'a'}`), // one digit flipped
      () => `${good}0`, // one digit too many
      () => good.toUpperCase(), // wrong case
    ];
    const statuses: number[] = [];
    for (let batch = 0; batch < 1000; batch += 50) {
      const res = await Promise.all(
        Array.from({ length: 50 }, (_, j) => {
          const i = batch + j;
          const sig = kinds[i % kinds.length]!(i);
          const headers: Record<string, string> = { 'content-type': 'application/json', 'x-github-event': 'workflow_job', 'x-github-delivery': `bad-${i}` };
          if (sig !== undefined) headers['x-hub-signature-256'] = sig;
          return post({ body, headers }).then((r) => r.status);
        }),
      );
      statuses.push(...res);
    }
    expect(statuses).toHaveLength(1000);
    expect(new Set(statuses)).toEqual(new Set([401]));
    expect(await keyNames()).toEqual(before);
    expect(await readJobRecord(redis, keys(prefix), 777)).toBeNull();
  });

  test('one delivery sent 100 times enqueues one job', async () => {
    const d = delivery(TEST_SECRET, jobPayload({ id: 4242 }));
    const statuses = await Promise.all(Array.from({ length: 100 }, () => post(d).then((r) => r.status)));
    expect(statuses.every((s) => s === 202)).toBe(true);
    await settled();
    const entries = (await queueEntries()).filter((j) => j.id === queueJobId(4242));
    expect(entries).toHaveLength(1);
    expect(entries[0]!.data).toMatchObject({ workflowJobId: 4242, pool: 'build', repo: 'acme/app' });
    expect(JSON.stringify(entries[0]!.data)).not.toContain(TEST_SECRET);
    // Delivery ids are remembered at least 72 h (GitHub redelivers for 3 days).
    expect(await redis.ttl(`${prefix}:delivery:${d.headers['x-github-delivery']}`)).toBeGreaterThanOrEqual(72 * 3600 - 60);
  });

  test('all events of 20 jobs, each sent three times in shuffled order: right final state, ≤ 1 queue entry per job', async () => {
    // Jobs 0-6 get only queued, 7-13 queued+in_progress, 14-19 all three.
    const want = new Map<number, string>();
    const deliveries: Delivery[] = [];
    for (let n = 0; n < 20; n++) {
      const id = 9000 + n;
      const actions = (['queued', 'in_progress', 'completed'] as const).slice(0, n < 7 ? 1 : n < 14 ? 2 : 3);
      want.set(id, actions.at(-1)!);
      for (const action of actions) {
        const d = delivery(TEST_SECRET, jobPayload({ id, action }));
        // The same delivery (same id) three times, as GitHub's retries or redeliveries would.
        deliveries.push(d, d, d);
      }
    }
    shuffle(deliveries, 7);
    for (let i = 0; i < deliveries.length; i += 10) {
      const res = await Promise.all(deliveries.slice(i, i + 10).map((d) => post(d).then((r) => r.status)));
      expect(res.every((s) => s === 202)).toBe(true);
    }
    await settled();
    const entries = await queueEntries();
    for (const [id, state] of want) {
      const rec = await readJobRecord(redis, keys(prefix), id);
      expect(rec?.state, `job ${id}`).toBe(state);
      const mine = entries.filter((j) => j.id === queueJobId(id));
      expect(mine.length, `queue entries of job ${id}`).toBeLessThanOrEqual(1);
      // A job seen only as queued must be waiting in the queue; a completed one never waits.
      if (state === 'queued') expect(mine).toHaveLength(1);
      if (state === 'completed') expect(await mine[0]?.getState()).not.toBe('waiting');
    }
  });

  test('every workflow_job example from @octokit/webhooks-examples is accepted; public ones are rejected as public-repo', async () => {
    const examples = examplePayloads();
    for (const { name, payload } of examples) {
      const res = await post(delivery(TEST_SECRET, payload));
      expect(res.status, name).toBe(202);
      const body = (await res.json()) as { result: string; decision?: unknown };
      if (payload.action === 'waiting') {
        expect(body.result, name).toBe('ignored');
      } else if (payload.repository.private === false) {
        expect(body.decision, name).toEqual({ kind: 'reject', reason: 'public-repo' });
        const rec = await readJobRecord(redis, keys(prefix), payload.workflow_job.id);
        expect(rec?.reason, name).toBe('public-repo');
      } else {
        // The private example's labels have no self-hosted: a GitHub-hosted job.
        expect(body.result, name).toBe('ignored');
      }
    }
  });

  test('decisions are recorded for rejected jobs and never enqueued', async () => {
    const cases = [
      [jobPayload({ id: 31, repo: 'evil/x' }), 'repo-not-allowed'],
      [jobPayload({ id: 32, labels: ['self-hosted', 'gpu'] }), 'no-pool'],
      [jobPayload({ id: 33, labels: ['self-hosted', 'deploy'], repo: 'acme/site', branch: 'dev' }), 'deploy-not-allowed'],
      [jobPayload({ id: 34, visibility: 'internal' }), 'internal-repo'],
    ] as const;
    for (const [payload, reason] of cases) {
      const res = await post(delivery(TEST_SECRET, payload));
      expect(res.status).toBe(202);
      expect(((await res.json()) as any).decision).toEqual({ kind: 'reject', reason });
    }
    const accepted = await post(delivery(TEST_SECRET, jobPayload({ id: 35, labels: ['self-hosted', 'deploy'], repo: 'acme/site' })));
    expect(((await accepted.json()) as any).decision).toEqual({ kind: 'accept', pool: 'deploy' });
    await settled();
    const build = (await queueEntries('build')).map((j) => j.id);
    for (const id of [31, 32, 33, 34]) expect(build).not.toContain(queueJobId(id));
    expect((await queueEntries('deploy')).map((j) => j.id)).toContain(queueJobId(35));
    const audit = await redis.xrange(keys(prefix).events, '-', '+');
    const reasons = audit.map(([, f]) => f[f.indexOf('reason') + 1]);
    expect(reasons).toEqual(expect.arrayContaining(['repo-not-allowed', 'no-pool', 'deploy-not-allowed', 'internal-repo']));
  });

  test('a job completed (cancelled) before pickup leaves the queue', async () => {
    await post(delivery(TEST_SECRET, jobPayload({ id: 51 })));
    await settled();
    expect(await (await control.queues.queue('build').getJob(queueJobId(51)))?.getState()).toBe('waiting');
    await post(delivery(TEST_SECRET, jobPayload({ id: 51, action: 'completed', conclusion: 'cancelled', runnerName: null })));
    await settled();
    expect(await control.queues.queue('build').getJob(queueJobId(51))).toBeUndefined();
    expect((await readJobRecord(redis, keys(prefix), 51))?.conclusion).toBe('cancelled');
  });

  test('bad input: malformed payload names the field, oversized 413, unknown event ignored; nothing stored', async () => {
    const before = await keyNames();
    const bad = jobPayload({ id: 61 });
    bad.workflow_job.labels = 'self-hosted';
    let res = await post(delivery(TEST_SECRET, bad));
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: 'workflow_job.labels' });

    const notJson = 'not json{';
    res = await post({ body: notJson, headers: { ...delivery(TEST_SECRET, {}).headers, 'x-hub-signature-256': sign(TEST_SECRET, notJson) } });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: '(body)' });

    const noDelivery = delivery(TEST_SECRET, jobPayload({ id: 62 }));
    delete noDelivery.headers['x-github-delivery'];
    res = await post(noDelivery);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: 'X-GitHub-Delivery' });

    const huge = jobPayload({ id: 63 });
    huge.padding = 'x'.repeat(70_000);
    res = await post(delivery(TEST_SECRET, huge));
    expect(res.status).toBe(413);

    res = await post(delivery(TEST_SECRET, { zen: 'Keep it logically awesome.' }, { event: 'issues' }));
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ result: 'ignored', event: 'issues' });
    expect(await keyNames()).toEqual(before);
  });

  test('a body that is not UTF-8, signed over its bytes, is 400 naming the body; a leading BOM is taken', async () => {
    const before = await keyNames();
    const notUtf8 = Buffer.from([0x62, 0x75, 0x69, 0x6c, 0x64, 0xff]); // "build" and a byte no UTF-8 text has
    for (const bom of [false, true]) {
      const res = await post(byteDelivery(71, notUtf8, { bom }));
      expect(res.status, `bom: ${bom}`).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'payload-invalid', field: '(body)', message: '(body): not valid UTF-8' });
    }
    expect(await keyNames()).toEqual(before);

    const name = 'build ✓ café';
    const res = await post(byteDelivery(72, Buffer.from(name), { bom: true }));
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ result: 'created', decision: { kind: 'accept', pool: 'build' } });
    expect(await readJobRecord(redis, keys(prefix), 72)).toMatchObject({ jobName: name, state: 'queued' });
  });

  test('a form-encoded delivery (a webhook set to application/x-www-form-urlencoded) is refused, naming the content type', async () => {
    const d = delivery(TEST_SECRET, jobPayload({ id: 73 }));
    const body = `payload=${encodeURIComponent(d.body)}`;
    const headers = { ...d.headers, 'content-type': 'application/x-www-form-urlencoded', 'x-hub-signature-256': sign(TEST_SECRET, body) };
    const res = await post({ body, headers });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ field: 'Content-Type', message: expect.stringContaining('application/json') });
    expect(await readJobRecord(redis, keys(prefix), 73)).toBeNull();
  });

  test('/healthz and /metrics', async () => {
    const health = await fetch(`${control.url}/healthz`);
    expect(health.status).toBe(200);
    // The bad signatures are counted, and do not make the control unhealthy.
    expect(await health.json()).toMatchObject({ ok: true, redis: 'up', badSignatures: 1001, lastBadSignatureAt: expect.any(String) });
    const text = await (await fetch(`${control.url}/metrics`)).text();
    expect(text).toMatch(/hangar_webhook_deliveries_total\{result="bad-signature"\} 1001/);
    expect(text).toMatch(/hangar_policy_decisions_total\{kind="reject",reason="no-pool",pool=""\} 1/);
    expect(text).toMatch(/hangar_queue_depth\{pool="build",state="waiting"\} \d+/);
    expect(text).toMatch(/hangar_intake_duration_seconds_bucket/);
    expect(text).not.toContain(TEST_SECRET);
  });
});

function shuffle<T>(a: T[], seed: number): void {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
}
