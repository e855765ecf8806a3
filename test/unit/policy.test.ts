import { describe, expect, test } from 'vitest';
import { branchMatches, decide, labelsServedBy, repoMatches, type PolicyConfig, type PolicyInput } from '../../src/domain/policy.js';

const config: PolicyConfig = {
  policy: { repositories: ['acme/*', 'solo/tool'], allowInternal: false },
  pools: [
    { name: 'build', labels: ['self-hosted', 'linux', 'x64', 'build'] },
    { name: 'big', labels: ['self-hosted', 'linux', 'x64', 'build', 'large'] },
    { name: 'deploy', labels: ['self-hosted', 'linux', 'x64', 'deploy'], deploy: { repositories: ['acme/site'], branches: ['main', 'release/*'] } },
  ],
};
const withInternal: PolicyConfig = { ...config, policy: { ...config.policy, allowInternal: true } };

const job = (o: Partial<PolicyInput> = {}): PolicyInput => ({
  labels: ['self-hosted', 'build'],
  repo: 'acme/app',
  visibility: 'private',
  headBranch: 'main',
  ...o,
});

describe('decide', () => {
  test.each<[string, PolicyInput, PolicyConfig, ReturnType<typeof decide>]>([
    ['private repo, build labels', job(), config, { kind: 'accept', pool: 'build' }],
    ['labels match case-insensitively', job({ labels: ['Self-Hosted', 'LINUX', 'Build'] }), config, { kind: 'accept', pool: 'build' }],
    ['only self-hosted: first non-deploy pool', job({ labels: ['self-hosted'] }), config, { kind: 'accept', pool: 'build' }],
    ['subset of a larger pool only', job({ labels: ['self-hosted', 'large'] }), config, { kind: 'accept', pool: 'big' }],
    ['GitHub-hosted job', job({ labels: ['ubuntu-latest'] }), config, { kind: 'ignore' }],
    ['no labels at all', job({ labels: [] }), config, { kind: 'ignore' }],
    ['GitHub-hosted job of a public repo is refused too', job({ labels: ['ubuntu-latest'], visibility: 'public' }), config, { kind: 'reject', reason: 'public-repo' }],
    ['GitHub-hosted job of a repo not allowed is ignored', job({ labels: ['ubuntu-latest'], repo: 'evil/app' }), config, { kind: 'ignore' }],
    ['public repo', job({ visibility: 'public' }), config, { kind: 'reject', reason: 'public-repo' }],
    ['public repo even when allowed by name', job({ visibility: 'public', repo: 'solo/tool' }), config, { kind: 'reject', reason: 'public-repo' }],
    ['internal repo', job({ visibility: 'internal' }), config, { kind: 'reject', reason: 'internal-repo' }],
    ['internal repo, allowed', job({ visibility: 'internal' }), withInternal, { kind: 'accept', pool: 'build' }],
    ['repo not allowed', job({ repo: 'evil/app' }), config, { kind: 'reject', reason: 'repo-not-allowed' }],
    ['exact repo allowed', job({ repo: 'solo/tool' }), config, { kind: 'accept', pool: 'build' }],
    ['exact repo: another repo of that owner', job({ repo: 'solo/other' }), config, { kind: 'reject', reason: 'repo-not-allowed' }],
    ['repo names are case-insensitive', job({ repo: 'ACME/App' }), config, { kind: 'accept', pool: 'build' }],
    ['label no pool has', job({ labels: ['self-hosted', 'gpu'] }), config, { kind: 'reject', reason: 'no-pool' }],
    ['labels from two pools at once', job({ labels: ['self-hosted', 'build', 'deploy'] }), config, { kind: 'reject', reason: 'no-pool' }],
    ['deploy from allowed repo and branch', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/site' }), config, { kind: 'accept', pool: 'deploy' }],
    ['deploy from a branch prefix', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/site', headBranch: 'release/2.1' }), config, { kind: 'accept', pool: 'deploy' }],
    ['deploy from another branch', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/site', headBranch: 'feature' }), config, { kind: 'reject', reason: 'deploy-not-allowed' }],
    ['deploy with no branch (tag or detached)', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/site', headBranch: null }), config, { kind: 'reject', reason: 'deploy-not-allowed' }],
    ['deploy from another allowed repo', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/app' }), config, { kind: 'reject', reason: 'deploy-not-allowed' }],
    ['branch prefix is not a glob in the middle', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/site', headBranch: 'mainline' }), config, { kind: 'reject', reason: 'deploy-not-allowed' }],
    ['public repo asking for deploy: public wins', job({ labels: ['self-hosted', 'deploy'], repo: 'acme/site', visibility: 'public' }), config, { kind: 'reject', reason: 'public-repo' }],
  ])('%s', (_name, input, cfg, want) => expect(decide(input, cfg)).toEqual(want));

  test('a job both a build and a deploy pool can serve goes to the build pool', () => {
    const both: PolicyConfig = {
      ...config,
      pools: [
        { name: 'deploy', labels: ['self-hosted', 'linux'], deploy: { repositories: ['acme/*'], branches: ['main'] } },
        { name: 'build', labels: ['self-hosted', 'linux'] },
      ],
    };
    expect(decide(job({ labels: ['self-hosted', 'linux'] }), both)).toEqual({ kind: 'accept', pool: 'build' });
  });
});

describe('matching rules', () => {
  test.each([
    [['self-hosted'], ['self-hosted', 'x'], true],
    [['self-hosted', 'x'], ['self-hosted'], false],
    [[], ['self-hosted'], true],
    [['X64'], ['x64'], true],
  ])('labels %j served by %j: %s', (jobLabels, pool, want) => expect(labelsServedBy(jobLabels, pool)).toBe(want));

  test.each([
    ['acme/*', 'acme/x', true],
    ['acme/*', 'acmex/y', false],
    ['acme/x', 'acme/x', true],
    ['acme/x', 'acme/xy', false],
    ['Acme/X', 'acme/x', true],
  ])('repo %s ~ %s: %s', (p, r, want) => expect(repoMatches(p, r)).toBe(want));

  test.each([
    ['main', 'main', true],
    ['main', 'Main', false],
    ['release/*', 'release/1', true],
    ['release/*', 'releases/1', false],
  ])('branch %s ~ %s: %s', (p, b, want) => expect(branchMatches(p, b)).toBe(want));
});
