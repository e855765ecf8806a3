import type { HangarOctokit } from './create-octokit.js';
import { githubCall } from './errors.js';
import type { Repository, RepositoryVisibility } from './types.js';

/**
 * One repository's visibility, read fresh each time: the control re-checks it when it mints a
 * runner, because a private repository can turn public (and fork PRs arrive) at any moment.
 * And the repositories one installation can reach, for policy patterns `owner/*`.
 */

interface RawRepository {
  id: number;
  full_name: string;
  private: boolean;
  fork: boolean;
  visibility?: string;
}

/** GHES before 3.x and some tokens omit `visibility`; then `private` is all there is to go on. */
function visibilityOf(r: RawRepository): RepositoryVisibility {
  if (r.visibility === 'public' || r.visibility === 'private' || r.visibility === 'internal') return r.visibility;
  return r.private ? 'private' : 'public';
}

const toRepository = (r: RawRepository): Repository => ({ id: r.id, fullName: r.full_name, visibility: visibilityOf(r), private: r.private, fork: r.fork });

export async function getRepository(octokit: HangarOctokit, owner: string, repo: string): Promise<Repository> {
  const res = await githubCall('get repository', () => octokit.rest.repos.get({ owner, repo }));
  return toRepository(res.data as RawRepository);
}

/** `GET /installation/repositories` (installation token), all pages: every repository the installation can reach. */
export async function listInstallationRepositories(octokit: HangarOctokit): Promise<Repository[]> {
  const repos = await githubCall('list installation repositories', () =>
    octokit.paginate(octokit.rest.apps.listReposAccessibleToInstallation, { per_page: 100 }),
  );
  return (repos as unknown as RawRepository[]).map(toRepository);
}
