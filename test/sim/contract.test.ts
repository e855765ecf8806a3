import { createAppAuth } from '@octokit/auth-app';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import { expectGitHubShape } from './helpers/openapi.js';
import { startSim, type SimHarness } from './helpers/sim.js';

/**
 * Every response of the sim's GitHub REST subset must match the schema api.github.com documents
 * for that operation and status (node_modules/@octokit/openapi, dereferenced description).
 */
let h: SimHarness;
let jwt: string;

const REPO = '/repos/{owner}/{repo}';
const ORG = '/orgs/{org}';

async function expectShape(method: string, apiPath: string, path: string, status: number, opts: { body?: unknown; auth?: string | null } = {}) {
  const res = await h.call(method, path, opts);
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expectGitHubShape(method, apiPath, status, res.body);
  return res;
}

beforeAll(async () => {
  h = await startSim();
  h.sim.createRepo({ owner: 'acme', name: 'lib', visibility: 'internal' });
  const auth = createAppAuth({ appId: h.sim.appId, privateKey: h.sim.appPrivateKeyPem });
  jwt = (await auth({ type: 'app' })).token;
});
afterAll(async () => h.close());

test('the checker itself rejects what GitHub would not send', () => {
  expect(() => expectGitHubShape('GET', `${REPO}/actions/jobs/{job_id}`, 200, { id: 'x' })).toThrow(/does not match/);
  expect(() => expectGitHubShape('GET', `${REPO}/actions/runners`, 201, {})).toThrow(/does not document/);
});

describe('App auth', () => {
  test('201 installation token from a JWT made by @octokit/auth-app', async () => {
    const res = await expectShape('POST', '/app/installations/{installation_id}/access_tokens', '/app/installations/7/access_tokens', 201, { auth: `Bearer ${jwt}` });
    expect(res.body.token).toMatch(/^ghs_[A-Za-z0-9]{36}$/);
    const ok = await h.call('GET', '/repos/acme/app', { auth: `token ${res.body.token}` });
    expect(ok.status).toBe(200);
  });
  test('404 for another installation, 401 without a credential', async () => {
    await expectShape('POST', '/app/installations/{installation_id}/access_tokens', '/app/installations/8/access_tokens', 404, { auth: `Bearer ${jwt}` });
    await expectShape('POST', '/app/installations/{installation_id}/access_tokens', '/app/installations/7/access_tokens', 401, { auth: null });
  });
});

describe('repository', () => {
  test('200 full repository; 404 unknown', async () => {
    const res = await expectShape('GET', REPO, '/repos/acme/lib', 200);
    expect(res.body).toMatchObject({ full_name: 'acme/lib', private: true, visibility: 'internal', fork: false });
    await expectShape('GET', REPO, '/repos/acme/nope', 404);
  });
});

describe('runners', () => {
  const jit = { name: 'r-1', runner_group_id: 1, labels: ['self-hosted', 'linux', 'x64', 'build'] };
  test('repo scope: 201, 409 duplicate name, 422 bad body, 404 unknown repo', async () => {
    const path = `${REPO}/actions/runners/generate-jitconfig`;
    const res = await expectShape('POST', path, '/repos/acme/app/actions/runners/generate-jitconfig', 201, { body: jit });
    expect(res.body.runner).toMatchObject({ name: 'r-1', busy: false, ephemeral: true });
    await expectShape('POST', path, '/repos/acme/app/actions/runners/generate-jitconfig', 409, { body: jit });
    await expectShape('POST', path, '/repos/acme/app/actions/runners/generate-jitconfig', 422, { body: { name: 'x', labels: [] } });
    await expectShape('POST', path, '/repos/acme/app/actions/runners/generate-jitconfig', 422, { body: { ...jit, name: 'r-2', labels: [] } });
    await expectShape('POST', path, '/repos/acme/nope/actions/runners/generate-jitconfig', 404, { body: jit });
  });
  test('org scope: 201 and list', async () => {
    await expectShape('POST', `${ORG}/actions/runners/generate-jitconfig`, '/orgs/acme/actions/runners/generate-jitconfig', 201, { body: { ...jit, name: 'org-1' } });
    const res = await expectShape('GET', `${ORG}/actions/runners`, '/orgs/acme/actions/runners', 200);
    expect(res.body.runners.map((r: { name: string }) => r.name)).toEqual(['org-1']);
  });
  test('list paginates with a Link header like GitHub; name filter', async () => {
    for (const n of ['r-2', 'r-3']) await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { ...jit, name: n } });
    const p1 = await expectShape('GET', `${REPO}/actions/runners`, '/repos/acme/app/actions/runners?per_page=2', 200);
    expect(p1.body.total_count).toBe(3);
    expect(p1.body.runners).toHaveLength(2);
    expect(p1.headers.get('link')).toMatch(/<http:\/\/127\.0\.0\.1:\d+\/repos\/acme\/app\/actions\/runners\?per_page=2&page=2>; rel="next", <[^>]+page=2>; rel="last"/);
    const p2 = await expectShape('GET', `${REPO}/actions/runners`, '/repos/acme/app/actions/runners?per_page=2&page=2', 200);
    expect(p2.body.runners).toHaveLength(1);
    expect(p2.headers.get('link')).toContain('rel="prev"');
    const byName = await expectShape('GET', `${REPO}/actions/runners`, '/repos/acme/app/actions/runners?name=r-3', 200);
    expect(byName.body.runners.map((r: { name: string }) => r.name)).toEqual(['r-3']);
  });
  test('get 200, delete 204, then 404', async () => {
    const { body } = await h.call('GET', '/repos/acme/app/actions/runners?name=r-3');
    const id = body.runners[0].id as number;
    await expectShape('GET', `${REPO}/actions/runners/{runner_id}`, `/repos/acme/app/actions/runners/${id}`, 200);
    await expectShape('DELETE', `${REPO}/actions/runners/{runner_id}`, `/repos/acme/app/actions/runners/${id}`, 204);
    const gone = await h.call('GET', `/repos/acme/app/actions/runners/${id}`);
    expect(gone.status).toBe(404);
  });
  test('401 without a token, with a bad one, with an App JWT', async () => {
    for (const auth of [null, 'token ghs_nope', `Bearer ${jwt}`]) {
      const res = await h.call('GET', '/repos/acme/app/actions/runners', { auth });
      expect(res.status).toBe(401);
      expectGitHubShape('POST', '/app/installations/{installation_id}/access_tokens', 401, res.body);
    }
  });
});

