import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import { runSimRunner } from '../../src/sim/runner.js';
import { startSim, type SimHarness } from './helpers/sim.js';

/** One job per JIT runner, then gone: registration, GitHub's assignment rule, the runner protocol. */
let h: SimHarness;
beforeEach(async () => {
  h = await startSim();
});
afterEach(async () => h.close());

const LABELS = ['self-hosted', 'linux', 'build'];

async function register(name: string, where = '/repos/acme/app', labels = LABELS) {
  const res = await h.call('POST', `${where}/actions/runners/generate-jitconfig`, { body: { name, runner_group_id: 1, labels } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.runner.id as number, jit: res.body.encoded_jit_config as string };
}

const claim = (token: string) => fetch(`${h.url}/_runner/job`, { headers: { authorization: `RunnerToken ${token}` } });
const report = (token: string, jobId: number, exit: number, output: string) =>
  fetch(`${h.url}/_runner/jobs/${jobId}/result?exit=${exit}`, { method: 'POST', headers: { authorization: `RunnerToken ${token}`, 'content-type': 'text/plain' }, body: output });

describe('the JIT config', () => {
  test('is base64 of KEY=value lines a busybox sh can source', async () => {
    const { id, jit } = await register('cfg-1');
    const text = Buffer.from(jit, 'base64').toString('utf8');
    expect(text).toMatch(new RegExp(`^HANGAR_SIM_URL=${h.url}\\nRUNNER_ID=${id}\\nRUNNER_NAME=cfg-1\\nRUNNER_TOKEN=[0-9a-f]{40}\\n$`));
  });
});

describe('register, claim, finish, vanish', () => {
  test('the protocol step by step', async () => {
    const { id, jit } = await register('r-1');
    const { token } = decodeJitConfig(jit);
    expect((await claim(token)).status).toBe(204);
    expect((await h.call('GET', `/repos/acme/app/actions/runners/${id}`)).body).toMatchObject({ status: 'online', busy: false });

    const run = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'build', labels: ['self-hosted', 'BUILD'], steps: ['echo one', 'echo two >&2'] }] });
    const jobId = run.jobs[0]!.id;
    const got = await claim(token);
    expect(got.status).toBe(200);
    expect(got.headers.get('x-sim-job-id')).toBe(String(jobId));
    expect(got.headers.get('content-type')).toMatch(/^text\/plain/);
    const script = await got.text();
    expect(script).toMatch(/^#!\/bin\/sh\n/);
    expect(h.sim.job(jobId)).toMatchObject({ status: 'in_progress', runnerId: id, runnerName: 'r-1' });
    expect((await h.call('GET', `/repos/acme/app/actions/runners/${id}`)).body.busy).toBe(true);

    expect((await claim(token)).status).toBe(410);
    const del = await h.call('DELETE', `/repos/acme/app/actions/runners/${id}`);
    expect(del.status).toBe(422);
    expect(del.body.message).toContain('is still running a job');

    expect((await report(token, jobId, 0, 'all good')).status).toBe(200);
    expect(h.sim.job(jobId)).toMatchObject({ status: 'completed', conclusion: 'success', exitCode: 0, output: 'all good' });
    expect((await h.call('GET', '/repos/acme/app/actions/runners')).body.total_count).toBe(0);
    expect((await h.call('GET', `/repos/acme/app/actions/runners/${id}`)).status).toBe(404);
    expect((await claim(token)).status).toBe(401);
    expect((await report(token, jobId, 0, 'again')).status).toBe(401);

    const [view] = (await h.call('GET', '/_sim/runners', { auth: null })).body;
    expect(view).toMatchObject({ id, name: 'r-1', scope: 'repo', repo: 'acme/app', status: 'deleted', jobId, labels: LABELS });
    expect(view.busySince).toEqual(expect.any(String));
    expect(view.deletedAt).toEqual(expect.any(String));
    await h.sim.idle();
    const actions = h.sim.deliveries().filter((d) => d.workflowJobId === jobId).map((d) => d.action);
    expect(actions).toEqual(['queued', 'in_progress', 'completed']);
  });

  test('a runner deleted before it connects is refused', async () => {
    const { id, jit } = await register('r-2');
    expect((await h.call('DELETE', `/repos/acme/app/actions/runners/${id}`)).status).toBe(204);
    expect((await claim(decodeJitConfig(jit).token)).status).toBe(401);
    expect((await h.call('DELETE', `/repos/acme/app/actions/runners/${id}`)).status).toBe(404);
  });

  test('a guest cannot post an out-of-range exit code or more than 1 MiB of output', async () => {
    const { jit } = await register('r-3');
    const { token } = decodeJitConfig(jit);
    const jobId = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'b', labels: ['build'], steps: ['true'] }] }).jobs[0]!.id;
    expect((await claim(token)).status).toBe(200);
    expect((await report(token, jobId, 300, '')).status).toBe(400);
    expect((await report(token, jobId, 0, 'x'.repeat(1024 * 1024 + 10))).status).toBe(413);
    expect((await report(token, jobId + 1, 0, '')).status).toBe(404);
    expect((await report(token, jobId, 1, 'boom')).status).toBe(200);
    expect(h.sim.job(jobId)).toMatchObject({ conclusion: 'failure', exitCode: 1 });
  });
});

