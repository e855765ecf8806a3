import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GitHubError } from '../../src/domain/errors.js';
import type { GitHubClient } from '../../src/github/index.js';
import { startSimClient, type SimClient } from './helpers/sim.js';

/** `getRepository` against the sim: what policy re-reads before it mints a runner. */

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

describe('repositories', () => {
  const patchVisibility = async (name: string, visibility: string) => {
    const res = await fetch(`${s.url}/_sim/repos/acme/${name}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ visibility }),
    });
    expect(res.status).toBe(200);
  };

  test('getRepository reads visibility fresh on every call', async () => {
    repo('vis');
    s.sim.resetCalls();
    expect(await gh.getRepository('acme', 'vis')).toEqual({ id: expect.any(Number), fullName: 'acme/vis', visibility: 'private', private: true, fork: false });
    await patchVisibility('vis', 'public');
    expect(await gh.getRepository('acme', 'vis')).toEqual({ id: expect.any(Number), fullName: 'acme/vis', visibility: 'public', private: false, fork: false });
    await patchVisibility('vis', 'internal');
    expect(await gh.getRepository('ACME', 'Vis')).toEqual({ id: expect.any(Number), fullName: 'acme/vis', visibility: 'internal', private: true, fork: false });
    expect(s.sim.calls()['GET /repos/:owner/:repo']).toEqual({ 200: 3 });
  });

  test('a fork says so; an unknown repository is GitHubError 404', async () => {
    repo('upstream');
    s.sim.createRepo({ owner: 'mallory', name: 'upstream', visibility: 'public', forkOf: 'acme/upstream' });
    expect(await gh.getRepository('mallory', 'upstream')).toEqual({ id: expect.any(Number), fullName: 'mallory/upstream', visibility: 'public', private: false, fork: true });
    const err = await gh.getRepository('acme', 'nope').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GitHubError);
    expect(err).toMatchObject({ status: 404 });
  });

  test('listInstallationRepositories reads every page of GET /installation/repositories; installationIdFor is the installation id', async () => {
    for (let i = 0; i < 105; i++) repo(`many-${i}`);
    s.sim.resetCalls();
    const all = await gh.listInstallationRepositories('acme');
    expect(all.filter((r) => r.fullName.startsWith('acme/many-'))).toHaveLength(105);
    expect(all.find((r) => r.fullName === 'acme/many-7')).toEqual({ id: expect.any(Number), fullName: 'acme/many-7', visibility: 'private', private: true, fork: false });
    expect(s.sim.calls()['GET /installation/repositories']![200]).toBeGreaterThanOrEqual(2);
    expect(await gh.installationIdFor('acme', 'many-7')).toBe(s.sim.installationId);
  });
});
