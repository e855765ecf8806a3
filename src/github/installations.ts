import { githubCall } from './errors.js';
import type { HangarOctokit } from './create-octokit.js';

/** What an installation is looked up by: a repository, or an organization (or user). */
export type InstallationTarget = { owner: string; repo?: string };

/**
 * Finds the Octokit for the installation that covers an owner or repository. With a fixed
 * installation id that is one Octokit for everything; without, the id is resolved once per
 * repository or organization (`GET /repos/{o}/{r}/installation`, `GET /orgs/{org}/installation`)
 * and one Octokit is kept per installation, so its token cache (auth-app) is reused.
 */
export interface Installations {
  forTarget(target: InstallationTarget): Promise<HangarOctokit>;
  /** The installation's id (what a webhook carries as `installation.id`), looked up once. */
  idOf(target: InstallationTarget): Promise<number>;
}

export function createInstallations(
  app: HangarOctokit,
  fixedInstallationId: number | undefined,
  octokitFor: (installationId: number) => HangarOctokit,
): Installations {
  const byInstallation = new Map<number, HangarOctokit>();
  const idByTarget = new Map<string, Promise<number>>();

  const octokitForId = (id: number): HangarOctokit => {
    let o = byInstallation.get(id);
    if (!o) {
      o = octokitFor(id);
      byInstallation.set(id, o);
    }
    return o;
  };

  const resolve = (target: InstallationTarget): Promise<number> => {
    // Owner and repository names are case-insensitive on GitHub.
    const key = (target.repo ? `repo:${target.owner}/${target.repo}` : `org:${target.owner}`).toLowerCase();
    let id = idByTarget.get(key);
    if (!id) {
      id = lookUp(app, target);
      // A failed lookup is not cached: the App may be installed a minute later.
      id.catch(() => idByTarget.delete(key));
      idByTarget.set(key, id);
    }
    return id;
  };

  return {
    async forTarget(target) {
      return octokitForId(fixedInstallationId ?? (await resolve(target)));
    },
    async idOf(target) {
      return fixedInstallationId ?? resolve(target);
    },
  };
}

async function lookUp(app: HangarOctokit, target: InstallationTarget): Promise<number> {
  if (target.repo) {
    const { owner, repo } = target;
    const res = await githubCall('get repo installation', () => app.rest.apps.getRepoInstallation({ owner, repo }));
    return res.data.id;
  }
  const org = target.owner;
  const res = await githubCall('get org installation', () => app.rest.apps.getOrgInstallation({ org }));
  return res.data.id;
}
