import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GitHubError } from '../../src/domain/errors.js';
import { RunnerBusyError, RunnerNameTakenError, type GitHubClient } from '../../src/github/index.js';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import { RUNS, TOKEN, answeredWith, captureLogger, startSimClient, type SimClient } from './helpers/sim.js';

/**
 * The GitHub client against the sim (in-process, 127.0.0.1:0): no mocks. Each test works in
 * its own repository so runners, runs and deliveries of one test do not leak into another.
 * Tests that count requests reset the sim's call record first (tests in a file run one at a time).
 */

let s: SimClient;
let gh: GitHubClient;

beforeAll(async () => {
  s = await startSimClient();
  gh = s.client();
});
afterAll(async () => {
  await s?.close();
});

const repo = (name: string) => s.sim.createRepo({ owner: 'acme', name, visibility: 'private' });
const job = (name: string, labels = ['self-hosted', 'build']) => ({ name, labels, steps: ['true'] });

/** Claims a queued job for a runner over the sim's runner protocol, as a guest would. */
async function claimJob(encodedJitConfig: string): Promise<number> {
  const { token } = decodeJitConfig(encodedJitConfig);
  const res = await fetch(`${s.url}/_runner/job`, { headers: { authorization: `RunnerToken ${token}` } });
  expect(res.status).toBe(200);
  return Number(res.headers.get('x-sim-job-id'));
}

describe('installation tokens', () => {
  test('many calls, some at once, mint one installation token', async () => {
    const fresh = s.client();
    s.sim.resetCalls();
    await Promise.all(Array.from({ length: 5 }, () => fresh.listRunners({ scope: 'repo', owner: 'acme', repo: 'app' })));
    for (let i = 0; i < 10; i++) await fresh.listQueuedRuns('acme', 'app');
    expect(s.sim.calls()).toEqual({
      [TOKEN]: { 201: 1 },
      'GET /repos/:owner/:repo/actions/runners': { 200: 5 },
      [RUNS]: { 200: 10 },
    });
  });

  test('without an installation id, it is looked up per repository and cached', async () => {
    const lookup = s.client({ installationId: null });
    s.sim.resetCalls();
    for (let i = 0; i < 3; i++) await lookup.listQueuedRuns('acme', 'app');
    // The organization resolves to the same installation: its Octokit, and its token, are reused.
    await lookup.listRunners({ scope: 'org', owner: 'acme' });
    await lookup.listRunners({ scope: 'org', owner: 'acme' });
    expect(s.sim.calls()).toEqual({
      'GET /repos/:owner/:repo/installation': { 200: 1 },
      'GET /orgs/:org/installation': { 200: 1 },
      [TOKEN]: { 201: 1 },
      [RUNS]: { 200: 3 },
      'GET /orgs/:org/actions/runners': { 200: 2 },
    });
  });

  test('a failed installation lookup is GitHubError 404 and is not cached', async () => {
    const lookup = s.client({ installationId: null });
    const err = await lookup.listQueuedRuns('acme', 'later').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 404 });
    repo('later'); // the App sees the repository now
    expect(await lookup.listQueuedRuns('acme', 'later')).toEqual([]);
  });
});

