import { createAppAuth } from '@octokit/auth-app';
import { verify } from '@octokit/webhooks-methods';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import { expectGitHubShape } from './helpers/openapi.js';
import { startReceiver } from './helpers/receiver.js';
import { startSim, type SimHarness } from './helpers/sim.js';

/**
 * Every response of the sim's GitHub REST subset must match the schema api.github.com documents
 * for that operation and status (node_modules/@octokit/openapi, dereferenced description).
 */
let h: SimHarness;
let jwt: string;

const REPO = '/repos/{owner}/{repo}';
const ORG = '/orgs/{org}';

async function expectShape(method: string, apiPath: string, path: string, status: number, opts: { body?: unknown; auth?: string | null; on?: SimHarness } = {}) {
  const res = await (opts.on ?? h).call(method, path, opts);
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
  test('200 GET /app with the App JWT (hangar doctor asks it), 401 without', async () => {
    const res = await expectShape('GET', '/app', '/app', 200, { auth: `Bearer ${jwt}` });
    expect(res.body.id).toBe(h.sim.appId);
    const bare = await h.call('GET', '/app', { auth: null });
    expect(bare.status).toBe(401);
  });
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

describe('installation (App JWT)', () => {
  test('of a repository: 200 the installation on its owner; 404 unknown; 401 with an installation token', async () => {
    const auth = `Bearer ${jwt}`;
    const res = await expectShape('GET', `${REPO}/installation`, '/repos/acme/lib/installation', 200, { auth });
    expect(res.body).toMatchObject({ id: 7, app_id: 42, account: { login: 'acme' }, target_type: 'Organization', repository_selection: 'all' });
    expect(res.body.access_tokens_url).toBe(`${h.url}/app/installations/7/access_tokens`);
    await expectShape('GET', `${REPO}/installation`, '/repos/acme/nope/installation', 404, { auth });
    const withToken = await h.call('GET', '/repos/acme/lib/installation');
    expect(withToken.status).toBe(401);
  });
  test('of an organization: 200; 404 unknown', async () => {
    const res = await expectShape('GET', `${ORG}/installation`, '/orgs/ACME/installation', 200, { auth: `Bearer ${jwt}` });
    expect(res.body).toMatchObject({ id: 7, account: { login: 'acme' } });
    // GitHub documents no 404 for this operation, but sends one, with the Basic Error body of its sibling.
    const missing = await h.call('GET', '/orgs/nobody/installation', { auth: `Bearer ${jwt}` });
    expect(missing.status).toBe(404);
    expectGitHubShape('GET', `${REPO}/installation`, 404, missing.body);
  });
});

describe('installation repositories (installation token)', () => {
  test('200 every repository the installation reaches, paginated with a Link header; 401 with the App JWT', async () => {
    const res = await expectShape('GET', '/installation/repositories', '/installation/repositories?per_page=1', 200);
    expect(res.body.total_count).toBeGreaterThanOrEqual(2);
    expect(res.body.repositories).toHaveLength(1);
    expect(res.body.repository_selection).toBe('all');
    expect(res.headers.get('link')).toMatch(/rel="next"/);
    const all = await expectShape('GET', '/installation/repositories', '/installation/repositories?per_page=100', 200);
    expect(all.body.repositories.map((r: { full_name: string }) => r.full_name)).toEqual(expect.arrayContaining(['acme/app', 'acme/lib']));
    expect(all.body.repositories.find((r: { full_name: string }) => r.full_name === 'acme/lib')).toMatchObject({ private: true, visibility: 'internal' });
    const withJwt = await h.call('GET', '/installation/repositories', { auth: `Bearer ${jwt}` });
    expect(withJwt.status).toBe(401);
  });
});

describe('repository', () => {
  test('200 full repository; 404 unknown', async () => {
    const res = await expectShape('GET', REPO, '/repos/acme/lib', 200);
    expect(res.body).toMatchObject({ full_name: 'acme/lib', private: true, visibility: 'internal', fork: false });
    expect(res.body).not.toHaveProperty('parent');
    await expectShape('GET', REPO, '/repos/acme/nope', 404);
  });
  test('a fork of a fork names its parent and the network source', async () => {
    h.sim.createRepo({ owner: 'octo', name: 'lib', visibility: 'public', forkOf: 'acme/lib' });
    h.sim.createRepo({ owner: 'zed', name: 'lib', visibility: 'public', forkOf: 'octo/lib' });
    const res = await expectShape('GET', REPO, '/repos/zed/lib', 200);
    expect(res.body).toMatchObject({ fork: true, private: false, parent: { full_name: 'octo/lib', fork: true }, source: { full_name: 'acme/lib', fork: false } });
  });
  test('visibility follows PATCH /_sim/repos/{owner}/{repo}', async () => {
    h.sim.createRepo({ owner: 'acme', name: 'site', visibility: 'private' });
    const patched = await h.call('PATCH', '/_sim/repos/acme/site', { body: { visibility: 'public' }, auth: null });
    expect(patched.status).toBe(200);
    const res = await expectShape('GET', REPO, '/repos/acme/site', 200);
    expect(res.body).toMatchObject({ private: false, visibility: 'public' });
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

describe('runner groups', () => {
  const LIST = `${ORG}/actions/runner-groups`;
  const REPOS = `${ORG}/actions/runner-groups/{runner_group_id}/repositories`;
  test('every organization has group 1, Default: visibility all, public repositories not allowed', async () => {
    const res = await expectShape('GET', LIST, '/orgs/acme/actions/runner-groups', 200);
    expect(res.body).toEqual({
      total_count: 1,
      runner_groups: [{
        id: 1, name: 'Default', visibility: 'all', default: true, runners_url: `${h.url}/orgs/acme/actions/runner_groups/1/runners`,
        inherited: false, allows_public_repositories: false, restricted_to_workflows: false, selected_workflows: [], workflow_restrictions_read_only: false,
      }],
    });
    await expectShape('GET', REPOS, '/orgs/acme/actions/runner-groups/1/repositories', 200);
  });
  test('groups made through PUT /_sim/runner-groups: list paginates, selected repositories listed as minimal repositories', async () => {
    const body = { org: 'acme', name: 'deploy', visibility: 'selected', restrictedToWorkflows: true, selectedWorkflows: ['acme/app/.github/workflows/deploy.yml@refs/heads/main'], selectedRepositories: ['acme/app', 'acme/lib'] };
    const made = await h.call('PUT', '/_sim/runner-groups', { auth: null, body });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ id: expect.any(Number), org: 'acme', name: 'deploy', default: false, selectedRepositories: ['acme/app', 'acme/lib'] });
    const again = await h.call('PUT', '/_sim/runner-groups', { auth: null, body: { ...body, selectedRepositories: ['acme/app'] } });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: made.body.id, selectedRepositories: ['acme/app'] });
    await h.call('PUT', '/_sim/runner-groups', { auth: null, body: { org: 'acme', name: 'private-only', visibility: 'private', allowsPublicRepositories: true } });

    const p1 = await expectShape('GET', LIST, '/orgs/acme/actions/runner-groups?per_page=2', 200);
    expect(p1.body.total_count).toBe(3);
    expect(p1.body.runner_groups.map((g: { name: string }) => g.name)).toEqual(['Default', 'deploy']);
    expect(p1.body.runner_groups[1]).toMatchObject({ visibility: 'selected', restricted_to_workflows: true, selected_repositories_url: `${h.url}/orgs/acme/actions/runner_groups/${made.body.id}/repositories` });
    expect(p1.headers.get('link')).toContain('rel="next"');
    const p2 = await expectShape('GET', LIST, '/orgs/acme/actions/runner-groups?per_page=2&page=2', 200);
    expect(p2.body.runner_groups).toMatchObject([{ name: 'private-only', visibility: 'private', allows_public_repositories: true }]);
    expect(p2.body.runner_groups[0]).not.toHaveProperty('selected_repositories_url');

    const repos = await expectShape('GET', REPOS, `/orgs/acme/actions/runner-groups/${made.body.id}/repositories`, 200);
    expect(repos.body.total_count).toBe(1);
    expect(repos.body.repositories[0]).toMatchObject({ full_name: 'acme/app', private: true });
    const visible = await expectShape('GET', LIST, '/orgs/acme/actions/runner-groups?visible_to_repository=lib', 200);
    expect(visible.body.runner_groups.map((g: { name: string }) => g.name)).toEqual(['Default', 'private-only']);
  });
  test('404 for an unknown organization or group (undocumented, with the Basic Error body); 401 without a token', async () => {
    for (const path of ['/orgs/nobody/actions/runner-groups', '/orgs/acme/actions/runner-groups/999/repositories', '/orgs/nobody/actions/runner-groups/1/repositories']) {
      const res = await h.call('GET', path);
      expect(res.status).toBe(404);
      expectGitHubShape('GET', `${REPO}/installation`, 404, res.body);
    }
    expect((await h.call('GET', '/orgs/acme/actions/runner-groups', { auth: null })).status).toBe(401);
    expect((await h.call('GET', '/orgs/acme/actions/runner-groups', { auth: `Bearer ${jwt}` })).status).toBe(401);
  });
  test('the control API refuses repositories of another organization, or with a visibility that has none', async () => {
    const other = await h.call('PUT', '/_sim/runner-groups', { auth: null, body: { org: 'acme', name: 'x', visibility: 'selected', selectedRepositories: ['octo/lib'] } });
    expect(other.status).toBe(422);
    const notSelected = await h.call('PUT', '/_sim/runner-groups', { auth: null, body: { org: 'acme', name: 'x', visibility: 'all', selectedRepositories: ['acme/app'] } });
    expect(notSelected.status).toBe(422);
    const noOrg = await h.call('PUT', '/_sim/runner-groups', { auth: null, body: { org: 'nobody', name: 'x', visibility: 'all' } });
    expect(noOrg.status).toBe(404);
    const bad = await h.call('PUT', '/_sim/runner-groups', { auth: null, body: { org: 'acme', name: 'x', visibility: 'everyone' } });
    expect(bad.status).toBe(400);
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

  test('a fork pull request from an account the sim has not seen: head_repository is the fork', async () => {
    const created = await h.call('POST', '/_sim/runs', {
      auth: null,
      body: { repo: 'acme/app', event: 'pull_request', headBranch: 'evil', headRepository: 'mallory/app', jobs: [{ name: 'test', labels: ['self-hosted'], steps: ['true'] }] },
    });
    expect(created.status).toBe(201);
    const got = await expectShape('GET', `${REPO}/actions/runs/{run_id}`, `/repos/acme/app/actions/runs/${created.body.runId}`, 200);
    const { repository, head_repository: head } = got.body;
    expect(head).toMatchObject({ full_name: 'mallory/app', name: 'app', fork: true, private: true, owner: { login: 'mallory' } });
    expect(head.url).toBe(`${h.url}/repos/mallory/app`);
    expect(head.id).toBe(got.body.head_repository_id);
    expect(head.id).not.toBe(repository.id);
    expect(repository).toMatchObject({ full_name: 'acme/app', fork: false });
    const fork = await expectShape('GET', REPO, '/repos/mallory/app', 200);
    expect(fork.body).toMatchObject({ id: head.id, parent: { full_name: 'acme/app' } });
    await expectShape('GET', `${REPO}/actions/runs`, '/repos/acme/app/actions/runs?event=pull_request', 200);
  });

  test('cancel a run: 202 {} (queued and running jobs cancelled), 409 once completed, 404 unknown', async () => {
    const path = `${REPO}/actions/runs/{run_id}/cancel`;
    const run = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'held', labels: ['cancel-me'], steps: ['true'] }, { name: 'waiting', labels: ['nobody'], steps: ['true'] }] });
    const { body } = await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { name: 'cancel-1', runner_group_id: 1, labels: ['cancel-me'] } });
    const runner = { authorization: `RunnerToken ${decodeJitConfig(body.encoded_jit_config).token}` };
    const claimed = await fetch(`${h.url}/_runner/job`, { headers: runner });
    expect(claimed.headers.get('x-sim-job-id')).toBe(String(run.jobs[0]!.id));
    await claimed.body?.cancel();

    const res = await expectShape('POST', path, `/repos/acme/app/actions/runs/${run.runId}/cancel`, 202);
    expect(res.body).toEqual({});
    for (const j of run.jobs) expect(h.sim.job(j.id)).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
    const got = await expectShape('GET', `${REPO}/actions/runs/{run_id}`, `/repos/acme/app/actions/runs/${run.runId}`, 200);
    expect(got.body).toMatchObject({ status: 'completed', conclusion: 'cancelled' });
    const jobs = await expectShape('GET', `${REPO}/actions/runs/{run_id}/attempts/{attempt_number}/jobs`, `/repos/acme/app/actions/runs/${run.runId}/attempts/1/jobs`, 200);
    expect(jobs.body.jobs.map((j: { conclusion: string }) => j.conclusion)).toEqual(['cancelled', 'cancelled']);

    // The running job's runner reports later: refused, the job stays cancelled; its log up to
    // the cancel is kept, as GitHub keeps a cancelled job's log.
    const late = await fetch(`${h.url}/_runner/jobs/${run.jobs[0]!.id}/result?exit=0`, { method: 'POST', headers: runner, body: 'done\n' });
    expect(late.status).toBe(409);
    expect(h.sim.job(run.jobs[0]!.id)).toMatchObject({ status: 'completed', conclusion: 'cancelled', exitCode: null, output: 'done\n' });
    expect((await fetch(`${h.url}/_runner/job`, { headers: runner })).status).toBe(401);

    const again = await expectShape('POST', path, `/repos/acme/app/actions/runs/${run.runId}/cancel`, 409);
    expect(again.body).toEqual({ message: 'Cannot cancel a workflow run that is completed.', documentation_url: 'https://docs.github.com/rest/actions/workflow-runs#cancel-a-workflow-run', status: '409' });
    // GitHub documents no 404 for this operation, but sends one, with the Basic Error body of its 409.
    for (const unknown of [`/repos/acme/app/actions/runs/1/cancel`, `/repos/acme/lib/actions/runs/${run.runId}/cancel`, `/repos/acme/nope/actions/runs/${run.runId}/cancel`]) {
      const missing = await h.call('POST', unknown);
      expect(missing.status).toBe(404);
      expectGitHubShape('POST', path, 409, missing.body);
    }
    expect((await h.call('POST', `/repos/acme/app/actions/runs/${run.runId}/cancel`, { auth: `Bearer ${jwt}` })).status).toBe(401);
  });

  test('re-run a failed job: 201 {}, a new job in a new run attempt; 403 while its run is not completed; 404 unknown', async () => {
    const path = `${REPO}/actions/jobs/{job_id}/rerun`;
    const run = h.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'flaky', labels: ['rerun-me'], steps: ['exit 1'] }] });
    const failed = run.jobs[0]!.id;
    const { body } = await h.call('POST', '/repos/acme/app/actions/runners/generate-jitconfig', { body: { name: 'rerun-1', runner_group_id: 1, labels: ['rerun-me'] } });
    const runner = { authorization: `RunnerToken ${decodeJitConfig(body.encoded_jit_config).token}` };
    const claimed = await fetch(`${h.url}/_runner/job`, { headers: runner });
    await claimed.body?.cancel();
    expect((await fetch(`${h.url}/_runner/jobs/${failed}/result?exit=1`, { method: 'POST', headers: runner, body: 'boom\n' })).status).toBe(200);
    expect(h.sim.job(failed)).toMatchObject({ status: 'completed', conclusion: 'failure' });

    const res = await expectShape('POST', path, `/repos/acme/app/actions/jobs/${failed}/rerun`, 201);
    expect(res.body).toEqual({});
    const attempt2 = await expectShape('GET', `${REPO}/actions/runs/{run_id}/attempts/{attempt_number}/jobs`, `/repos/acme/app/actions/runs/${run.runId}/attempts/2/jobs`, 200);
    expect(attempt2.body.jobs).toHaveLength(1);
    expect(attempt2.body.jobs[0]).toMatchObject({ name: 'flaky', status: 'queued', run_attempt: 2 });
    expect(attempt2.body.jobs[0].id).not.toBe(failed);
    // The failed job keeps its attempt and result.
    const old = await expectShape('GET', `${REPO}/actions/jobs/{job_id}`, `/repos/acme/app/actions/jobs/${failed}`, 200);
    expect(old.body).toMatchObject({ run_attempt: 1, conclusion: 'failure' });

    const busy = await expectShape('POST', path, `/repos/acme/app/actions/jobs/${attempt2.body.jobs[0].id}/rerun`, 403);
    expect(busy.body.message).toMatch(/not completed/);
    expect((await h.call('POST', '/repos/acme/app/actions/jobs/999999/rerun')).status).toBe(404);
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

