import { describe, expect, test } from 'vitest';
import { checkGitHub, checkRequest, runnerName, runnerOwed, type GitHubFacts, type MintRequestFacts } from '../../src/domain/mint-policy.js';

const build = { name: 'minipc', role: 'build' as const, pools: ['build', 'big'] };
const deployHost = { name: 'cloud', role: 'deploy' as const, pools: ['deploy'] };
const queued = { decision: 'accept', pool: 'build' };
const req = (o: Partial<MintRequestFacts> = {}): MintRequestFacts => ({ host: build, pool: { name: 'build', deploy: false }, record: queued, ...o });
const gh = (o: Partial<GitHubFacts> = {}): GitHubFacts => ({
  visibility: 'private', allowInternal: false, repository: 'acme/app', headRepository: 'acme/app', jobStatus: 'queued',
  workflowJobId: 41, jobRunnerName: null, mintedBefore: false, ...o,
});

describe('checkRequest', () => {
  test.each<[string, MintRequestFacts, ReturnType<typeof checkRequest>]>([
    ['a build host for its pool', req(), { kind: 'mint' }],
    ['a pool the host does not serve', req({ pool: { name: 'gpu', deploy: false } }), { kind: 'refuse', reason: 'pool-not-served' }],
    ['a build host asking for a deploy pool it lists', req({ host: { ...build, pools: ['deploy'] }, pool: { name: 'deploy', deploy: true } }), { kind: 'refuse', reason: 'deploy-pool-on-build-host' }],
    ['a build host asking for a deploy pool', req({ pool: { name: 'deploy', deploy: true } }), { kind: 'refuse', reason: 'pool-not-served' }],
    ['the deploy host for the deploy pool', req({ host: deployHost, pool: { name: 'deploy', deploy: true }, record: { ...queued, pool: 'deploy' } }), { kind: 'mint' }],
    ['a job the control never saw', req({ record: null }), { kind: 'refuse', reason: 'unknown-job' }],
    ['a rejected job', req({ record: { ...queued, decision: 'reject' } }), { kind: 'refuse', reason: 'not-accepted' }],
    ['a job of another pool', req({ record: { ...queued, pool: 'big' } }), { kind: 'refuse', reason: 'wrong-pool' }],
  ])('%s', (_n, facts, want) => expect(checkRequest(facts)).toEqual(want));
});

describe('checkGitHub', () => {
  test.each<[string, GitHubFacts, ReturnType<typeof checkGitHub>]>([
    ['private, same repository, queued', gh(), { kind: 'mint' }],
    ['turned public after it was queued', gh({ visibility: 'public' }), { kind: 'refuse', reason: 'public-repo' }],
    ['internal', gh({ visibility: 'internal' }), { kind: 'refuse', reason: 'internal-repo' }],
    ['internal, allowed', gh({ visibility: 'internal', allowInternal: true }), { kind: 'mint' }],
    ['a fork pull request', gh({ headRepository: 'mallory/app' }), { kind: 'refuse', reason: 'fork-pr' }],
    ['head repository differs only in case', gh({ headRepository: 'ACME/App' }), { kind: 'mint' }],
    ['no head repository (scheduled run)', gh({ headRepository: null }), { kind: 'mint' }],
    ['GitHub already gave the job to its own runner', gh({ jobStatus: 'in_progress', jobRunnerName: 'hangar-minipc-41-1' }), { kind: 'refuse', reason: 'job-not-queued' }],
    ['GitHub gave the job to a runner that is not Hangar\'s', gh({ jobStatus: 'in_progress', jobRunnerName: 'laptop' }), { kind: 'refuse', reason: 'job-not-queued' }],
    ['completed without a runner (cancelled while queued)', gh({ jobStatus: 'completed', jobRunnerName: null }), { kind: 'refuse', reason: 'job-not-queued' }],
    ['waiting for an environment\'s approval', gh({ jobStatus: 'waiting' }), { kind: 'refuse', reason: 'job-not-queued' }],
    ['taken by the runner minted for another job: owed one', gh({ jobStatus: 'in_progress', jobRunnerName: 'hangar-minipc-42-1' }), { kind: 'mint' }],
    ['finished on the runner minted for another job: owed one', gh({ jobStatus: 'completed', jobRunnerName: 'hangar-mini-pc-43-2' }), { kind: 'mint' }],
    ['taken by another job\'s runner, but a runner was minted for it before: paid already', gh({ jobStatus: 'in_progress', jobRunnerName: 'hangar-minipc-42-1', mintedBefore: true }), { kind: 'refuse', reason: 'job-not-queued' }],
    ['queued, minted before (an agent died): minted again, the name replaces the idle one', gh({ mintedBefore: true }), { kind: 'mint' }],
    ['owed, but now a fork PR: the fork is the reason', gh({ jobStatus: 'in_progress', jobRunnerName: 'hangar-minipc-42-1', headRepository: 'mallory/app' }), { kind: 'refuse', reason: 'fork-pr' }],
    ['public fork PR: public is the reason', gh({ visibility: 'public', headRepository: 'mallory/app' }), { kind: 'refuse', reason: 'public-repo' }],
  ])('%s', (_n, facts, want) => expect(checkGitHub(facts)).toEqual(want));
});

test('runner names derive from the job attempt', () => {
  expect(runnerName('minipc', 42, 2)).toBe('hangar-minipc-42-2');
});

test('a job is owed a runner only when a Hangar runner minted for another job took it', () => {
  expect(runnerOwed(41, runnerName('minipc', 42, 1))).toBe(true);
  expect(runnerOwed(41, runnerName('mini-pc-2', 7, 3))).toBe(true);
  expect(runnerOwed(41, runnerName('minipc', 41, 1))).toBe(false);
  expect(runnerOwed(41, runnerName('minipc', 41, 2))).toBe(false);
  expect(runnerOwed(41, null)).toBe(false);
  expect(runnerOwed(41, 'GitHub Actions 2')).toBe(false);
  expect(runnerOwed(41, 'hangar-minipc-x-1')).toBe(false);
});