describe('JIT runners', () => {
  test('mints a repo runner; the sim has it with our labels; a second mint of the name is RunnerNameTakenError', async () => {
    repo('jit');
    const input = { scope: 'repo', owner: 'acme', repo: 'jit', name: 'hangar-jit-1', labels: ['self-hosted', 'build'], runnerGroupId: 1 } as const;
    const jit = await gh.mintJitConfig(input);
    expect(jit.runner).toEqual({ id: expect.any(Number), name: 'hangar-jit-1' });
    expect(decodeJitConfig(jit.encodedJitConfig).runnerName).toBe('hangar-jit-1');
    expect(s.sim.runners().find((r) => r.id === jit.runner.id)).toMatchObject({ repo: 'acme/jit', labels: ['self-hosted', 'build'] });

    const again = await gh.mintJitConfig(input).catch((e: unknown) => e);
    expect(again).toBeInstanceOf(RunnerNameTakenError);
    expect(again).toBeInstanceOf(GitHubError);
    expect(again).toMatchObject({ status: 409, runnerName: 'hangar-jit-1' });
  });

  test('mints an org runner', async () => {
    const jit = await gh.mintJitConfig({ scope: 'org', owner: 'acme', name: 'hangar-org-1', labels: ['self-hosted'], runnerGroupId: 1 });
    expect(s.sim.runners().find((r) => r.id === jit.runner.id)).toMatchObject({ scope: 'org', org: 'acme' });
    const listed = await gh.listRunners({ scope: 'org', owner: 'acme', namePrefix: 'hangar-org-' });
    expect(listed.map((r) => r.name)).toEqual(['hangar-org-1']);
  });

  test('never logs the JIT config, a token or the key', async () => {
    const { logger, lines } = captureLogger();
    const logged = s.client({ logger });
    const jit = await logged.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'app', name: 'hangar-quiet', labels: ['self-hosted'], runnerGroupId: 1 });
    await logged.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'app', name: 'hangar-quiet', labels: ['self-hosted'], runnerGroupId: 1 }).catch(() => undefined);
    const text = lines.map((l) => JSON.stringify(l)).join('\n');
    expect(lines.length).toBeGreaterThan(0);
    expect(text).not.toContain(jit.encodedJitConfig);
    expect(text).not.toContain(decodeJitConfig(jit.encodedJitConfig).token);
    expect(text).not.toMatch(/ghs_|PRIVATE KEY|bearer|authorization/i);
  });
});

describe('runners', () => {
  test('lists every page (120 runners), filtered by name prefix', async () => {
    repo('many');
    for (let i = 0; i < 120; i++) {
      await gh.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'many', name: `hangar-many-${i}`, labels: ['self-hosted'], runnerGroupId: 1 });
    }
    await gh.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'many', name: 'someone-else', labels: ['self-hosted'], runnerGroupId: 1 });
    s.sim.resetCalls();
    const ours = await gh.listRunners({ scope: 'repo', owner: 'acme', repo: 'many', namePrefix: 'hangar-many-' });
    expect(ours).toHaveLength(120);
    expect(new Set(ours.map((r) => r.name)).size).toBe(120);
    expect(ours[0]).toMatchObject({ status: 'offline', busy: false, labels: ['self-hosted'] });
    expect(s.sim.calls()).toEqual({ 'GET /repos/:owner/:repo/actions/runners': { 200: 2 } });
    expect(await gh.listRunners({ scope: 'repo', owner: 'acme', repo: 'many' })).toHaveLength(121);
  });

  test('delete: an idle runner goes, an unknown one resolves, a busy one is RunnerBusyError', async () => {
    repo('del');
    const where = { scope: 'repo', owner: 'acme', repo: 'del' } as const;
    const idle = await gh.mintJitConfig({ ...where, name: 'hangar-idle', labels: ['self-hosted', 'build'], runnerGroupId: 1 });
    await gh.deleteRunner({ ...where, runnerId: idle.runner.id });
    expect(s.sim.runners().find((r) => r.id === idle.runner.id)?.status).toBe('deleted');
    await expect(gh.deleteRunner({ ...where, runnerId: idle.runner.id })).resolves.toBeUndefined();
    await expect(gh.deleteRunner({ ...where, runnerId: 987_654 })).resolves.toBeUndefined();

    s.sim.createRun({ repo: 'acme/del', jobs: [job('build')] });
    const busy = await gh.mintJitConfig({ ...where, name: 'hangar-busy', labels: ['self-hosted', 'build'], runnerGroupId: 1 });
    await claimJob(busy.encodedJitConfig);
    const err = await gh.deleteRunner({ ...where, runnerId: busy.runner.id }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RunnerBusyError);
    expect(err).toMatchObject({ status: 422, runnerId: busy.runner.id });
  });

  test('listing the runners of an unknown repository is GitHubError 404', async () => {
    await expect(gh.listRunners({ scope: 'repo', owner: 'acme', repo: 'nope' })).rejects.toMatchObject({ status: 404 });
    await expect(gh.listRunners({ scope: 'repo', owner: 'acme', repo: 'nope' })).rejects.toBeInstanceOf(GitHubError);
  });
});