/**
 * GitHub's App-manifest flow, on a sim of its own: converting a manifest replaces the sim's one
 * App, which the other tests here sign their JWTs for.
 */
describe('App manifest flow', () => {
  let m: SimHarness;
  beforeAll(async () => {
    m = await startSim();
  });
  afterAll(async () => m.close());

  const form = (fields: Record<string, string>) => ({
    method: 'POST', redirect: 'manual' as const, headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(fields).toString(),
  });
  /** Posts the manifest, confirms on the page the sim shows: the redirect's URL. */
  async function confirm(path: string, manifest: unknown, state: string, name = 'Hangar Test'): Promise<URL> {
    const shown = await fetch(`${m.url}${path}?state=${state}`, form({ manifest: JSON.stringify(manifest) }));
    expect(shown.status).toBe(200);
    const html = await shown.text();
    const pageId = /name="page" value="([0-9a-f]+)"/.exec(html)?.[1];
    expect(pageId, html).toBeDefined();
    const done = await fetch(`${m.url}/settings/apps/new/confirm`, form({ page: pageId!, name }));
    expect(done.status).toBe(302);
    return new URL(done.headers.get('location')!);
  }

  test('post, confirm, redirect with code and state; 201 conversion (GitHub\'s shape) once, then 404; the App is the sim\'s', async () => {
    const secretPlaceholder = 'not-yet-known';
    const receiver = await startReceiver(secretPlaceholder);
    try {
      const manifest = {
        name: 'ignored: the page names it', url: 'https://example.com/hangar', redirect_url: 'http://127.0.0.1:9/callback',
        hook_attributes: { url: receiver.url }, public: false, default_events: ['workflow_job'],
        default_permissions: { actions: 'write', administration: 'write', metadata: 'read' },
      };
      const to = await confirm('/settings/apps/new', manifest, 'st4te');
      expect(`${to.origin}${to.pathname}`).toBe('http://127.0.0.1:9/callback');
      expect(to.searchParams.get('state')).toBe('st4te');
      const code = to.searchParams.get('code')!;
      expect(code).toMatch(/^[0-9a-f]{40}$/);

      const res = await expectShape('POST', '/app-manifests/{code}/conversions', `/app-manifests/${code}/conversions`, 201, { auth: null, on: m });
      expect(res.body).toMatchObject({
        name: 'Hangar Test', slug: 'hangar-test', owner: { login: 'octocat', type: 'User' }, events: ['workflow_job'],
        permissions: { actions: 'write', administration: 'write', metadata: 'read' },
      });
      expect(res.body.pem).toContain('BEGIN RSA PRIVATE KEY');
      expect(res.body.webhook_secret).toMatch(/^[0-9a-f]{40}$/);
      await expectShape('POST', '/app-manifests/{code}/conversions', `/app-manifests/${code}/conversions`, 404, { auth: null, on: m });

      // The new App is real: its key's JWTs are accepted, the old App's refused; tokens on the installation.
      expect(m.sim.appId).toBe(res.body.id);
      const jwtNew = (await createAppAuth({ appId: res.body.id, privateKey: res.body.pem })({ type: 'app' })).token;
      const app = await expectShape('GET', '/app', '/app', 200, { auth: `Bearer ${jwtNew}`, on: m });
      expect(app.body).toMatchObject({ id: res.body.id, slug: 'hangar-test', permissions: res.body.permissions });
      expect((await m.call('GET', '/app', { auth: `Bearer ${jwt}` })).status).toBe(401);
      const inst = await expectShape('GET', `${REPO}/installation`, '/repos/acme/app/installation', 200, { auth: `Bearer ${jwtNew}`, on: m });
      expect(inst.body).toMatchObject({ app_id: res.body.id, app_slug: 'hangar-test', permissions: res.body.permissions });
      const tok = await m.call('POST', `/app/installations/${m.sim.installationId}/access_tokens`, { auth: `Bearer ${jwtNew}` });
      expect(tok.status).toBe(201);

      // Its webhook goes to the manifest's hook URL, signed with the new webhook secret.
      m.sim.createRun({ repo: 'acme/app', jobs: [{ name: 'b', labels: ['self-hosted'], steps: ['true'] }] });
      const [hook] = await receiver.waitFor(1);
      expect(await verify(res.body.webhook_secret, hook!.raw, String(hook!.headers['x-hub-signature-256']))).toBe(true);
      expect(hook!.headers['x-github-hook-installation-target-id']).toBe(String(res.body.id));
    } finally {
      await receiver.close();
    }
  });

  test('an organization\'s App is owned by the organization; 404 page for an unknown one; 422 page for a bad manifest or a reused page', async () => {
    const to = await confirm('/organizations/acme/settings/apps/new', { url: 'https://example.com', redirect_url: 'http://127.0.0.1:9/cb' }, 's', 'Acme Hangar');
    const res = await expectShape('POST', '/app-manifests/{code}/conversions', `/app-manifests/${to.searchParams.get('code')}/conversions`, 201, { auth: null, on: m });
    expect(res.body.owner).toMatchObject({ login: 'acme', type: 'Organization' });
    expect((await fetch(`${m.url}/organizations/nobody/settings/apps/new`, form({ manifest: '{}' }))).status).toBe(404);
    const bad = await fetch(`${m.url}/settings/apps/new`, form({ manifest: JSON.stringify({ url: 'not a url' }) }));
    expect(bad.status).toBe(422);
    expect(await bad.text()).toContain('redirect_url');
    expect((await fetch(`${m.url}/settings/apps/new/confirm`, form({ page: 'f00', name: 'x' }))).status).toBe(422);
  });
});
