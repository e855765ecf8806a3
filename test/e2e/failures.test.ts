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

interface SimJob { id: number; status: string; conclusion: string | null; output: string; runnerName: string | null }
const job = (id: number) => fleet.api<SimJob>('GET', `/_sim/jobs/${id}`);
const run = (jobs: { name: string; labels: string[]; steps: string[] }[]) =>
  fleet.api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo: 'acme/app', jobs }).then((r) => r.jobs.map((j) => j.id));

beforeAll(async () => {
  prefix = testPrefix();
  // The agent reaches the control through a proxy that answers its first runner request 502.
  fleet = await startFleet({ prefix, slots: 1, timeoutMinutes: 1, controlFaults: [{ method: 'POST', path: '/api/v1/jit', times: 1, status: 502 }] });
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
    expect(fleet.logs()).toMatch(/"attempt":1,"attempts":5,"err":"control answered 502[^"]*","msg":"job will be tried again"/);
    const q = new Queue(queueName('build'), { connection: { path: fleet.sockets.redis }, prefix });
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
});
