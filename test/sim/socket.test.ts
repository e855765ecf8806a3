import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { requestOverSocket } from '../../src/main/unix-http.js';
import { startSim, type SimHarness } from './helpers/sim.js';

/** The sim on a unix socket too: the same app, answering as it does over TCP. */
let h: SimHarness;
let dir: string;
let socket: string;

beforeAll(async () => {
  h = await startSim();
  dir = await mkdtemp(join(tmpdir(), 'hangar-sim-socket-'));
  socket = join(dir, 'sim.sock');
  await h.sim.listenSocket(socket);
});
afterAll(async () => {
  await h?.close();
  await rm(dir, { recursive: true, force: true });
});

test('the control API answers over the socket and sees what TCP made', async () => {
  const made = await h.call('POST', '/_sim/repos', { body: { owner: 'acme', name: 'site', visibility: 'private' } });
  expect(made.status).toBe(201);
  const run = await requestOverSocket(socket, 'POST', '/_sim/runs', JSON.stringify({ repo: 'acme/site', jobs: [{ name: 'j', labels: ['self-hosted'], steps: ['true'] }] }), { 'content-type': 'application/json' });
  expect(run.status).toBe(201);
  const [{ id }] = (JSON.parse(run.body) as { jobs: { id: number }[] }).jobs as [{ id: number }];
  expect((await h.call('GET', `/_sim/jobs/${id}`)).body).toMatchObject({ id, status: 'queued' });
});

test('hooks and the not-found handler run for socket requests too', async () => {
  const unauth = await requestOverSocket(socket, 'GET', '/repos/acme/app/actions/runners');
  expect(unauth.status).toBe(401);
  const missing = await requestOverSocket(socket, 'GET', '/no/such/route', undefined, { authorization: `token ${h.token}` });
  expect(missing.status).toBe(404);
  expect(JSON.parse(missing.body)).toMatchObject({ message: 'Not Found' });
});
