import { SimError, notFound } from './errors.js';
import type { GroupVisibility, Ids, Owner, Repo, RunnerGroup } from './model.js';

/**
 * Organizations' self-hosted runner groups. Every organization has group 1, `Default`
 * (visibility `all`, public repositories not allowed, as GitHub creates it); other groups are
 * made by the control API. Names are unique per organization, case-insensitively.
 */

export interface UpsertGroupInput {
  org: string;
  name: string;
  visibility: GroupVisibility;
  allowsPublicRepositories?: boolean | undefined;
  restrictedToWorkflows?: boolean | undefined;
  selectedWorkflows?: string[] | undefined;
  /** `owner/name` of repositories of this organization; only with visibility `selected`. */
  selectedRepositories?: string[] | undefined;
}

const lower = (s: string) => s.toLowerCase();

export class SimRunnerGroups {
  private readonly byOrg = new Map<string, RunnerGroup[]>();

  constructor(
    private readonly ids: Ids,
    private readonly orgOf: (login: string) => Owner | undefined,
    private readonly repoOf: (fullName: string) => Repo | undefined,
  ) {}

  /** The organization's groups, `Default` first. Unknown organization: 404, as GitHub. */
  list(org: string): RunnerGroup[] {
    const owner = this.orgOf(org);
    if (!owner) throw notFound();
    let groups = this.byOrg.get(lower(owner.login));
    if (!groups) {
      groups = [{
        id: 1, org: owner.login, name: 'Default', visibility: 'all', default: true, allowsPublicRepositories: false,
        restrictedToWorkflows: false, selectedWorkflows: [], selectedRepos: [],
      }];
      this.byOrg.set(lower(owner.login), groups);
    }
    return groups;
  }

  get(org: string, id: number): RunnerGroup {
    const g = this.list(org).find((x) => x.id === id);
    if (!g) throw notFound();
    return g;
  }

  /** A job's `runner_group_name`: the group's name, or a stand-in for an id no group has. */
  nameOf(org: string, id: number): string {
    const g = this.orgOf(org) ? this.list(org).find((x) => x.id === id) : undefined;
    return g?.name ?? (id === 1 ? 'Default' : `group-${id}`);
  }

  /** Creates the group, or replaces every setting of the one with that name. */
  upsert(input: UpsertGroupInput): { group: RunnerGroup; created: boolean } {
    const owner = this.orgOf(input.org);
    if (!owner) throw new SimError(404, `organization ${input.org} does not exist: POST /_sim/repos first`);
    const groups = this.list(owner.login);
    const settings = {
      visibility: input.visibility,
      allowsPublicRepositories: input.allowsPublicRepositories ?? false,
      restrictedToWorkflows: input.restrictedToWorkflows ?? false,
      selectedWorkflows: [...(input.selectedWorkflows ?? [])],
      selectedRepos: this.selectedRepos(owner, input),
    };
    const existing = groups.find((g) => lower(g.name) === lower(input.name));
    if (existing) return { group: Object.assign(existing, settings), created: false };
    const group: RunnerGroup = { id: this.ids.take('runnerGroup'), org: owner.login, name: input.name, default: false, ...settings };
    groups.push(group);
    return { group, created: true };
  }

  private selectedRepos(owner: Owner, input: UpsertGroupInput): Repo[] {
    const names = input.selectedRepositories ?? [];
    if (names.length > 0 && input.visibility !== 'selected') {
      throw new SimError(422, 'selectedRepositories: only a group with visibility "selected" has selected repositories');
    }
    return names.map((fullName) => {
      const repo = this.repoOf(fullName);
      if (!repo || repo.owner !== owner) throw new SimError(422, `selectedRepositories: ${fullName} is not a repository of ${owner.login}`);
      return repo;
    });
  }
}

/** GitHub's rule for who may use a group: its visibility, and public repositories only when allowed. */
export function groupAdmits(group: RunnerGroup, repo: Repo): boolean {
  if (repo.visibility === 'public' && !group.allowsPublicRepositories) return false;
  if (group.visibility === 'selected') return group.selectedRepos.includes(repo);
  if (group.visibility === 'private') return repo.visibility !== 'public';
  return true;
}
