import { afterAll, beforeAll, expect, test } from 'vitest';
import { startSim, type SimHarness } from './helpers/sim.js';

/** The call record: what the GitHub REST face was asked, by route template and status. */
let h: SimHarness;
beforeAll(async () => {
  h = await startSim();
});
afterAll(async () => h.close());

const TOKEN = 'POST /app/installations/:installation_id/access_tokens';
const RUNNERS = 'GET /repos/:owner/:repo/actions/runners';

test('counts per route template and status; the control API and runner protocol are not counted', async () => {
  await h.call('DELETE', '/_sim/calls', { auth: null });
  await h.call('GET', '/repos/acme/app/actions/runners');
  await h.call('GET', '/repos/acme/app/actions/runners?per_page=1');
  await h.call('GET', '/repos/acme/nope/actions/runners');
  await h.call('GET', '/repos/acme/app/actions/runners', { auth: null });
  await h.call('POST', '/app/installations/7/access_tokens', { auth: null });
  await h.call('GET', '/_sim/runners', { auth: null });
  await h.call('GET', '/_runner/job', { auth: null });
  const res = await h.call('GET', '/_sim/calls', { auth: null });
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ [RUNNERS]: { '200': 2, '404': 1, '401': 1 }, [TOKEN]: { '401': 1 } });
  expect(h.sim.calls()).toEqual(res.body);
});

test('secondary rate limits are counted on the route they hit', async () => {
  h.sim.resetCalls();
  h.sim.setKnobs({ rateLimitShare: 1, retryAfterSeconds: 1 });
  try {
    await h.call('GET', '/repos/acme/app/actions/runners');
  } finally {
    h.sim.setKnobs({ rateLimitShare: 0 });
  }
  expect(h.sim.calls()).toEqual({ [RUNNERS]: { 403: 1 } });
});

test('a route the sim lacks is counted under its path, so a test sees a client ask for it', async () => {
  h.sim.resetCalls();
  await h.call('GET', '/repos/acme/app/pulls?state=open');
  await h.call('GET', '/_sim/nothing-here', { auth: null });
  expect(h.sim.calls()).toEqual({ 'GET /repos/acme/app/pulls': { 404: 1 } });
});

test('DELETE /_sim/calls resets; a snapshot does not change under the caller', async () => {
  await h.call('GET', '/repos/acme/app');
  const before = h.sim.calls();
  expect(before['GET /repos/:owner/:repo']).toEqual({ 200: 1 });
  const reset = await h.call('DELETE', '/_sim/calls', { auth: null });
  expect(reset.status).toBe(204);
  expect(h.sim.calls()).toEqual({});
  await h.call('GET', '/repos/acme/app');
  expect(before['GET /repos/:owner/:repo']).toEqual({ 200: 1 });
  expect(h.sim.calls()).toEqual({ 'GET /repos/:owner/:repo': { 200: 1 } });
});
