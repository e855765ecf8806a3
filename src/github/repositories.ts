import type { HangarOctokit } from './create-octokit.js';
import { githubCall } from './errors.js';
import type { Repository, RepositoryVisibility } from './types.js';

/**
 * One repository's visibility, read fresh each time: the control re-checks it when it mints a
 * runner, because a private repository can turn public (and fork PRs arrive) at any moment.
 */

interface RawRepository {
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

export async function getRepository(octokit: HangarOctokit, owner: string, repo: string): Promise<Repository> {
  const res = await githubCall('get repository', () => octokit.rest.repos.get({ owner, repo }));
  const r = res.data as RawRepository;
  return { fullName: r.full_name, visibility: visibilityOf(r), private: r.private, fork: r.fork };
}
