import type { HangarOctokit } from './create-octokit.js';
import { githubCall } from './errors.js';
import type { RunnerGroup, RunnerGroupRepository, RunnerGroupVisibility } from './types.js';

/**
 * An organization's self-hosted runner groups, and the repositories a group is open to: what
 * `hangar policy check-groups` reads. GitHub's own access control for organization runners.
 * @octokit/rest no longer names these operations, so they are called by route.
 */

interface RawRunnerGroup {
  id: number;
  name: string;
  visibility: string;
  default: boolean;
  allows_public_repositories: boolean;
  restricted_to_workflows?: boolean;
  selected_workflows?: string[];
  inherited: boolean;
}

/** Anything GitHub adds later is treated as the widest it could mean: open to every repository. */
function visibilityOf(v: string): RunnerGroupVisibility {
  return v === 'selected' || v === 'private' ? v : 'all';
}

function toRunnerGroup(g: RawRunnerGroup): RunnerGroup {
  return {
    id: g.id,
    name: g.name,
    visibility: visibilityOf(g.visibility),
    default: g.default,
    allowsPublicRepositories: g.allows_public_repositories,
    restrictedToWorkflows: g.restricted_to_workflows ?? false,
    selectedWorkflows: g.selected_workflows ?? [],
    inherited: g.inherited,
  };
}

/** Every runner group of the organization, all pages (those inherited from an enterprise too). */
export async function listRunnerGroups(octokit: HangarOctokit, org: string): Promise<RunnerGroup[]> {
  const raw = await githubCall('list runner groups', () =>
    octokit.paginate('GET /orgs/{org}/actions/runner-groups', { org, per_page: 100 }),
  );
  return (raw as unknown as RawRunnerGroup[]).map(toRunnerGroup);
}

/** The repositories selected for the group (visibility `selected`), all pages. */
export async function listRunnerGroupRepositories(octokit: HangarOctokit, org: string, groupId: number): Promise<RunnerGroupRepository[]> {
  const raw = await githubCall('list runner group repositories', () =>
    octokit.paginate('GET /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories', {
      org,
      runner_group_id: groupId,
      per_page: 100,
    }),
  );
  return (raw as unknown as { id: number; full_name: string; private: boolean }[]).map((r) => ({ id: r.id, fullName: r.full_name, private: r.private }));
}