describe('runs and jobs', () => {
  test('a fork pull request shows the fork as head repository', async () => {
    repo('forked');
    const run = s.sim.createRun({ repo: 'acme/forked', event: 'pull_request', headBranch: 'patch-1', headRepository: 'mallory/forked', jobs: [job('test')] });
    const got = await gh.getRun('acme', 'forked', run.runId);
    expect(got).toMatchObject({
      id: run.runId,
      runAttempt: 1,
      event: 'pull_request',
      headBranch: 'patch-1',
      headRepositoryFullName: 'mallory/forked',
      repositoryFullName: 'acme/forked',
    });
    const own = s.sim.createRun({ repo: 'acme/forked', event: 'push', headBranch: 'main', jobs: [job('test')] });
    expect(await gh.getRun('acme', 'forked', own.runId)).toMatchObject({ headRepositoryFullName: 'acme/forked', event: 'push' });
  });

  test('getJob and listJobsForAttempt', async () => {
    repo('jobs');
    const run = s.sim.createRun({ repo: 'acme/jobs', jobs: [job('a'), job('b', ['self-hosted', 'deploy'])] });
    const a = run.jobs[0]!;
    expect(await gh.getJob('acme', 'jobs', a.id)).toMatchObject({
      id: a.id, runId: run.runId, runAttempt: 1, name: 'a', status: 'queued', labels: ['self-hosted', 'build'], runnerId: null,
    });
    const jobs = await gh.listJobsForAttempt('acme', 'jobs', run.runId, run.runAttempt);
    expect(jobs.map((j) => j.name).sort()).toEqual(['a', 'b']);
    await expect(gh.getJob('acme', 'jobs', 1)).rejects.toMatchObject({ status: 404 });
  });

  test('listQueuedRuns lists the queued runs only', async () => {
    repo('queue');
    const q1 = s.sim.createRun({ repo: 'acme/queue', jobs: [job('x', ['self-hosted', 'q'])] });
    const started = s.sim.createRun({ repo: 'acme/queue', jobs: [job('y', ['self-hosted', 'started'])] });
    const q2 = s.sim.createRun({ repo: 'acme/queue', jobs: [job('z', ['self-hosted', 'q'])] });
    const r = await gh.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'queue', name: 'hangar-q', labels: ['self-hosted', 'started'], runnerGroupId: 1 });
    expect(await claimJob(r.encodedJitConfig)).toBe(started.jobs[0]!.id);
    const queued = await gh.listQueuedRuns('acme', 'queue');
    expect(queued.map((x) => x.id).sort()).toEqual([q1.runId, q2.runId].sort());
  });
});

describe('cancelling a run', () => {
  const CANCEL = 'POST /repos/:owner/:repo/actions/runs/:run_id/cancel';

  test('queued jobs complete as cancelled, one completed webhook each; other runs untouched; no runner takes them', async () => {
    repo('refused');
    const refused = s.sim.createRun({ repo: 'acme/refused', event: 'pull_request', headRepository: 'mallory/refused', jobs: [job('a'), job('b')] });
    const legit = s.sim.createRun({ repo: 'acme/refused', jobs: [job('c')] });
    s.sim.resetCalls();
    expect(await gh.cancelRun('acme', 'refused', refused.runId)).toBe('cancelled');
    expect(s.sim.calls()).toEqual({ [CANCEL]: { 202: 1 } });

    for (const j of refused.jobs) expect(s.sim.job(j.id)).toMatchObject({ status: 'completed', conclusion: 'cancelled', runnerId: null });
    expect(await gh.getRun('acme', 'refused', refused.runId)).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
    await s.sim.idle();
    const ids = refused.jobs.map((j) => j.id);
    const completed = s.sim.deliveries().filter((d) => d.action === 'completed' && ids.includes(d.workflowJobId ?? 0) && !d.redelivery);
    expect(completed.map((d) => d.workflowJobId).sort()).toEqual([...ids].sort());

    // The next runner minted for the legitimate job takes that one, not a refused one.
    expect(s.sim.job(legit.jobs[0]!.id).status).toBe('queued');
    const jit = await gh.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'refused', name: 'hangar-legit', labels: ['self-hosted', 'build'], runnerGroupId: 1 });
    expect(await claimJob(jit.encodedJitConfig)).toBe(legit.jobs[0]!.id);
  });

  test('a run with a job in progress: that job is cancelled too', async () => {
    repo('busy-run');
    const run = s.sim.createRun({ repo: 'acme/busy-run', jobs: [job('running'), job('waiting', ['self-hosted', 'later'])] });
    const jit = await gh.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'busy-run', name: 'hangar-busy-run', labels: ['self-hosted', 'build'], runnerGroupId: 1 });
    expect(await claimJob(jit.encodedJitConfig)).toBe(run.jobs[0]!.id);
    expect(await gh.cancelRun('acme', 'busy-run', run.runId)).toBe('cancelled');
    for (const j of run.jobs) expect(s.sim.job(j.id)).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
  });

  test('a completed run is already-completed (409); an unknown run is GitHubError 404', async () => {
    repo('done-run');
    const run = s.sim.createRun({ repo: 'acme/done-run', jobs: [job('x')] });
    s.sim.cancelJob(run.jobs[0]!.id);
    s.sim.resetCalls();
    expect(await gh.cancelRun('acme', 'done-run', run.runId)).toBe('already-completed');
    const err = await gh.cancelRun('acme', 'done-run', 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 404 });
    await expect(gh.cancelRun('acme', 'nope', run.runId)).rejects.toMatchObject({ status: 404 });
    // Neither is retried.
    expect(s.sim.calls()).toEqual({ [CANCEL]: { 409: 1, 404: 2 } });
  });
});

