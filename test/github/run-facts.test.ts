import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { GitHubClient } from '../../src/github/index.js';
import { keys } from '../../src/queue/keys.js';
import { RedisRunFacts } from '../../src/queue/run-facts.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';
import { startSimClient, type SimClient } from './helpers/sim.js';

/**
 * Runs' facts (what started a run, where its commit came from) are read from GitHub once and
 * then served from Redis to the vetter, the mint and the gate: against the sim, a real Redis.
 */

let s: SimClient;
let redis: Redis;
let gh: GitHubClient;
const prefix = testPrefix();
const GET_RUN = 'GET /repos/:owner/:repo/actions/runs/:run_id';

beforeAll(async () => {
  s = await startSimClient();
  redis = new Redis(redisUrl());
  gh = s.client({ runFacts: new RedisRunFacts(redis, keys(prefix).runFacts) });
});
afterAll(async () => {
  redis?.disconnect();
  await dropPrefix(redisUrl(), prefix);
  await s?.close();
});

const job = { name: 'test', labels: ['self-hosted', 'build'], steps: ['true'] };
const getRuns = () => s.sim.calls()[GET_RUN]?.[200] ?? 0;

test('a run read once is not read again, by any client sharing the store', async () => {
  s.sim.createRepo({ owner: 'acme', name: 'facts', visibility: 'private' });
  const run = s.sim.createRun({ repo: 'acme/facts', event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/facts', jobs: [job] });
  s.sim.resetCalls();
  const first = await gh.getRunFacts('acme', 'facts', run.runId);
  expect(first).toEqual({ id: run.runId, event: 'pull_request', headBranch: 'patch-1', headSha: expect.any(String), headRepositoryFullName: 'mallory/facts', repositoryFullName: 'acme/facts' });
  // Another replica (another client, the same Redis): no read.
  const other = s.client({ runFacts: new RedisRunFacts(redis, keys(prefix).runFacts) });
  expect(await other.getRunFacts('acme', 'facts', run.runId)).toEqual(first);
  expect(await gh.getRunFacts('acme', 'facts', run.runId)).toEqual(first);
  expect(getRuns()).toBe(1);
});

test('a listing of open runs fills the store: the runs it listed need no read', async () => {
  s.sim.createRepo({ owner: 'acme', name: 'listed', visibility: 'private' });
  const runs = [1, 2, 3].map(() => s.sim.createRun({ repo: 'acme/listed', jobs: [job] }));
  await gh.listOpenRuns('acme', 'listed');
  s.sim.resetCalls();
  for (const r of runs) expect(await gh.getRunFacts('acme', 'listed', r.runId)).toMatchObject({ id: r.runId, event: 'push', repositoryFullName: 'acme/listed' });
  expect(getRuns()).toBe(0);
});

test('facts kept for a run of another repository are not this one\'s: a lying hint reads GitHub and gets its 404', async () => {
  s.sim.createRepo({ owner: 'acme', name: 'victim', visibility: 'private' });
  s.sim.createRepo({ owner: 'acme', name: 'other', visibility: 'private' });
  const run = s.sim.createRun({ repo: 'acme/other', jobs: [job] });
  await gh.getRunFacts('acme', 'other', run.runId);
  s.sim.resetCalls();
  await expect(gh.getRunFacts('acme', 'victim', run.runId)).rejects.toMatchObject({ status: 404 });
  expect(s.sim.calls()[GET_RUN]?.[404]).toBe(1);
});

test('a store entry that is not a whole run is read again; a store that fails costs a read, not the call', async () => {
  s.sim.createRepo({ owner: 'acme', name: 'broken', visibility: 'private' });
  const run = s.sim.createRun({ repo: 'acme/broken', jobs: [job] });
  await redis.set(keys(prefix).runFacts(run.runId), JSON.stringify({ id: run.runId }));
  s.sim.resetCalls();
  expect(await gh.getRunFacts('acme', 'broken', run.runId)).toMatchObject({ id: run.runId, event: 'push' });
  expect(getRuns()).toBe(1);
  const failing = s.client({ runFacts: { get: () => Promise.reject(new Error('Redis away')), put: () => Promise.reject(new Error('Redis away')) } });
  expect(await failing.getRunFacts('acme', 'broken', run.runId)).toMatchObject({ id: run.runId });
  expect(getRuns()).toBe(2);
});
