import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ingestDelivery } from '../../src/intake/ingest.js';
import { JobStore } from '../../src/jobs/intake-record.js';
import { readJobRecord, type JobRecord } from '../../src/jobs/record.js';
import { keys, queueJobId } from '../../src/queue/keys.js';
import { createDeliveriesLoop } from '../../src/reconcile/deliveries.js';
import { LeaderLock } from '../../src/reconcile/leader.js';
import { loopDeps } from '../../src/reconcile/loops.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The deliveries loop against a real control, Redis and the sim: deliveries GitHub could not
 * make are fetched through its API and go the webhook's way (parse → policy → record → queue).
 * Push mode with deliveries dropped, pull mode with the webhook URL unreachable, a repository
 * the policy does not allow, and a replica that lost the lead.
 */
const JOB = { labels: ['self-hosted', 'build'], steps: ['true'] };
const GET_DELIVERY = 'GET /app/hook/deliveries/:delivery_id';

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

/** A port nothing listens on: GitHub's delivery to it fails to connect, as to a box behind CGNAT. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A sim and a control pointed at it; `webhook: 'control'` aims the sim's webhook at the control. */
async function installation(o: { extraYaml: string; webhook: 'control' | 'unreachable' }): Promise<{ sim: Sim; c: TestControl; prefix: string }> {
  const prefix = testPrefix();
  prefixes.push(prefix);
  const sim = await createSim({ appId: 9, installationId: 3 });
  closers.push(() => sim.close());
  const apiUrl = await sim.listen(0, '127.0.0.1');
  const c = await startTestControl({ redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem, extraYaml: o.extraYaml });
  closers.push(() => c.close());
  const url = o.webhook === 'control' ? `${c.webhookUrl}/webhooks/github` : `http://127.0.0.1:${await closedPort()}/webhooks/github`;
  sim.setWebhook({ url, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  sim.createRepo({ owner: 'other', name: 'app', visibility: 'private' });
  return { sim, c, prefix };
}

const records = (prefix: string, ids: number[]) => Promise.all(ids.map((id) => readJobRecord(redis, keys(prefix), id)));

async function allRecorded(prefix: string, ids: number[], timeout = 20_000): Promise<JobRecord[]> {
  await expect.poll(async () => (await records(prefix, ids)).filter((r) => r !== null).length, { timeout, interval: 50 }).toBe(ids.length);
  return (await records(prefix, ids)) as JobRecord[];
}

/** Each job exactly once in its pool's queue (BullMQ id wj-<id>), and no other entry there. */
async function expectOneQueueEntryEach(c: TestControl, ids: number[]): Promise<void> {
  const q = c.queues.queue('build');
  await expect.poll(() => q.getJobCounts().then((n) => Object.values(n).reduce((a, b) => a + b, 0)), { timeout: 20_000 }).toBe(ids.length);
  const entries = await q.getJobs(['waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed']);
  expect(entries.map((j) => j.id).sort()).toEqual(ids.map(queueJobId).sort());
}

/** How many `decision` events the events stream holds per job: one each, or a job was decided twice. */
async function decisionsPerJob(prefix: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const [, fields] of await redis.xrange(keys(prefix).events, '-', '+')) {
    const f = new Map<string, string>();
    for (let i = 0; i < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
    if (f.get('type') !== 'decision') continue;
    const id = Number(f.get('workflowJobId'));
    out.set(id, (out.get(id) ?? 0) + 1);
  }
  return out;
}

function createJobs(sim: Sim, repo: string, runs: number, perRun: number): number[] {
  const ids: number[] = [];
  for (let r = 0; r < runs; r++) {
    ids.push(...sim.createRun({ repo, jobs: Array.from({ length: perRun }, (_, i) => ({ name: `j${r}-${i}`, ...JOB })) }).jobs.map((j) => j.id));
  }
  return ids;
}

describe('push mode, 10 % of deliveries dropped', () => {
  let sim: Sim;
  let c: TestControl;
  let prefix: string;
  beforeAll(async () => {
    ({ sim, c, prefix } = await installation({ extraYaml: 'reconcile: {deliveriesIntervalSeconds: 1, queuedRunsIntervalSeconds: 3600}', webhook: 'control' }));
    // The queued-runs loop would record the dropped jobs too: its start-up pass (on an empty
    // GitHub) must be over before the jobs are made; its next is an hour away.
    for (let i = 0; i < 100 && !(await c.registry.getSingleMetricAsString('hangar_reconcile_passes_total')).includes('loop="queued-runs"'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  test('200 jobs: each gets its record and exactly one queue entry; each dropped delivery fetched once', async () => {
    sim.setKnobs({ dropRate: 0.1, seed: 11 });
    const ids = createJobs(sim, 'acme/app', 20, 10);
    await sim.idle();
    sim.setKnobs({ dropRate: 0 });
    const dropped = sim.deliveries().filter((d) => d.dropped && ids.includes(d.workflowJobId ?? 0));
    // The seed drops some; without the loop their jobs would have no record at all.
    expect(dropped.length).toBeGreaterThan(5);

    const recs = await allRecorded(prefix, ids);
    expect(recs.every((r) => r.decision === 'accept' && r.pool === 'build' && r.phase === 'queued')).toBe(true);
    // The records of the dropped ones came from those very deliveries (their guid), through the loop.
    const byJob = new Map(recs.map((r) => [r.workflowJobId, r]));
    for (const d of dropped) expect(byJob.get(d.workflowJobId!)!.firstDeliveryId).toBe(d.guid);
    await expectOneQueueEntryEach(c, ids);
    const decisions = await decisionsPerJob(prefix);
    expect(ids.filter((id) => decisions.get(id) !== 1)).toEqual([]);

    // Later passes find nothing more to fetch: each dropped delivery was fetched exactly once.
    await c.reconciler!.runOnce({ dryRun: false, only: ['deliveries'] });
    await c.reconciler!.runOnce({ dryRun: false, only: ['deliveries'] });
    expect(sim.calls()[GET_DELIVERY]).toEqual({ 200: dropped.length });
    const cursor = Number(await redis.get(keys(prefix).reconcileState('deliveries')));
    expect(cursor).toBe(Math.max(...sim.deliveries().map((d) => d.id)));
  });

  test('a pulled delivery for a repository the policy does not allow is refused as the webhook refuses it', async () => {
    const [pushed] = createJobs(sim, 'other/app', 1, 1);
    await sim.idle();
    sim.setKnobs({ dropRate: 1 });
    const [pulled] = createJobs(sim, 'other/app', 1, 1);
    await sim.idle();
    sim.setKnobs({ dropRate: 0 });
    const [viaWebhook, viaLoop] = await allRecorded(prefix, [pushed!, pulled!]);
    const verdict = (r: JobRecord) => ({ decision: r.decision, reason: r.reason, pool: r.pool, phase: r.phase, phaseWhy: r.phaseWhy, repo: r.repo });
    expect(verdict(viaWebhook!)).toEqual({ decision: 'reject', reason: 'repo-not-allowed', pool: null, phase: 'refused', phaseWhy: 'repo-not-allowed', repo: 'other/app' });
    expect(verdict(viaLoop!)).toEqual(verdict(viaWebhook!));
    expect(viaLoop!.firstDeliveryId).toBe(sim.deliveries().find((d) => d.workflowJobId === pulled && d.dropped)!.guid);
    expect(await c.queues.queue('build').getJob(queueJobId(pulled!))).toBeUndefined();
  });
});

describe('pull mode, the webhook URL unreachable', () => {
  let sim: Sim;
  let c: TestControl;
  let prefix: string;
  beforeAll(async () => ({ sim, c, prefix } = await installation({ extraYaml: 'intake: {mode: pull, pullIntervalSeconds: 1}', webhook: 'unreachable' })));

  test('no webhook receiver; 20 jobs all get records and one queue entry each; latency printed', async () => {
    // No public listener at all; the private one has no webhook route either.
    expect(c.webhookUrl).toBeNull();
    expect(c.webhooks).toBeNull();
    expect((await fetch(`${c.url}/webhooks/github`, { method: 'POST', body: '{}' })).status).toBe(404);
    const created = new Map<number, number>();
    const ids: number[] = [];
    for (let r = 0; r < 4; r++) {
      const at = Date.now();
      for (const id of createJobs(sim, 'acme/app', 1, 5)) {
        created.set(id, at);
        ids.push(id);
      }
    }
    await sim.idle();
    // GitHub could not reach Hangar: every delivery failed to connect, no HTTP status.
    const listed = (await c.github.listDeliveries()).deliveries.filter((d) => d.event === 'workflow_job');
    expect(listed.length).toBeGreaterThanOrEqual(20);
    expect(new Set(listed.map((d) => `${d.statusCode} ${d.status}`))).toEqual(new Set(['0 failed to connect to host']));

    const recs = await allRecorded(prefix, ids);
    expect(recs.every((r) => r.decision === 'accept' && r.phase === 'queued')).toBe(true);
    await expectOneQueueEntryEach(c, ids);
    const latency = recs.map((r) => r.createdAt - created.get(r.workflowJobId)!).sort((a, b) => a - b);
    console.log(`pull mode, pullIntervalSeconds ${c.config.intake.pullIntervalSeconds}: creation → record p50 ${latency[Math.floor(latency.length / 2)]} ms, max ${latency[latency.length - 1]} ms (20 jobs)`);
  });
});

describe('fencing', () => {
  test('a replica that lost the lead writes nothing: no record, no delivery key, no cursor', async () => {
    const { sim, c, prefix } = await installation({ extraYaml: 'reconcile: {enabled: false}', webhook: 'unreachable' });
    const k = keys(prefix);
    const ids = createJobs(sim, 'acme/app', 1, 3);
    await sim.idle();
    const conn = new Redis(redisUrl());
    closers.push(async () => conn.disconnect());
    const store = new JobStore(conn, k, { deliveryTtlSeconds: 3600 });
    const loop = createDeliveriesLoop(loopDeps({ config: c.config, redis: conn, keys: k, github: c.github, store, logger: pino({ level: 'silent' }) }));
    const a = new LeaderLock(conn, k.leader, k.leaderToken, 60_000, 'replica-a');
    const b = new LeaderLock(conn, k.leader, k.leaderToken, 60_000, 'replica-b');
    const stale = (await a.acquire())!;
    const plan = loop.plan(await loop.observe(Date.now()), Date.now());
    expect(plan.fetch).toHaveLength(3);

    // A's lease lapses (a long pause) and B leads; A carries on with the plan it made.
    await conn.del(k.leader);
    expect(await b.acquire()).not.toBeNull();
    expect(await loop.apply(plan, stale)).toEqual({ fenced: 1 });
    // And past the loop's own check, the record script refuses a stale fence by itself.
    const got = await c.github.getDelivery(plan.fetch[0]!.id);
    const r = await ingestDelivery({ deliveryId: got.guid, event: got.event, payload: () => got.payload }, { policy: c.config, store, logger: pino({ level: 'silent' }) }, stale);
    expect(r.label).toBe('fenced');

    expect((await records(prefix, ids)).every((x) => x === null)).toBe(true);
    expect(await conn.exists(...plan.fetch.map((x) => k.delivery(x.guid)))).toBe(0);
    expect(await conn.get(k.reconcileState('deliveries'))).toBeNull();
    expect(await conn.xlen(k.events)).toBe(0);

    // The leader's own pass takes them all in.
    expect(await loop.apply(plan, b.fence!)).toMatchObject({ fetched: 3, created: 3, cursor: 1 });
    expect((await records(prefix, ids)).every((x) => x !== null)).toBe(true);
  });
});