describe('webhook deliveries (App JWT)', () => {
  test('lists across pages by cursor, honours since, and redelivers', async () => {
    repo('hooks');
    // No webhook URL is set: every delivery fails, as reconcile would find them.
    s.sim.createRun({ repo: 'acme/hooks', jobs: Array.from({ length: 101 }, (_, i) => job(`j${i}`)) });
    await s.sim.idle();

    const first = await gh.listDeliveries({ maxPages: 1 });
    expect(first.deliveries).toHaveLength(100);
    expect(first.nextCursor).toEqual(expect.any(String));
    const rest = await gh.listDeliveries({ cursor: first.nextCursor! });
    expect(rest.nextCursor).toBeNull();
    const all = [...first.deliveries, ...rest.deliveries];
    expect(new Set(all.map((d) => d.id)).size).toBe(all.length);
    expect(all.length).toBe(s.sim.deliveries().filter((d) => !d.duplicate).length);
    expect(all[0]).toMatchObject({ event: 'workflow_job', action: 'queued', redelivery: false, deliveredAt: expect.any(Date) });

    expect((await gh.listDeliveries({ since: new Date(Date.now() + 60_000) })).deliveries).toEqual([]);

    const failed = all.find((d) => d.statusCode === 0 || d.statusCode >= 400)!;
    await gh.redeliver(failed.id);
    await s.sim.idle();
    expect(s.sim.deliveries().filter((d) => d.guid === failed.guid && d.redelivery)).toHaveLength(1);
    await expect(gh.redeliver(999)).rejects.toMatchObject({ status: 404 });
  });

  test('lists down to an id (a cursor of handled deliveries), and gets one with its payload', async () => {
    repo('hooks2');
    const [queued] = s.sim.createRun({ repo: 'acme/hooks2', jobs: [job('a'), job('b')] }).jobs;
    await s.sim.idle();
    const newest = (await gh.listDeliveries({ maxPages: 1 })).deliveries;
    const [second, first] = newest;
    expect((await gh.listDeliveries({ afterId: first!.id })).deliveries.map((d) => d.id)).toEqual([second!.id]);
    expect((await gh.listDeliveries({ afterId: second!.id })).deliveries).toEqual([]);

    const got = await gh.getDelivery(first!.id);
    expect(got).toMatchObject({ id: first!.id, guid: first!.guid, event: 'workflow_job', action: 'queued' });
    expect(got.headers).toEqual({ 'x-github-delivery': first!.guid, 'x-github-event': 'workflow_job' });
    expect(got.payload).toMatchObject({ action: 'queued', workflow_job: { id: queued!.id }, repository: { full_name: 'acme/hooks2' } });
    await expect(gh.getDelivery(987_654_321)).rejects.toMatchObject({ status: 404 });
  });
});

