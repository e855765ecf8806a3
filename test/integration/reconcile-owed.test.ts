import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { readEvents } from '../../src/jobs/events.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { jobMoves, type Move } from '../../src/jobs/transition.js';
import { keys, queueJobId, type Keys } from '../../src/queue/keys.js';
import { LeaderLock, type Fence } from '../../src/reconcile/leader.js';
import type { AnyLoop } from '../../src/reconcile/loop.js';
import { createLoops, loopDeps } from '../../src/reconcile/loops.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { JobStore } from '../../src/jobs/intake-record.js';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/**
 * The owed-jobs loop against a real control (intake, Redis, the outbox relay into BullMQ) and the
 * sim as GitHub. The records are moved through the job-record owner as the mint, the gate and
 * the agent's report move them; the control's own reconciler is off, so a pass here is the loop
 * under test, run as its leader.
 */
const BUILD = 'build-host-token-0123456789abcdef';

let sim: Sim;
let c: TestControl;
let prefix: string;
let k: Keys;
let fence: Fence;
let owed: AnyLoop;

beforeAll(async () => {
  prefix = testPrefix();
  k = keys(prefix);
  sim = await createSim({ appId: 9, installationId: 3 });
  const apiUrl = await sim.listen(0, '127.0.0.1');
  c = await startTestControl({
    redisUrl: redisUrl(), prefix, apiUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem, cancelRefusedRuns: false,
    hosts: [{ name: 'minipc', role: 'build', pools: ['build'], token: BUILD }],
    extraYaml: 'reconcile: {enabled: false, runnerGraceSeconds: 30}',
  });
  sim.setWebhook({ url: `${c.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  const deps = loopDeps({
    config: { ...c.config, reconcile: { ...c.config.reconcile, enabled: true } }, redis: c.redis, keys: k, github: c.github, logger: pino({ level: 'silent' }),
    store: new JobStore(c.redis, k, { deliveryTtlSeconds: 3600 }), queues: c.queues,
  });
  owed = createLoops(deps).find((l) => l.name === 'owed-jobs')!;
  fence = (await new LeaderLock(c.redis, k.leader, k.leaderToken, 60_000, 'test').acquire())!;
});

afterAll(async () => {
  await c?.close();
  await sim?.close();
  await dropPrefix(redisUrl(), prefix);
});

async function pass(now: number, f = fence) {
  const plan = owed.plan(await owed.observe(now), now);
  return { actions: owed.describe(plan), applied: await owed.apply(plan, f) };
}

/** What the mint, the gate and the agent's report do to a job whose runner ran `ran` (its VM then ended). */
async function runnerRan(id: number, ran: number): Promise<void> {
  const moves = jobMoves(c.redis, k);
  const runner = `hangar-minipc-${id}-1`;
  const steps: Move[] = [
    { to: 'minted', by: 'control', why: 'minted', fields: { mintedRunner: runner, host: 'minipc', mintedAt: Date.now() } },
    { to: 'vm-up', by: 'host:minipc', why: 'vm-up' },
    { to: 'started', by: 'host:minipc', why: 'allowed-at-start', fields: { startedJob: ran } },
    { to: 'ran', by: 'host:minipc', why: 'ran' },
  ];
  for (const m of steps) {
    expect(await moves.move(id, m), `${id} → ${m.to}`).toMatchObject({ ok: true });
  }
  // The entry's BullMQ job is done (its worker returned): only a new entry can bring a runner.
  await (await c.queues.queue('build').getJob(queueJobId(id)))?.remove();
}

test('a job whose runner ran another while it stayed queued on GitHub goes back to its queue once, after the grace; its partners are left alone', async () => {
  const build = { name: 'b', labels: ['self-hosted', 'build'], steps: ['true'] };
  const run = sim.createRun({ repo: 'acme/app', jobs: [build, build, build, build] });
  await sim.idle();
  const [a, b, d, e] = run.jobs.map((j) => j.id) as [number, number, number, number];
  await expect.poll(async () => (await Promise.all([a, b, d, e].map((id) => readJobRecord(c.redis, k, id)))).every((r) => r?.phase === 'queued')).toBe(true);

  // b's runner ran a; a's runner is gone (its VM lost before it took a job) and GitHub finished a.
  await runnerRan(b, a);
  sim.cancelJob(a);
  // d's runner ran e, and e's ran d (the swap): GitHub finished both, no one is owed.
  await runnerRan(d, e);
  await runnerRan(e, d);
  sim.cancelJob(d);
  sim.cancelJob(e);
  await sim.idle();

  // Within the grace: a runner still booting may take b.
  expect((await pass(Date.now())).actions).toEqual([]);

  const later = Date.now() + 31_000;
  // A replica that no longer leads changes nothing.
  const stale = await pass(later, { ...fence, value: 'not-the-token' });
  expect(stale.applied).toMatchObject({ reopened: 0, fenced: 1 });
  expect((await readJobRecord(c.redis, k, b))?.phase).toBe('ran');

  const first = await pass(later);
  expect(first.actions).toEqual([expect.stringContaining(`queue job ${b} again in build: its runner ran job ${a}`)]);
  expect(first.applied).toMatchObject({ reopened: 1, fenced: 0 });
  const rec = await readJobRecord(c.redis, k, b);
  expect(rec).toMatchObject({ phase: 'queued', phaseBy: 'reconcile', phaseWhy: 'runner-ran-another-job', startedJob: null, mintedRunner: null });
  const entry = await c.queues.queue('build').getJob(queueJobId(b));
  expect(entry?.data).toMatchObject({ workflowJobId: b, pool: 'build', repo: 'acme/app' });
  expect(await entry?.getState()).toBe('waiting');
  const events = (await readEvents(c.redis, k, { count: 10_000 })).filter((ev) => ev.workflowJobId === b && ev.type === 'move');
  expect(events.at(-1)).toMatchObject({ by: 'reconcile', fields: { from: 'ran', to: 'queued', why: 'runner-ran-another-job' } });
  for (const id of [a, d, e]) expect((await readJobRecord(c.redis, k, id))?.phase, `job ${id}`).toBe(id === a ? 'cancelled' : 'ran');

  // Reopened, it is queued: nothing more to do for it, and the next pass finds nothing.
  expect((await pass(later)).actions).toEqual([]);
});
