import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { eventsOfJob } from '../../src/jobs/events.js';
import { readJobRecord } from '../../src/jobs/record.js';
import { keys, queueJobId, queueName } from '../../src/queue/keys.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { testPrefix } from '../helpers/redis.js';

/**
 * Failures, loud and classified, end to end through real microVMs: a transient one (the control
 * failing a request) is tried again after a pause and the job runs; nothing reads "completed"
 * that did not run.
 */
let fleet: Fleet;
let prefix: string;
const queue = (pool: string) => new Queue(queueName(pool), { connection: { path: fleet.sockets.redis }, prefix });

interface SimJob { id: number; status: string; conclusion: string | null; output: string; runnerName: string | null }
const job = (id: number) => fleet.api<SimJob>('GET', `/_sim/jobs/${id}`);
const run = (jobs: { name: string; labels: string[]; steps: string[] }[]) =>
  fleet.api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo: 'acme/app', jobs }).then((r) => r.jobs.map((j) => j.id));

beforeAll(async () => {
  prefix = testPrefix();
  // The agent reaches the control through a proxy that answers its first runner request 502.
  // Two tries per job, a second apart: enough to see a transient failure tried again, and given up on.
  fleet = await startFleet({
    prefix, slots: 1, timeoutMinutes: 1, retries: { attempts: 2, backoffSeconds: 1 },
    controlFaults: [{ method: 'POST', path: '/api/v1/jit', times: 1, status: 502 }],
  });
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
  await fleet.startAgent();
}, 300_000);

afterAll(async () => {
  await fleet?.close();
}, 120_000);

describe('failures, classified', () => {
  test('a control that answers the first mint with 502: the job is tried again after a pause, and runs', async () => {
    const [id] = await run([{ name: 'after a 502', labels: ['self-hosted', 'build'], steps: ['echo RAN-AFTER-$((500 + 2))'] }]);
    await expect.poll(async () => (await job(id!)).status, { timeout: 180_000, interval: 500 }).toBe('completed');
    const j = await job(id!);
    expect(j.conclusion).toBe('success');
    expect(j.output).toContain('RAN-AFTER-502');
    // The agent saw the 502, called it transient, and the queue tried again.
    expect(fleet.logs()).toMatch(/"attempt":1,"attempts":2,"err":"control answered 502[^"]*","msg":"job will be tried again"/);
    const q = queue('build');
    try {
      await expect.poll(async () => (await q.getJob(queueJobId(id!)))?.getState(), { timeout: 30_000 }).toBe('completed');
      expect((await q.getJob(queueJobId(id!)))?.attemptsMade).toBe(2);
    } finally {
      await q.close();
    }
    // One runner, one VM: the failed request minted nothing.
    await expect.poll(async () => (await readJobRecord(fleet.redis(), keys(prefix), id!))?.phase, { timeout: 20_000 }).toBe('ran');
    const moves = (await eventsOfJob(fleet.redis(), keys(prefix), id!)).filter((e) => e.type === 'move').map((e) => e.fields.to);
    expect(moves).toEqual(['minted', 'vm-up', 'started', 'ran']);
  }, 240_000);

  test('"GitHub" unreachable from the guest: reported not-run with its console tail, tried again within its bound, its runner deleted; nothing says it completed', async () => {
    // The locked pool lets its guests reach only what its allowlisted names resolve to; this
    // fleet's runners find the sim by address, so their GitHub is out of reach, as in a guest
    // whose network cannot get out.
    const [id] = await run([{ name: 'no way out', labels: ['self-hosted', 'locked'], steps: ['echo SHOULD-NOT-RUN'] }]);
    const redis = fleet.redis();
    await expect.poll(async () => (await readJobRecord(redis, keys(prefix), id!))?.phase, { timeout: 180_000, interval: 500 }).toBe('failed');
    const rec = (await readJobRecord(redis, keys(prefix), id!))!;
    expect(rec.phaseWhy).toMatch(/gave up after 2 attempts: its VM ended without running it: runner-never-started-a-job/);
    expect(rec.vm).toMatchObject({ outcome: 'not-run', reason: 'runner-never-started-a-job' });
    // The guest's own words are kept, bounded and without its runner's secrets.
    expect(rec.vm!.consoleTail).toContain('sim unreachable');
    expect(rec.vm!.consoleTail!.length).toBeLessThanOrEqual(8192);
    expect(rec.vm!.consoleTail).not.toMatch(/RUNNER_TOKEN=|RunnerToken [A-Za-z0-9]/);
    expect(rec.tries).toBe(2);
    const moves = (await eventsOfJob(redis, keys(prefix), id!)).filter((e) => e.type === 'move').map((e) => `${e.fields.from}>${e.fields.to}`);
    expect(moves).toEqual(['queued>minted', 'minted>vm-up', 'vm-up>not-run', 'not-run>minted', 'minted>vm-up', 'vm-up>not-run', 'not-run>failed']);
    // Its runners were deleted: none lingers registered and offline.
    const runners = (await fleet.api<{ name: string; status: string }[]>('GET', '/_sim/runners')).filter((r) => r.name.endsWith(`-${id}-1`));
    expect(runners.length).toBeGreaterThan(0);
    expect(runners.every((r) => r.status === 'deleted'), JSON.stringify(runners)).toBe(true);
    // No view says it completed: not the queue, not the record, not GitHub.
    const q = queue('locked');
    try {
      const entry = await q.getJob(queueJobId(id!));
      expect(await entry?.getState()).toBe('failed');
      expect(entry?.failedReason).toMatch(/runner-never-started-a-job/);
    } finally {
      await q.close();
    }
    expect(await job(id!)).toMatchObject({ status: 'queued', conclusion: null });
    expect((await job(id!)).output ?? '').not.toContain('SHOULD-NOT-RUN');
  }, 240_000);
});