describe('rate limits', () => {
  test('secondary rate limits: waits out retry-after, logs the delay, and the calls succeed', async () => {
    const { logger, lines } = captureLogger();
    const limited = s.client({ logger, throttle: { maxRetries: 10 } });
    await limited.listQueuedRuns('acme', 'app'); // token minted before the knob is set
    s.sim.setKnobs({ rateLimitShare: 0.5, retryAfterSeconds: 1, seed: 7 });
    s.sim.resetCalls();
    const started = Date.now();
    try {
      for (let i = 0; i < 6; i++) await limited.listQueuedRuns('acme', 'app');
    } finally {
      s.sim.setKnobs({ rateLimitShare: 0 });
    }
    const took = Date.now() - started;
    const calls = s.sim.calls();
    const hits = answeredWith(calls, 403);
    expect(calls).toEqual({ [RUNS]: { 200: 6, 403: hits } });
    expect(hits).toBeGreaterThan(0);
    expect(took).toBeGreaterThanOrEqual(hits * 1000);
    const warnings = lines.filter((l) => l.msg === 'github rate limited, retrying after the stated delay');
    expect(warnings).toHaveLength(hits);
    expect(warnings[0]).toMatchObject({ level: 40, kind: 'secondary', retryAfterSeconds: 1 });
  });

  test('429 is handled the same way, the installation token request included', async () => {
    const limited = s.client({ throttle: { maxRetries: 10 } });
    s.sim.setKnobs({ rateLimitShare: 0.5, retryAfterSeconds: 1, rateLimitStatus: 429, seed: 7 });
    s.sim.resetCalls();
    try {
      for (let i = 0; i < 4; i++) await limited.listQueuedRuns('acme', 'app');
    } finally {
      s.sim.setKnobs({ rateLimitShare: 0, rateLimitStatus: 403 });
    }
    const calls = s.sim.calls();
    expect(answeredWith(calls, 429)).toBeGreaterThan(0);
    expect(calls[RUNS]?.[200]).toBe(4);
    expect(calls[TOKEN]?.[201]).toBe(1);
  });

  test('gives up after the bounded retries with GitHubError 403', async () => {
    const { logger, lines } = captureLogger();
    const limited = s.client({ logger, throttle: { maxRetries: 1 } });
    await limited.listQueuedRuns('acme', 'app');
    s.sim.setKnobs({ rateLimitShare: 1, retryAfterSeconds: 1 });
    s.sim.resetCalls();
    const err = await limited.getRun('acme', 'app', 1).catch((e: unknown) => e).finally(() => s.sim.setKnobs({ rateLimitShare: 0 }));
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 403 });
    expect(s.sim.calls()).toEqual({ 'GET /repos/:owner/:repo/actions/runs/:run_id': { 403: 2 } });
    expect(lines.filter((l) => l.msg === 'github rate limited, giving up')).toHaveLength(1);
  });

  test('writes are spaced as GitHub asks (1 s by default)', async () => {
    repo('spaced');
    const polite = s.client({ throttle: { writeSpacingMs: 1000 } });
    const started = Date.now();
    await Promise.all(
      [1, 2, 3].map((i) => polite.mintJitConfig({ scope: 'repo', owner: 'acme', repo: 'spaced', name: `hangar-s${i}`, labels: ['self-hosted'], runnerGroupId: 1 })),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
  });

  test('cancelling a run is a write: spaced like the others', async () => {
    repo('spaced-cancel');
    const runs = [1, 2].map(() => s.sim.createRun({ repo: 'acme/spaced-cancel', jobs: [job('x')] }));
    const polite = s.client({ throttle: { writeSpacingMs: 1000 } });
    await polite.listQueuedRuns('acme', 'spaced-cancel'); // token first: its POST is spaced too
    const started = Date.now();
    const results = await Promise.all(runs.map((r) => polite.cancelRun('acme', 'spaced-cancel', r.runId)));
    expect(results).toEqual(['cancelled', 'cancelled']);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
  });

  test('a stated delay longer than maxRetryAfterSeconds is not waited out', async () => {
    const limited = s.client({ throttle: { maxRetryAfterSeconds: 5 } });
    await limited.listQueuedRuns('acme', 'app');
    s.sim.setKnobs({ rateLimitShare: 1, retryAfterSeconds: 600 });
    const started = Date.now();
    const err = await limited.listQueuedRuns('acme', 'app').catch((e: unknown) => e).finally(() => s.sim.setKnobs({ rateLimitShare: 0 }));
    expect(err).toMatchObject({ status: 403 });
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