describe('runs, jobs, deliveries', () => {
  let runId: number;
  let jobId: number;
  test('jobs and runs in every state match GitHub', async () => {
    h.sim.createRepo({ owner: 'evil', name: 'app', visibility: 'public', forkOf: 'acme/app' });
    const run = h.sim.createRun({ repo: 'acme/app', event: 'pull_request', headBranch: 'feature', headRepository: 'evil/app', jobs: [{ name: 'build', labels: ['self-hosted', 'build'], steps: ['echo hi', 'exit 3'] }, { name: 'lint', labels: ['nope'], steps: ['true'] }] });
    runId = run.runId;
    jobId = run.jobs[0]!.id;
    const job = `/repos/acme/app/actions/jobs/${jobId}`;
    await expectShape('GET', `${REPO}/actions/jobs/{job_id}`, job, 200);
    const queued = await expectShape('GET', `${REPO}/actions/runs`, '/repos/acme/app/actions/runs?status=queued', 200);
    expect(queued.body.workflow_runs.map((r: { id: number }) => r.id)).toContain(runId);
    const got = await expectShape('GET', `${REPO}/actions/runs/{run_id}`, `/repos/acme/app/actions/runs/${runId}`, 200);
    expect(got.body).toMatchObject({ event: 'pull_request', head_branch: 'feature', head_repository: { full_name: 'evil/app', fork: true }, repository: { full_name: 'acme/app' } });

    const { body } = await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { name: 'runs-1', runner_group_id: 1, labels: ['self-hosted', 'build'] } });
    const runner = { authorization: `RunnerToken ${decodeJitConfig(body.encoded_jit_config).token}` };
    const claimed = await fetch(`${h.url}/_runner/job`, { headers: runner });
    expect(claimed.status).toBe(200);
    const running = await expectShape('GET', `${REPO}/actions/jobs/{job_id}`, job, 200);
    expect(running.body).toMatchObject({ status: 'in_progress', runner_name: 'runs-1', runner_group_name: 'Default' });
    await expectShape('GET', `${REPO}/actions/runs/{run_id}`, `/repos/acme/app/actions/runs/${runId}`, 200);
    await fetch(`${h.url}/_runner/jobs/${jobId}/result?exit=3`, { method: 'POST', headers: runner, body: '##[sim] step 1 exit 0\n##[sim] step 2 exit 3\n' });
    expect(h.sim.job(jobId).exitCode).toBe(3);
    const done = await expectShape('GET', `${REPO}/actions/jobs/{job_id}`, job, 200);
    expect(done.body).toMatchObject({ status: 'completed', conclusion: 'failure', runner_name: 'runs-1' });
    expect(done.body.steps.map((s: { conclusion: string }) => s.conclusion)).toEqual(['success', 'success', 'failure']);
    const inProgress = await expectShape('GET', `${REPO}/actions/runs`, '/repos/acme/app/actions/runs?status=in_progress&per_page=1', 200);
    expect(inProgress.body.total_count).toBe(1);
    const jobs = await expectShape('GET', `${REPO}/actions/runs/{run_id}/attempts/{attempt_number}/jobs`, `/repos/acme/app/actions/runs/${runId}/attempts/1/jobs`, 200);
    expect(jobs.body.jobs.map((j: { status: string }) => j.status)).toEqual(['completed', 'queued']);
    await expectShape('GET', `${REPO}/actions/runs/{run_id}/attempts/{attempt_number}/jobs`, `/repos/acme/app/actions/runs/${runId}/attempts/2/jobs`, 404);
  });

  test('deliveries: list (cursor Link), get, redeliver 202', async () => {
    await h.sim.idle();
    const auth = `Bearer ${jwt}`;
    const all = await expectShape('GET', '/app/hook/deliveries', '/app/hook/deliveries', 200, { auth });
    expect(all.body.length).toBeGreaterThanOrEqual(4);
    const page = await expectShape('GET', '/app/hook/deliveries', '/app/hook/deliveries?per_page=2', 200, { auth });
    const next = /<([^>]+)>; rel="next"/.exec(page.headers.get('link') ?? '')?.[1];
    expect(next).toMatch(/cursor=v1_\d+/);
    const page2 = await expectShape('GET', '/app/hook/deliveries', new URL(next!).pathname + new URL(next!).search, 200, { auth });
    expect(page2.body[0].id).toBeLessThan(page.body[1].id);
    const one = await expectShape('GET', '/app/hook/deliveries/{delivery_id}', `/app/hook/deliveries/${page.body[0].id}`, 200, { auth });
    expect(one.body.request.headers['X-GitHub-Event']).toBe('workflow_job');
    await expectShape('POST', '/app/hook/deliveries/{delivery_id}/attempts', `/app/hook/deliveries/${page.body[0].id}/attempts`, 202, { auth });
    const unauth = await h.call('GET', '/app/hook/deliveries', {});
    expect(unauth.status).toBe(401);
  });
});
