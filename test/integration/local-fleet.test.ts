/**
 * The local fleet without its agent (no VM, no cgroup: safe beside another engineer's agent):
 * every part in the fleet's own namespaces, reached from here only through its sockets, a
 * webhook from the "internet" through the router to the control, and nothing in the machine's
 * namespace before, during or after. Root; needs dist/ (`npm run build`).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { keys } from '../../src/queue/keys.js';
import { WEB_REPLIES } from '../../src/main/local-topology.js';
import { startFleet, type Fleet } from '../helpers/fleet.js';
import { runOnHostIn } from '../helpers/host-runner.js';

const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const machine = () => ({ links: sh('ip', ['-o', 'link']), addrs: sh('ip', ['-o', 'addr']), routes: sh('ip', ['route']), nft: sh('nft', ['list', 'tables']) });

const SPARE = 'spare-host-token-0123456789abcdef';
let fleet: Fleet;
let before: ReturnType<typeof machine>;

beforeAll(async () => {
  before = machine();
  fleet = await startFleet({ prefix: 'lf', extraHosts: [{ name: 'spare', role: 'build', pools: ['build'], token: SPARE }] });
}, 120_000);
afterAll(async () => fleet?.close(), 60_000);

test('the sim, the control and Redis answer through the fleet\'s sockets; a webhook reaches the control through the router', async () => {
  await fleet.api('POST', '/_sim/repos', { owner: 'acme', name: 'app', visibility: 'private' });
  const run = await fleet.api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo: 'acme/app', jobs: [{ name: 'j', labels: ['self-hosted', 'build'], steps: ['true'] }] });
  const id = run.jobs[0]!.id;
  await expect.poll(() => fleet.redis().hget(keys(fleet.prefix).job(id), 'state'), { timeout: 20_000 }).toBe('queued');
  const health = await fleet.controlApi('GET', '/healthz');
  expect(health.status).toBe(200);
  expect(JSON.parse(health.body)).toMatchObject({ ok: true, redis: 'up' });
  expect((await fleet.controlApi('POST', '/api/v1/jit', { pool: 'build', workflowJobId: id })).status).toBe(401);
  // No runner here takes it; cancelled, it is not the oldest queued job for the next test's runner.
  await fleet.api('POST', `/_sim/jobs/${id}/cancel`);
});

test('a host\'s runner inside the build host (runOnHostIn) is minted a runner, passes the gate and runs the job', async () => {
  const run = await fleet.api<{ jobs: { id: number }[] }>('POST', '/_sim/runs', { repo: 'acme/app', jobs: [{ name: 'j', labels: ['self-hosted', 'build'], steps: ['echo SPARE-$((40 + 2))'] }] });
  const id = run.jobs[0]!.id;
  await expect.poll(() => fleet.redis().hget(keys(fleet.prefix).job(id), 'state'), { timeout: 20_000 }).toBe('queued');
  const r = await runOnHostIn(fleet, SPARE, 'build', id);
  expect(r).toMatchObject({ status: 201, jobId: id, exitCode: 0, gate: { decision: 'allow', workflowJobId: id } });
  const j = await fleet.api<{ conclusion: string; output: string }>('GET', `/_sim/jobs/${id}`);
  expect(j.conclusion).toBe('success');
  expect(j.output).toContain('SPARE-42');
}, 60_000);

test('from the build host: the sim at its public address, the LAN and the internet\'s web servers', async () => {
  const curl = async (url: string) => (await fleet.exec(fleet.netns.host, 'curl', ['-s', '-m', '3', url])).stdout.trim();
  expect(JSON.parse(await curl(`${fleet.simUrl}/_sim/runners`))).toEqual(await fleet.api('GET', '/_sim/runners'));
  expect(fleet.simUrl).toContain(fleet.addresses.sim);
  expect(await curl(`http://${fleet.addresses.publicWeb}/`)).toBe(WEB_REPLIES.publicWeb);
  expect(await curl(`http://${fleet.addresses.lanWeb}/`)).toBe(WEB_REPLIES.lanWeb);
  expect(await curl(`http://${fleet.addresses.router}/`)).toBe(WEB_REPLIES.router);
  expect(await curl(`http://${fleet.addresses.metadata}/`)).toBe(WEB_REPLIES.metadata);
  // Redis and the control listen inside the build host, not on the machine's loopback.
  const listening = (await fleet.exec(fleet.netns.host, 'ss', ['-Hltn'])).stdout;
  expect(listening).toMatch(/127\.0\.0\.1:6379\b/);
  // The public listener (webhooks) on every address of the host; the private one (the agents' API) on its loopback.
  expect(listening).toMatch(/0\.0\.0\.0:8080\b/);
  expect(listening).toMatch(/127\.0\.0\.1:8443\b/);
});

test('nothing of the fleet is in the machine\'s namespace; close removes every namespace and the folder', async () => {
  expect(machine()).toEqual(before);
  const names = Object.values(fleet.netns);
  await fleet.close();
  const left = sh('ip', ['netns', 'list']).split('\n').map((l) => l.split(' ')[0]!);
  expect(left.filter((n) => names.includes(n))).toEqual([]);
  expect(existsSync(fleet.dir)).toBe(false);
  expect(machine()).toEqual(before);
}, 60_000);
