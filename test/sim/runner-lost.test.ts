import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import type { Job } from '../../src/sim/model.js';
import { runSimRunner } from '../../src/sim/runner.js';
import { SimStore } from '../../src/sim/store.js';
import { startSim, type SimHarness } from './helpers/sim.js';
import { expectWorkflowJobPayload } from './helpers/webhook-schema.js';

/**
 * A runner holds a lock on its job and renews it while the job runs; when renewals stop (the VM
 * was killed), the job ends `failure` as on GitHub ("The self-hosted runner: NAME lost
 * communication with the server"), with its completed webhook, and the runner is gone.
 */
let h: SimHarness;
let dir: string;
beforeEach(async () => {
  h = await startSim();
  dir = await mkdtemp(join(tmpdir(), 'runner-lost-'));
});
afterEach(async () => {
  await h.close();
  await rm(dir, { recursive: true, force: true });
});

const LABELS = ['self-hosted', 'build'];
const LOST = /##\[error\]The self-hosted runner: \S+ lost communication with the server\./;

async function register(name: string) {
  const res = await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { name, runner_group_id: 1, labels: LABELS } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return { id: res.body.runner.id as number, jit: res.body.encoded_jit_config as string };
}

const runJob = (steps: string[]) => h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'long', labels: LABELS, steps }] }).jobs[0]!.id;

