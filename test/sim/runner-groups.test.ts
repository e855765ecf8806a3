import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GitHubError } from '../../src/domain/errors.js';
import type { GitHubClient } from '../../src/github/index.js';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import { startSimClient, type SimClient } from '../github/helpers/sim.js';

/**
 * Runner groups through Hangar's GitHub client against the in-process sim: every page is
 * read, shapes come back camelCased, and failures are GitHubError with GitHub's status.
 */

let s: SimClient;
let gh: GitHubClient;

beforeAll(async () => {
  s = await startSimClient();
  gh = s.client();
});
afterAll(async () => s?.close());

const LIST = 'GET /orgs/:org/actions/runner-groups';
const REPOS = 'GET /orgs/:org/actions/runner-groups/:runner_group_id/repositories';

describe('listRunnerGroups', () => {
  test('an organization nobody configured has only Default, closed to public repositories', async () => {
    s.sim.createRepo({ owner: 'fresh', name: 'one', visibility: 'private' });
    expect(await gh.listRunnerGroups('fresh')).toEqual([
      { id: 1, name: 'Default', visibility: 'all', default: true, allowsPublicRepositories: false, restrictedToWorkflows: false, selectedWorkflows: [], inherited: false },
    ]);
  });

  test('reads every page (GitHub gives at most 100 a page)', async () => {
    for (let i = 0; i < 120; i++) s.sim.setRunnerGroup({ org: 'acme', name: `g-${i}`, visibility: 'private' });
    s.sim.resetCalls();
    const groups = await gh.listRunnerGroups('acme');
    expect(groups).toHaveLength(121);
    expect(groups.at(-1)).toMatchObject({ name: 'g-119', visibility: 'private', default: false });
    expect(s.sim.calls()[LIST]).toEqual({ 200: 2 });
  });

  test('settings made through the control API come back as they were set', async () => {
    const wf = 'acme/site/.github/workflows/deploy.yml@refs/heads/main';
    const made = s.sim.setRunnerGroup({ org: 'acme', name: 'deploy', visibility: 'selected', allowsPublicRepositories: true, restrictedToWorkflows: true, selectedWorkflows: [wf] });
    const got = (await gh.listRunnerGroups('ACME')).find((g) => g.id === made.id);
    expect(got).toEqual({ id: made.id, name: 'deploy', visibility: 'selected', default: false, allowsPublicRepositories: true, restrictedToWorkflows: true, selectedWorkflows: [wf], inherited: false });
  });

  test('an organization GitHub does not know is GitHubError 404', async () => {
    const err = await gh.listRunnerGroups('nobody').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 404 });
  });

  test('without a fixed installation id, the installation is looked up by organization', async () => {
    const lookup = s.client({ installationId: null });
    s.sim.resetCalls();
    await lookup.listRunnerGroups('acme');
    expect(s.sim.calls()['GET /orgs/:org/installation']).toEqual({ 200: 1 });
  });
});

describe('listRunnerGroupRepositories', () => {
  test('the selected repositories, every page, camelCased', async () => {
    const names = Array.from({ length: 105 }, (_, i) => `r-${i}`);
    names.forEach((name, i) => s.sim.createRepo({ owner: 'many', name, visibility: i % 2 ? 'public' : 'private' }));
    const g = s.sim.setRunnerGroup({ org: 'many', name: 'wide', visibility: 'selected', selectedRepositories: names.map((n) => `many/${n}`) });
    s.sim.resetCalls();
    const repos = await gh.listRunnerGroupRepositories('many', g.id);
    expect(repos.map((r) => r.fullName)).toEqual(names.map((n) => `many/${n}`));
    expect(repos[1]).toEqual({ id: expect.any(Number), fullName: 'many/r-1', private: false });
    expect(s.sim.calls()[REPOS]).toEqual({ 200: 2 });
  });

  test('a group open to all repositories has none selected; an unknown group is GitHubError 404', async () => {
    expect(await gh.listRunnerGroupRepositories('acme', 1)).toEqual([]);
    const err = await gh.listRunnerGroupRepositories('acme', 999_999).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 404 });
  });
});

test("a job taken by an organization runner names the runner's group", async () => {
  s.sim.createRepo({ owner: 'acme', name: 'named', visibility: 'private' });
  const g = s.sim.setRunnerGroup({ org: 'acme', name: 'builders', visibility: 'all' });
  const run = s.sim.createRun({ repo: 'acme/named', jobs: [{ name: 'b', labels: ['self-hosted', 'grouped'], steps: ['true'] }] });
  const jit = await gh.mintJitConfig({ scope: 'org', owner: 'acme', name: 'grouped-1', labels: ['self-hosted', 'grouped'], runnerGroupId: g.id });
  const res = await fetch(`${s.url}/_runner/job`, { headers: { authorization: `RunnerToken ${decodeJitConfig(jit.encodedJitConfig).token}` } });
  expect(res.status).toBe(200);
  await res.body?.cancel();
  const job = await gh.getJob('acme', 'named', run.jobs[0]!.id);
  expect(job).toMatchObject({ status: 'in_progress', runnerName: 'grouped-1' });
  const raw = await fetch(`${s.url}/repos/acme/named/actions/jobs/${run.jobs[0]!.id}`, { headers: { authorization: `token ${s.sim.installationToken()}` } });
  expect(await raw.json()).toMatchObject({ runner_group_id: g.id, runner_group_name: 'builders' });
});
