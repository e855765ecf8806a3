import { describe, expect, test } from 'vitest';
import {
  checkRunnerGroups, orgsOfPool, orgsToCheck, type GroupCheckConfig, type GroupCheckPool, type GroupFacts, type GroupWarning,
} from '../../src/domain/runner-groups.js';

const build = (o: Partial<GroupCheckPool> = {}): GroupCheckPool => ({ name: 'build', scope: 'org', runnerGroupId: 1, ...o });
const deploy = (o: Partial<GroupCheckPool> = {}): GroupCheckPool => ({
  name: 'deploy', scope: 'org', runnerGroupId: 2, deploy: { repositories: ['acme/site', 'acme/docs'] }, ...o,
});
const config = (...pools: GroupCheckPool[]): GroupCheckConfig => ({ policy: { repositories: ['acme/*'] }, pools });

const group = (o: Partial<GroupFacts> = {}): GroupFacts => ({
  org: 'acme', id: 1, name: 'Default', visibility: 'all', allowsPublicRepositories: false, restrictedToWorkflows: false, selectedRepositories: [], ...o,
});
/** What GitHub should look like for the deploy pool: only its repositories, only its workflows, no public ones. */
const tight = (o: Partial<GroupFacts> = {}) =>
  group({ id: 2, name: 'deploy', visibility: 'selected', restrictedToWorkflows: true, selectedRepositories: ['acme/site'], ...o });

type Row = Pick<GroupWarning, 'pool' | 'org' | 'groupId' | 'code'>;
const w = (pool: string, groupId: number, code: GroupWarning['code'], org: string | null = 'acme'): Row => ({ pool, org, groupId, code });

