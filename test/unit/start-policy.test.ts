import { describe, expect, test } from 'vitest';
import { cancelRunOnRefusal, checkStartRunner, decideStart, START_REFUSAL_TEXT, type StartDecision, type StartFacts, type StartRefusal } from '../../src/domain/start-policy.js';
import type { PolicyPool } from '../../src/domain/policy.js';

const build: PolicyPool = { name: 'build', labels: ['self-hosted', 'linux', 'build'] };
const deploy: PolicyPool = { name: 'deploy', labels: ['self-hosted', 'linux', 'deploy'], deploy: { repositories: ['acme/site'], branches: ['main', 'release/*'] } };
const config = { policy: { repositories: ['acme/*', 'solo/tool'], allowInternal: false }, pools: [build, deploy] };
const facts = (o: Partial<StartFacts> = {}): StartFacts => ({
  repository: 'acme/app', visibility: 'private', labels: ['self-hosted', 'build'], event: 'push', headBranch: 'main', headRepository: 'acme/app', ...o,
});
const site = (o: Partial<StartFacts> = {}) => facts({ repository: 'acme/site', headRepository: 'acme/site', labels: ['self-hosted', 'deploy'], ...o });
const allow: StartDecision = { kind: 'allow' };
const deny = (reason: StartRefusal): StartDecision => ({ kind: 'deny', reason });

describe('decideStart: the job GitHub gave a runner, in the runner\'s pool', () => {
  test.each<[string, StartFacts, PolicyPool, StartDecision]>([
    ['private repo, build labels, build pool', facts(), build, allow],
    ['a scheduled run (no head repository)', facts({ event: 'schedule', headRepository: null }), build, allow],
    ['a pull request from a branch of the same repository', facts({ event: 'pull_request', headBranch: 'feature' }), build, allow],
    ['head repository differs only in case', facts({ headRepository: 'ACME/App' }), build, allow],
    ['public repository', facts({ visibility: 'public' }), build, deny('public-repo')],
    ['internal repository', facts({ visibility: 'internal' }), build, deny('internal-repo')],
    ['repository not in policy.repositories', facts({ repository: 'other/app', headRepository: 'other/app' }), build, deny('repo-not-allowed')],
    ['a fork\'s pull request', facts({ event: 'pull_request', headRepository: 'mallory/app' }), build, deny('fork-pr')],
    ['a fork\'s pull_request_target run', facts({ event: 'pull_request_target', headRepository: 'mallory/app' }), build, deny('fork-pr')],
    ['a label the pool lacks', facts({ labels: ['self-hosted', 'gpu'] }), build, deny('labels-not-served')],
    ['deploy pool: allowed repository and branch', site(), deploy, allow],
    ['deploy pool: a branch matching a prefix', site({ headBranch: 'release/1.2' }), deploy, allow],
    ['deploy pool: a feature branch', site({ headBranch: 'wip' }), deploy, deny('deploy-not-allowed')],
    ['deploy pool: no branch at all', site({ headBranch: null }), deploy, deny('deploy-not-allowed')],
    ['deploy pool: another repository', facts({ labels: ['self-hosted', 'deploy'] }), deploy, deny('deploy-not-allowed')],
    // Labels that fit both pools: the job is a build pool's, it only landed on the deploy runner.
    ['deploy pool: a job a build pool serves, from a feature branch', site({ labels: ['self-hosted', 'linux'], headBranch: 'wip' }), deploy, deny('wrong-pool')],
    ['deploy pool: a job a build pool serves, of a pull request', site({ labels: ['self-hosted', 'linux'], event: 'pull_request' }), deploy, deny('wrong-pool')],
    ['deploy pool: a job a build pool serves, of an allowed branch', site({ labels: ['self-hosted', 'linux'] }), deploy, allow],
    ['deploy pool: a pull request, even from main', site({ event: 'pull_request' }), deploy, deny('deploy-event')],
    ['deploy pool: a fork PR is refused as a fork first', site({ event: 'pull_request', headRepository: 'mallory/site' }), deploy, deny('fork-pr')],
  ])('%s', (_n, f, pool, want) => expect(decideStart(f, pool, config)).toEqual(want));

  test('internal repositories run when policy.allowInternal is true', () => {
    expect(decideStart(facts({ visibility: 'internal' }), build, { ...config, policy: { ...config.policy, allowInternal: true } })).toEqual(allow);
  });

  test('every refusal has a text for the job log; only refusals of the job itself cancel its run', () => {
    for (const [reason, text] of Object.entries(START_REFUSAL_TEXT)) expect(text.length, reason).toBeGreaterThan(10);
    expect(cancelRunOnRefusal('fork-pr')).toBe(true);
    expect(cancelRunOnRefusal('deploy-not-allowed')).toBe(true);
    // No answer says nothing of the job: the job fails, its run is left alone.
    expect(cancelRunOnRefusal('github-unreachable')).toBe(false);
    expect(cancelRunOnRefusal('job-not-on-runner')).toBe(false);
    // Landed on the wrong runner: the job fails there, its run (fine for its own pool) is left alone.
    expect(cancelRunOnRefusal('wrong-pool')).toBe(false);
  });
});

describe('checkStartRunner: is the asking host\'s runner one the control minted for it', () => {
  const minipc = { name: 'minipc', role: 'build' as const, pools: ['build'] };
  const cloud = { name: 'cloud', role: 'deploy' as const, pools: ['deploy'] };
  const rec = (mintedRunner: string | null, pool: string | null = 'build') => ({ mintedRunner, pool });
  const pools = [build, deploy];
  test.each<[string, Parameters<typeof checkStartRunner>, string]>([
    ['its own runner, in a pool it serves', [minipc, 'hangar-minipc-41-1', rec('hangar-minipc-41-1'), pools], 'ok'],
    ['a name that is not Hangar\'s', [minipc, 'laptop', rec('laptop'), pools], 'unknown-runner'],
    ['another host\'s runner', [minipc, 'hangar-cloud-41-1', rec('hangar-cloud-41-1'), pools], 'unknown-runner'],
    ['a job the control has no record of', [minipc, 'hangar-minipc-41-1', null, pools], 'unknown-runner'],
    ['a runner the record does not show (spent, or replaced)', [minipc, 'hangar-minipc-41-1', rec(null), pools], 'unknown-runner'],
    ['a record of a rejected job (no pool)', [minipc, 'hangar-minipc-41-1', rec('hangar-minipc-41-1', null), pools], 'unknown-runner'],
    ['a pool the host no longer serves', [minipc, 'hangar-minipc-41-1', rec('hangar-minipc-41-1', 'deploy'), pools], 'pool-not-served'],
    ['a pool that no longer exists', [minipc, 'hangar-minipc-41-1', rec('hangar-minipc-41-1', 'gone'), pools], 'pool-not-served'],
    ['a deploy pool on a host that is no longer a deploy host', [{ ...cloud, role: 'build' }, 'hangar-cloud-41-1', rec('hangar-cloud-41-1', 'deploy'), pools], 'pool-not-served'],
    ['the deploy host\'s own runner', [cloud, 'hangar-cloud-41-1', rec('hangar-cloud-41-1', 'deploy'), pools], 'ok'],
  ])('%s', (_n, args, want) => {
    const r = checkStartRunner(...args);
    expect(r.kind === 'ok' ? 'ok' : r.reason).toBe(want);
  });
});