describe('assignment follows GitHub', () => {
  test('labels must be a subset (any case), oldest queued job first, repo scope stays in its repo', async () => {
    h.sim.createRepo({ owner: 'acme', name: 'other', visibility: 'private' });
    h.sim.createRun({ repo: 'acme/other', jobs: [{ name: 'elsewhere', labels: ['build'], steps: ['true'] }] });
    const gpu = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'gpu', labels: ['build', 'gpu'], steps: ['true'] }] }).jobs[0]!.id;
    const first = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'first', labels: ['Self-Hosted'], steps: ['true'] }] }).jobs[0]!.id;
    const second = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'second', labels: ['build'], steps: ['true'] }] }).jobs[0]!.id;
    const a = await runSimRunner((await register('a')).jit, { pollMs: 20 });
    const b = await runSimRunner((await register('b')).jit, { pollMs: 20 });
    expect([a.jobId, b.jobId]).toEqual([first, second]);
    expect(h.sim.job(gpu).status).toBe('queued');
  });

  test('an org runner takes jobs from any repository of its org, not of another', async () => {
    h.sim.createRepo({ owner: 'other-org', name: 'x', visibility: 'private' });
    h.sim.createRepo({ owner: 'acme', name: 'lib', visibility: 'private' });
    h.sim.createRun({ repo: 'other-org/x', jobs: [{ name: 'no', labels: ['build'], steps: ['true'] }] });
    const mine = h.sim.createRun({ repo: 'acme/lib', jobs: [{ name: 'yes', labels: ['build'], steps: ['true'] }] }).jobs[0]!.id;
    const r = await register('org-a', '/orgs/acme');
    expect((await runSimRunner(r.jit, { pollMs: 20 })).jobId).toBe(mine);
    expect(h.sim.runners()[0]).toMatchObject({ scope: 'org', org: 'acme', status: 'deleted' });
  });
});

describe('runSimRunner (Node)', () => {
  test('runs steps in order in sh, stops at the first failing one, reports output', async () => {
    const run = h.sim.createRun({
      repo: 'acme/app',
      jobs: [{ name: 'b', labels: ['build'], steps: ['echo "first $GITHUB_REPOSITORY"', "printf '%s\\n' \"it's quoted\"; exit 4", 'echo never'] }],
    });
    const r = await runSimRunner((await register('n-1')).jit, { pollMs: 20 });
    expect(r).toEqual({ jobId: run.jobs[0]!.id, exitCode: 4 });
    const job = h.sim.job(r.jobId);
    expect(job).toMatchObject({ status: 'completed', conclusion: 'failure', exitCode: 4 });
    expect(job.output).toContain('first acme/app');
    expect(job.output).toContain("it's quoted");
    expect(job.output).not.toContain('never\n');
  });

  test('stops polling when aborted', async () => {
    const ac = new AbortController();
    const p = runSimRunner((await register('n-2')).jit, { pollMs: 20, signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    await expect(p).rejects.toThrow();
  });
});

describe('runner.sh (busybox-compatible POSIX sh + wget)', () => {
  const script = fileURLToPath(new URL('../../src/sim/runner.sh', import.meta.url));
  const hasWget = async () => promisify(execFile)('sh', ['-c', 'command -v wget && command -v timeout && command -v base64']).then(() => true, () => false);

  test('runs one job with the host sh and wget, then the runner is gone', async (ctx) => {
    if (!(await hasWget())) {
      // Says why rather than passing silently; CI images must provide wget.
      throw new Error('runner.sh needs wget, timeout and base64 on this host (apt-get install wget)');
    }
    const dir = await mkdtemp(join(tmpdir(), 'runner-sh-'));
    try {
      const { jit } = await register('sh-1');
      const file = join(dir, 'jit');
      await writeFile(file, jit, { mode: 0o600 });
      const run = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'b', labels: ['build'], steps: ['echo from-sh', 'pwd', 'false', 'echo never'] }] });
      const res = await promisify(execFile)('sh', [script, file], { env: { ...process.env, HANGAR_SIM_POLL_SECONDS: '1' } }).then(
        () => ({ code: 0 }),
        (err: { code: number }) => ({ code: err.code }),
      );
      expect(res.code).toBe(1);
      const job = h.sim.job(run.jobs[0]!.id);
      expect(job).toMatchObject({ status: 'completed', conclusion: 'failure', exitCode: 1 });
      expect(job.output).toContain('from-sh');
      expect(job.output).toMatch(/hangar-sim-runner\.\w+\/work/);
      expect(job.output).not.toContain('never\n');
      expect(h.sim.runners()[0]!.status).toBe('deleted');
      ctx.annotate?.('ran with the host sh and wget, not busybox');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