describe('checkRunnerGroups', () => {
  test.each<[string, GroupCheckConfig, GroupFacts[], Row[]]>([
    ['build pool in Default as GitHub makes it: nothing to say', config(build()), [group()], []],
    ['build pool, group allows public repositories', config(build()), [group({ allowsPublicRepositories: true })], [w('build', 1, 'public-repositories')]],
    ['build pool: visibility and workflows are not its concern', config(build({ runnerGroupId: 3 })), [group(), group({ id: 3, name: 'ci', visibility: 'private' })], []],
    ['group id the organization does not have', config(build({ runnerGroupId: 9 })), [group()], [w('build', 9, 'group-missing')]],
    ['another organization\'s group 9 does not count', config(build({ runnerGroupId: 9 })), [group(), group({ org: 'other', id: 9 })], [w('build', 9, 'group-missing')]],
    ['organization names match case-insensitively; GitHub\'s spelling is reported', config(build()), [group({ org: 'ACME', allowsPublicRepositories: true })], [w('build', 1, 'public-repositories', 'ACME')]],
    ['deploy pool in a tight group: nothing to say', config(deploy()), [group(), tight()], []],
    ['deploy group: selected repositories that match a pattern', { policy: { repositories: ['acme/*'] }, pools: [deploy({ deploy: { repositories: ['acme/*'] } })] }, [tight({ selectedRepositories: ['acme/app', 'ACME/Site'] })], []],
    ['deploy pool in Default: open to all, not restricted to workflows', config(deploy({ runnerGroupId: 1 })), [group()], [w('deploy', 1, 'not-restricted-to-repositories'), w('deploy', 1, 'not-restricted-to-workflows')]],
    ['deploy group, visibility private', config(deploy()), [tight({ visibility: 'private', selectedRepositories: [] })], [w('deploy', 2, 'not-restricted-to-repositories')]],
    ['deploy group also selects a repository outside deploy.repositories', config(deploy()), [tight({ selectedRepositories: ['acme/site', 'acme/app'] })], [w('deploy', 2, 'repository-outside-deploy')]],
    ['deploy group not restricted to workflows', config(deploy()), [tight({ restrictedToWorkflows: false })], [w('deploy', 2, 'not-restricted-to-workflows')]],
    ['deploy group allows public repositories', config(deploy()), [tight({ allowsPublicRepositories: true })], [w('deploy', 2, 'public-repositories')]],
    [
      'deploy group wrong on every count, in a fixed order',
      config(deploy()),
      [group({ id: 2, name: 'wide', allowsPublicRepositories: true })],
      [w('deploy', 2, 'public-repositories'), w('deploy', 2, 'not-restricted-to-repositories'), w('deploy', 2, 'not-restricted-to-workflows')],
    ],
    ['deploy group missing', config(deploy({ runnerGroupId: 5 })), [group()], [w('deploy', 5, 'group-missing')]],
    ['repo-scope pool: one info line, whatever the groups', config(build({ scope: 'repo', runnerGroupId: 7 })), [], [w('build', 7, 'repo-scope', null)]],
    [
      'pools in config order; a build pool serving two organizations is checked in each',
      { policy: { repositories: ['acme/*', 'Octo/tool'] }, pools: [deploy(), build()] },
      [tight(), group({ allowsPublicRepositories: true }), group({ org: 'octo' })],
      [w('build', 1, 'public-repositories')],
    ],
    [
      'a second organization without the group',
      { policy: { repositories: ['acme/*', 'octo/tool'] }, pools: [build({ runnerGroupId: 2 })] },
      [group(), tight(), group({ org: 'octo' })],
      [w('build', 2, 'group-missing', 'octo')],
    ],
  ])('%s', (_name, cfg, groups, want) => {
    const got = checkRunnerGroups(cfg, groups);
    expect(got.map(({ pool, org, groupId, code }) => ({ pool, org, groupId, code }))).toEqual(want);
    for (const g of got) expect(g.level).toBe(g.code === 'repo-scope' ? 'info' : 'warning');
  });

  test('messages name the pool, the group and what to change', () => {
    const [missing] = checkRunnerGroups(config(build({ runnerGroupId: 9 })), [group(), tight()]);
    expect(missing!.message).toBe('pool build: acme has no runner group 9, so its runners cannot register there; set pools[].runnerGroupId to one of 1 (Default), 2 (deploy), or create the group');
    const [pub, open, wf] = checkRunnerGroups(config(deploy({ runnerGroupId: 1 })), [group({ allowsPublicRepositories: true })]);
    expect(pub!.message).toMatch(/^deploy pool deploy: runner group 1 "Default" of acme allows public repositories: .*turn off "Allow public repositories"/);
    expect(open!.message).toMatch(/open to every repository of acme \(visibility all\); give the pool a group with visibility "selected" limited to acme\/site, acme\/docs$/);
    expect(wf!.message).toMatch(/not restricted to workflows.*restrict it to the deploy workflows/);
    const [outside] = checkRunnerGroups(config(deploy()), [tight({ selectedRepositories: ['acme/site', 'acme/app', 'acme/lib'] })]);
    expect(outside!.message).toContain('is open to acme/app, acme/lib, which the pool\'s deploy.repositories (acme/site, acme/docs) does not list');
    const [info] = checkRunnerGroups(config(build({ scope: 'repo' })), []);
    expect(info!.message).toMatch(/runner groups are an organization feature.*job-start gate.*is the only enforcement there/);
  });
});

describe('which organizations to read', () => {
  test.each<[string, GroupCheckConfig, string[]]>([
    ['a build pool: the owners of policy.repositories, once each, lowercased', { policy: { repositories: ['acme/*', 'Acme/app', 'octo/tool'] }, pools: [build()] }, ['acme', 'octo']],
    ['a deploy pool: the owners of its deploy repositories', { policy: { repositories: ['acme/*', 'octo/*'] }, pools: [deploy({ deploy: { repositories: ['octo/site'] } })] }, ['octo']],
    ['repo-scope pools: none', { policy: { repositories: ['acme/*'] }, pools: [build({ scope: 'repo' }), deploy({ scope: 'repo' })] }, []],
  ])('%s', (_name, cfg, want) => expect(orgsToCheck(cfg)).toEqual(want));

  test('orgsOfPool', () => {
    expect(orgsOfPool(deploy(), config(deploy()))).toEqual(['acme']);
    expect(orgsOfPool(build({ scope: 'repo' }), config())).toEqual([]);
  });
});
