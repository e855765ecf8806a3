import { repoMatches } from './policy.js';

/**
 * Whether GitHub's runner groups back up Hangar's pools. For an organization, the runner group
 * is GitHub's own enforcement of which repositories (and workflows) may use a runner; Hangar's
 * job-start gate is Hangar's, and a group wider than the pool leaves that gate alone in the way.
 * Pure: the groups come in as data (`hangar policy check-groups` reads them from GitHub).
 */

export interface GroupCheckPool {
  name: string;
  scope: 'repo' | 'org';
  runnerGroupId: number;
  deploy?: { repositories: readonly string[] } | undefined;
}

export interface GroupCheckConfig {
  policy: { repositories: readonly string[] };
  pools: readonly GroupCheckPool[];
}

/** A runner group as GitHub describes it, with the organization it belongs to. */
export interface GroupFacts {
  org: string;
  id: number;
  name: string;
  visibility: 'all' | 'selected' | 'private';
  allowsPublicRepositories: boolean;
  restrictedToWorkflows: boolean;
  /** `owner/name` of the selected repositories; read for visibility `selected`, else empty. */
  selectedRepositories: readonly string[];
}

export type GroupWarningCode =
  | 'group-missing'
  | 'public-repositories'
  | 'not-restricted-to-repositories'
  | 'repository-outside-deploy'
  | 'not-restricted-to-workflows'
  | 'repo-scope';

export interface GroupWarning {
  /** `info` says how things are; only a `warning` asks for a change. */
  level: 'warning' | 'info';
  pool: string;
  /** The organization whose group it is; null for a repository-scope pool. */
  org: string | null;
  groupId: number;
  code: GroupWarningCode;
  message: string;
}

const lower = (s: string) => s.toLowerCase();
const ownerOf = (pattern: string) => lower(pattern.split('/')[0] ?? '');
const unique = (xs: string[]) => [...new Set(xs)];

/** The organizations an org-scope pool registers runners in: the owners of the repositories it serves. */
export function orgsOfPool(pool: GroupCheckPool, config: GroupCheckConfig): string[] {
  if (pool.scope !== 'org') return [];
  return unique((pool.deploy?.repositories ?? config.policy.repositories).map(ownerOf));
}

/** Every organization whose runner groups the check needs, lowercased, once each. */
export function orgsToCheck(config: GroupCheckConfig): string[] {
  return unique(config.pools.flatMap((p) => orgsOfPool(p, config)));
}

/** One finding per problem, pool by pool in config order; no findings: the groups hold up. */
export function checkRunnerGroups(config: GroupCheckConfig, groups: readonly GroupFacts[]): GroupWarning[] {
  return config.pools.flatMap((pool) => {
    if (pool.scope === 'repo') return [repoScopeInfo(pool)];
    return orgsOfPool(pool, config).flatMap((org) => {
      const inOrg = groups.filter((g) => lower(g.org) === org);
      const group = inOrg.find((g) => g.id === pool.runnerGroupId);
      if (!group) return [missing(pool, org, inOrg)];
      return pool.deploy ? deployProblems(pool, pool.deploy, group) : buildProblems(pool, group);
    });
  });
}

type Finding = Omit<GroupWarning, 'pool' | 'groupId' | 'level'>;

function warn(pool: GroupCheckPool, f: Finding): GroupWarning {
  return { level: 'warning', pool: pool.name, groupId: pool.runnerGroupId, ...f };
}

const poolNamed = (p: GroupCheckPool) => `${p.deploy ? 'deploy pool' : 'pool'} ${p.name}`;
const named = (g: GroupFacts) => `runner group ${g.id} "${g.name}" of ${g.org}`;
const WHERE = 'in the organization\'s settings, Actions → Runner groups';

function repoScopeInfo(pool: GroupCheckPool): GroupWarning {
  return {
    level: 'info', pool: pool.name, org: null, groupId: pool.runnerGroupId, code: 'repo-scope',
    message: `pool ${pool.name} registers its runners on repositories: runner groups are an organization feature, so Hangar's job-start gate (policy.repositories, deploy repositories and branches) is the only enforcement there`,
  };
}

function missing(pool: GroupCheckPool, configOrg: string, inOrg: readonly GroupFacts[]): GroupWarning {
  const org = inOrg[0]?.org ?? configOrg;
  const have = inOrg.map((g) => `${g.id} (${g.name})`).join(', ') || 'none';
  return warn(pool, {
    org, code: 'group-missing',
    message: `${poolNamed(pool)}: ${org} has no runner group ${pool.runnerGroupId}, so its runners cannot register there; set pools[].runnerGroupId to one of ${have}, or create the group`,
  });
}

function publicRepositories(pool: GroupCheckPool, g: GroupFacts): GroupWarning[] {
  if (!g.allowsPublicRepositories) return [];
  return [warn(pool, {
    org: g.org, code: 'public-repositories',
    message: `${poolNamed(pool)}: ${named(g)} allows public repositories: GitHub lets a public repository's jobs, pull requests from forks included, onto these runners, leaving Hangar's gate the only check; turn off "Allow public repositories" ${WHERE}`,
  })];
}

function buildProblems(pool: GroupCheckPool, g: GroupFacts): GroupWarning[] {
  return publicRepositories(pool, g);
}

function deployProblems(pool: GroupCheckPool, deploy: NonNullable<GroupCheckPool['deploy']>, g: GroupFacts): GroupWarning[] {
  const allowed = deploy.repositories.filter((p) => ownerOf(p) === lower(g.org)).join(', ');
  const out = publicRepositories(pool, g);
  if (g.visibility !== 'selected') {
    const who = g.visibility === 'all' ? 'every repository' : 'every private repository';
    out.push(warn(pool, {
      org: g.org, code: 'not-restricted-to-repositories',
      message: `${poolNamed(pool)}: ${named(g)} is open to ${who} of ${g.org} (visibility ${g.visibility}); give the pool a group with visibility "selected" limited to ${allowed}`,
    }));
  } else {
    const outside = g.selectedRepositories.filter((r) => !deploy.repositories.some((p) => repoMatches(p, r)));
    if (outside.length > 0) {
      out.push(warn(pool, {
        org: g.org, code: 'repository-outside-deploy',
        message: `${poolNamed(pool)}: ${named(g)} is open to ${outside.join(', ')}, which the pool's deploy.repositories (${allowed}) does not list; remove them from the group's repository access ${WHERE}`,
      }));
    }
  }
  if (!g.restrictedToWorkflows) {
    out.push(warn(pool, {
      org: g.org, code: 'not-restricted-to-workflows',
      message: `${poolNamed(pool)}: ${named(g)} is not restricted to workflows, so any workflow of its repositories can use the deploy runners; restrict it to the deploy workflows (owner/repo/.github/workflows/FILE@refs/heads/BRANCH) ${WHERE}`,
    }));
  }
  return out;
}