/** Polls until `ok` holds; the deadline only bounds a broken run, it asserts no speed. */
async function until(what: string, ok: () => boolean | Promise<boolean>, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`gave up waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** The job's step writes its shell's pid, then becomes `sleep 30`: the process a kill must not leave behind. */
const longStep = () => `echo $$ > ${dir}/step.pid; exec sleep 30`;
const stepPid = async () => Number((await readFile(join(dir, 'step.pid'), 'utf8')).trim());

async function expectLost(jobId: number, runnerId: number): Promise<void> {
  await until('the lost job completes', () => h.sim.job(jobId).status === 'completed');
  const job = h.sim.job(jobId);
  expect(job).toMatchObject({ status: 'completed', conclusion: 'failure', exitCode: null });
  expect(job.output).toMatch(LOST);
  expect(job.output).toContain(`The self-hosted runner: ${job.runnerName} lost communication`);
  expect(h.sim.runners().find((r) => r.id === runnerId)).toMatchObject({ status: 'deleted' });
  await h.sim.idle();
  const completed = h.receiver.received.filter((r) => r.payload.workflow_job.id === jobId && r.payload.action === 'completed');
  expect(completed).toHaveLength(1);
  expectWorkflowJobPayload(completed[0]!.payload);
  expect(completed[0]!.payload.workflow_job).toMatchObject({ status: 'completed', conclusion: 'failure', runner_id: runnerId });
}

describe('the renew route', () => {
  test('200 with the new deadline while the job runs; 409 for a job not its own or not running; 401 once retired', async () => {
    h.sim.setKnobs({ jobLockTimeoutMs: 60_000 });
    const jobId = runJob(['true']);
    const { jit } = await register('renew-1');
    const { token } = decodeJitConfig(jit);
    const auth = { authorization: `RunnerToken ${token}` };
    const renew = (id: number, headers: Record<string, string> = auth) => fetch(`${h.url}/_runner/jobs/${id}/renew`, { method: 'POST', headers });

    expect((await renew(jobId)).status).toBe(409); // not assigned yet
    const claimed = await fetch(`${h.url}/_runner/job`, { headers: auth });
    expect(claimed.status).toBe(200);
    await claimed.text();

    const ok = await renew(jobId);
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { id: number; lockedUntil: string };
    expect(body.id).toBe(jobId);
    expect(Date.parse(body.lockedUntil) - Date.now()).toBeGreaterThan(30_000);
    expect((await renew(jobId + 1)).status).toBe(409);
    expect((await renew(jobId, { authorization: `RunnerToken ${'0'.repeat(40)}` })).status).toBe(401);
    expect((await renew(jobId, {})).status).toBe(401);

    const done = await fetch(`${h.url}/_runner/jobs/${jobId}/result?exit=0`, { method: 'POST', headers: { ...auth, 'content-type': 'text/plain' }, body: 'ok' });
    expect(done.status).toBe(200);
    expect((await renew(jobId)).status).toBe(401); // the ephemeral runner is gone with its job
  });

  test('a cancelled job is not renewed', async () => {
    const jobId = runJob(['true']);
    const { token } = decodeJitConfig((await register('renew-2')).jit);
    const auth = { authorization: `RunnerToken ${token}` };
    await (await fetch(`${h.url}/_runner/job`, { headers: auth })).text();
    h.sim.cancelJob(jobId);
    const res = await fetch(`${h.url}/_runner/jobs/${jobId}/renew`, { method: 'POST', headers: auth });
    expect(res.status).toBe(401);
  });
});

describe('the lock, on the store', () => {
  const setup = () => {
    const events: [string, Job][] = [];
    const store = new SimStore((action, job) => events.push([action, job]));
    const repo = store.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
    const { jobs } = store.createRun({ repo: 'acme/app', jobs: [{ name: 'j', labels: LABELS, steps: ['true'] }] });
    const runner = store.createRunner({ scope: 'repo', repo, name: 'r-1', labels: LABELS, groupId: 1, workFolder: '_work' });
    const before = Date.now();
    expect(store.claim(runner).kind).toBe('job');
    return { store, events, runner, job: jobs[0]!, before };
  };

  test('assignment counts as the first renewal; each renewal moves the deadline; the job is lost at the timeout', () => {
    const { store, events, runner, job, before } = setup();
    expect(store.loseExpired(1000, before - 1)).toEqual([]);
    const renewedAt = Date.now() + 900;
    expect(store.renew(runner, job.id, 1000, renewedAt)).toBe(renewedAt + 1000);
    expect(store.loseExpired(1000, renewedAt + 999)).toEqual([]);
    expect(job.status).toBe('in_progress');
    expect(store.loseExpired(1000, renewedAt + 1000)).toEqual([job]);
    expect(job).toMatchObject({ status: 'completed', conclusion: 'failure' });
    expect(job.output).toMatch(LOST);
    expect(runner.deletedAt).not.toBeNull();
    expect(events.map(([a]) => a)).toEqual(['queued', 'in_progress', 'completed']);
    expect(store.loseExpired(1000, renewedAt + 10_000)).toEqual([]); // once
    expect(() => store.renew(runner, job.id, 1000)).toThrow(/not running/);
  });

  test('a timeout of 0 never loses a job', () => {
    const { store, job } = setup();
    expect(store.loseExpired(0, Date.now() + 86_400_000)).toEqual([]);
    expect(job.status).toBe('in_progress');
  });

  test('a job that completes lets go of its lock', () => {
    const { store, runner, job } = setup();
    store.finish(runner, job.id, 0, '');
    expect(store.loseExpired(1, Date.now() + 86_400_000)).toEqual([]);
    expect(job.conclusion).toBe('success');
  });
});

describe('runSimRunner (Node)', () => {
  test('killed mid-job: the job ends failure, its completed webhook goes out, the runner is gone, no step is left', async () => {
    h.sim.setKnobs({ jobLockTimeoutMs: 2000 });
    const jobId = runJob([longStep()]);
    const { id, jit } = await register('lost-node');
    const ac = new AbortController();
    const running = runSimRunner(jit, { pollMs: 20, renewMs: 500, signal: ac.signal }).catch((err: unknown) => err);
    await until('the step starts', async () => (await readFile(join(dir, 'step.pid'), 'utf8').catch(() => '')).trim() !== '');
    const pid = await stepPid();
    expect(h.sim.job(jobId).status).toBe('in_progress');
    ac.abort();
    expect(await running).toBeInstanceOf(Error);
    await until('the step is killed with its runner', () => !alive(pid));
    await expectLost(jobId, id);
  });

  test('a live runner renewing every second keeps a 5 s job past a 2 s lock timeout', async () => {
    h.sim.setKnobs({ jobLockTimeoutMs: 2000 });
    const jobId = runJob(['sleep 5', 'echo done']);
    const r = await runSimRunner((await register('live-node')).jit, { pollMs: 20, renewMs: 1000 });
    expect(r).toEqual({ jobId, exitCode: 0 });
    const job = h.sim.job(jobId);
    expect(job).toMatchObject({ status: 'completed', conclusion: 'success', exitCode: 0 });
    expect(job.output).not.toMatch(LOST);
  });
});

describe('runner.sh (host sh and wget)', () => {
  const script = fileURLToPath(new URL('../../src/sim/runner.sh', import.meta.url));
  const needTools = async () => {
    const ok = await promisify(execFile)('sh', ['-c', 'command -v wget && command -v timeout && command -v base64']).then(() => true, () => false);
    // Says why rather than passing silently; CI images must provide wget.
    if (!ok) throw new Error('runner.sh needs wget, timeout and base64 on this host (apt-get install wget)');
  };
  const jitFile = async (name: string) => {
    const r = await register(name);
    const file = join(dir, `${name}.jit`);
    await writeFile(file, r.jit, { mode: 0o600 });
    return { ...r, file };
  };

  test('killed mid-job (its whole process group, as a VM dies): the job ends failure', async () => {
    await needTools();
    h.sim.setKnobs({ jobLockTimeoutMs: 2000 });
    const jobId = runJob([longStep()]);
    const { id, file } = await jitFile('lost-sh');
    const child = spawn('sh', [script, file], { detached: true, stdio: 'ignore', env: { ...process.env, HANGAR_SIM_POLL_SECONDS: '1', HANGAR_SIM_RENEW_SECONDS: '1' } });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    await until('the step starts', async () => (await readFile(join(dir, 'step.pid'), 'utf8').catch(() => '')).trim() !== '');
    const pid = await stepPid();
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
    await until('the step dies with the group', () => !alive(pid));
    await expectLost(jobId, id);
  });

  test('a live runner.sh renewing every second keeps a 5 s job past a 2 s lock timeout, and leaves no renew loop behind', async () => {
    await needTools();
    h.sim.setKnobs({ jobLockTimeoutMs: 2000 });
    const jobId = runJob(['sleep 5', 'echo done']);
    const { file } = await jitFile('live-sh');
    // execFile resolves once stdout and stderr are closed: a renew loop (or its sleep) still
    // running would hold stderr open and this would never return.
    const res = await promisify(execFile)('sh', [script, file], { env: { ...process.env, HANGAR_SIM_POLL_SECONDS: '1', HANGAR_SIM_RENEW_SECONDS: '1' } });
    expect(res.stderr).toBe('');
    const job = h.sim.job(jobId);
    expect(job).toMatchObject({ status: 'completed', conclusion: 'success', exitCode: 0 });
    expect(job.output).not.toMatch(LOST);
  });

  test('HANGAR_SIM_RENEW_SECONDS must be a whole number above 0', async () => {
    await needTools();
    const { file } = await jitFile('bad-renew');
    const err = await promisify(execFile)('sh', [script, file], { env: { ...process.env, HANGAR_SIM_RENEW_SECONDS: '0.5' } }).then(() => null, (e: { code: number; stderr: string }) => e);
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('HANGAR_SIM_RENEW_SECONDS');
  });
});
