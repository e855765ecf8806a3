import type { FastifyInstance } from 'fastify';
import type { SimContext } from './context.js';
import { paginate } from './github-api.js';
import { groupAdmits } from './runner-groups.js';
import { minimalRepoJson, runnerGroupJson } from './shapes.js';

/**
 * An organization's self-hosted runner groups and the repositories a group is open to; read
 * only (groups are made through `PUT /_sim/runner-groups`). Installation token, as the other
 * `/orgs` routes. An unknown organization or group is 404.
 */

const auth = { config: { auth: 'installation' as const } };

type OrgParams = { org: string };
type Page = { per_page?: string; page?: string };

export function runnerGroupRoutes(scope: FastifyInstance, ctx: SimContext): void {
  const { store } = ctx;

  // `visible_to_repository` names a repository of the organization (its name, not owner/name).
  scope.get<{ Params: OrgParams; Querystring: Page & { visible_to_repository?: string } }>(
    '/orgs/:org/actions/runner-groups',
    auth,
    async (req, reply) => {
      const all = store.groups.list(req.params.org);
      const repoName = req.query.visible_to_repository;
      const repo = repoName === undefined ? undefined : store.repo(`${req.params.org}/${repoName}`);
      const groups = repoName === undefined ? all : repo ? all.filter((g) => groupAdmits(g, repo)) : [];
      return { total_count: groups.length, runner_groups: paginate(req, reply, ctx, groups).map((g) => runnerGroupJson(g, ctx.urls())) };
    },
  );

  scope.get<{ Params: OrgParams & { runner_group_id: string }; Querystring: Page }>(
    '/orgs/:org/actions/runner-groups/:runner_group_id/repositories',
    auth,
    async (req, reply) => {
      const group = store.groups.get(req.params.org, Number(req.params.runner_group_id));
      const repos = group.selectedRepos;
      return { total_count: repos.length, repositories: paginate(req, reply, ctx, repos).map((r) => minimalRepoJson(r, ctx.urls())) };
    },
  );
}
