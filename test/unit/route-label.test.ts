import { expect, test } from 'vitest';
import { routeLabel } from '../../src/github/request-budget.js';

/** The `route` label of hangar_github_requests_total: one value per route, whatever the owner, repo or page. */
test.each([
  ['a route template as is', 'POST', '/app/installations/{installation_id}/access_tokens', 'POST /app/installations/{installation_id}/access_tokens'],
  ['a paginated first page, values filled in', 'GET', '/repos/acme/app/actions/runners?per_page=100', 'GET /repos/{owner}/{repo}/actions/runners'],
  ['a pagination link (full URL)', 'GET', 'https://api.github.com/repos/acme/app/actions/runs?per_page=100&page=2', 'GET /repos/{owner}/{repo}/actions/runs'],
  ['a GHES pagination link', 'GET', 'https://ghe.example/api/v3/orgs/acme/actions/runner-groups/3/repositories?page=2', 'GET /orgs/{org}/actions/runner-groups/{n}/repositories'],
  ['a repository by id', 'GET', 'https://api.github.com/repositories/123/actions/runners?page=2', 'GET /repositories/{n}/actions/runners'],
  ['a run\'s jobs of an attempt', 'GET', '/repos/acme/app/actions/runs/42/attempts/1/jobs?per_page=100', 'GET /repos/{owner}/{repo}/actions/runs/{n}/attempts/{n}/jobs'],
])('%s', (_name, method, url, want) => expect(routeLabel(method, url)).toBe(want));
