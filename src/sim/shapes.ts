import type { Job, Owner, Repo, Run, Runner, RunnerGroup } from './model.js';

/**
 * GitHub's REST JSON for the sim's records, field for field as api.github.com sends them
 * (checked against the OpenAPI description by test/sim/contract.test.ts).
 */
export interface Urls {
  /** Where the REST API lives: the sim's own URL, so links in bodies lead back to it. */
  api: string;
  html: string;
}

export const SENDER = { login: 'octocat', id: 583231, nodeId: 'MDQ6VXNlcjU4MzIzMQ==', type: 'User' as const };

export function userJson(u: Pick<Owner, 'login' | 'id' | 'nodeId'> & { type: string }, urls: Urls): Record<string, unknown> {
  const api = `${urls.api}/users/${u.login}`;
  return {
    login: u.login, id: u.id, node_id: u.nodeId, avatar_url: `https://avatars.githubusercontent.com/u/${u.id}?v=4`,
    gravatar_id: '', url: api, html_url: `${urls.html}/${u.login}`, followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`, gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`, subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`, repos_url: `${api}/repos`, events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`, type: u.type, user_view_type: 'public', site_admin: false,
  };
}

/** The `minimal-repository` fields: identity and every templated URL. */
export function minimalRepoJson(r: Repo, urls: Urls): Record<string, unknown> {
  const api = `${urls.api}/repos/${r.fullName}`;
  return {
    id: r.id, node_id: r.nodeId, name: r.name, full_name: r.fullName, private: r.visibility !== 'public',
    owner: userJson(r.owner, urls), html_url: `${urls.html}/${r.fullName}`, description: null, fork: r.parent !== null,
    url: api, forks_url: `${api}/forks`, keys_url: `${api}/keys{/key_id}`,
    collaborators_url: `${api}/collaborators{/collaborator}`, teams_url: `${api}/teams`, hooks_url: `${api}/hooks`,
    issue_events_url: `${api}/issues/events{/number}`, events_url: `${api}/events`, assignees_url: `${api}/assignees{/user}`,
    branches_url: `${api}/branches{/branch}`, tags_url: `${api}/tags`, blobs_url: `${api}/git/blobs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`, git_refs_url: `${api}/git/refs{/sha}`, trees_url: `${api}/git/trees{/sha}`,
    statuses_url: `${api}/statuses/{sha}`, languages_url: `${api}/languages`, stargazers_url: `${api}/stargazers`,
    contributors_url: `${api}/contributors`, subscribers_url: `${api}/subscribers`, subscription_url: `${api}/subscription`,
    commits_url: `${api}/commits{/sha}`, git_commits_url: `${api}/git/commits{/sha}`, comments_url: `${api}/comments{/number}`,
    issue_comment_url: `${api}/issues/comments{/number}`, contents_url: `${api}/contents/{+path}`,
    compare_url: `${api}/compare/{base}...{head}`, merges_url: `${api}/merges`,
    archive_url: `${api}/{archive_format}{/ref}`, downloads_url: `${api}/downloads`, issues_url: `${api}/issues{/number}`,
    pulls_url: `${api}/pulls{/number}`, milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`, labels_url: `${api}/labels{/name}`,
    releases_url: `${api}/releases{/id}`, deployments_url: `${api}/deployments`,
  };
}

/** Everything a repository carries besides its URLs (counts, flags, dates). */
function repoDetails(r: Repo, urls: Urls): Record<string, unknown> {
  const host = new URL(urls.html).host;
  return {
    created_at: r.createdAt, updated_at: r.createdAt, pushed_at: r.createdAt,
    git_url: `git://${host}/${r.fullName}.git`, ssh_url: `git@${host}:${r.fullName}.git`,
    clone_url: `${urls.html}/${r.fullName}.git`, svn_url: `${urls.html}/${r.fullName}`, homepage: null, size: 0,
    stargazers_count: 0, watchers_count: 0, language: null, has_issues: true, has_projects: true, has_downloads: true,
    has_wiki: true, has_pages: false, has_discussions: false, forks_count: 0, mirror_url: null, archived: false,
    disabled: false, open_issues_count: 0, license: null, allow_forking: true, is_template: false,
    web_commit_signoff_required: false, topics: [], visibility: r.visibility, forks: 0, open_issues: 0, watchers: 0,
    default_branch: r.defaultBranch,
  };
}

/** `full-repository`, as `GET /repos/{owner}/{repo}` returns it; a fork names its `parent` and its network's `source`. */
export function fullRepoJson(r: Repo, urls: Urls): Record<string, unknown> {
  let source = r.parent;
  while (source?.parent) source = source.parent;
  return {
    ...minimalRepoJson(r, urls), ...repoDetails(r, urls),
    permissions: { admin: false, maintain: false, push: false, triage: false, pull: true },
    network_count: 0, subscribers_count: 0, custom_properties: {},
    ...(r.parent && source ? { parent: repoFields(r.parent, urls), source: repoFields(source, urls) } : {}),
  };
}

/** Every field a repository can carry; payload templates pick the ones they have. */
export function repoFields(r: Repo, urls: Urls): Record<string, unknown> {
  return { ...minimalRepoJson(r, urls), ...repoDetails(r, urls), custom_properties: {} };
}

export interface InstallationFacts {
  id: number;
  createdAt: string;
  /** The App it belongs to: what the App may do is what the installation may do. */
  app: { id: number; slug: string; permissions: Record<string, string>; events: string[] };
}

/** `installation`, as `GET /repos/{o}/{r}/installation` and `GET /orgs/{org}/installation` return it for `account`. */
export function installationJson(i: InstallationFacts, account: Owner, urls: Urls): Record<string, unknown> {
  return {
    id: i.id, account: userJson(account, urls), repository_selection: 'all',
    access_tokens_url: `${urls.api}/app/installations/${i.id}/access_tokens`, repositories_url: `${urls.api}/installation/repositories`,
    html_url: `${urls.html}/organizations/${account.login}/settings/installations/${i.id}`, app_id: i.app.id,
    client_id: `Iv23li${String(i.app.id).padStart(14, '0')}`, target_id: account.id, target_type: account.type,
    permissions: i.app.permissions, events: i.app.events, created_at: i.createdAt, updated_at: i.createdAt,
    single_file_name: null, has_multiple_single_files: false, single_file_paths: [], app_slug: i.app.slug,
    suspended_by: null, suspended_at: null,
  };
}

const READ_ONLY_LABELS = new Set(['self-hosted', 'linux', 'x64', 'arm64', 'arm', 'windows', 'macos']);

export function runnerJson(r: Runner): Record<string, unknown> {
  return {
    id: r.id, name: r.name, os: r.os, status: r.status, busy: r.busy, ephemeral: true, runner_group_id: r.groupId,
    labels: r.labels.map((name, i) => ({ id: i + 1, name, type: READ_ONLY_LABELS.has(name.toLowerCase()) ? 'read-only' : 'custom' })),
  };
}

/**
 * `runner-groups-org`. The links spell `runner_groups` with an underscore, as GitHub's own
 * examples do; `selected_repositories_url` is there only for visibility `selected`.
 */
export function runnerGroupJson(g: RunnerGroup, urls: Urls): Record<string, unknown> {
  const api = `${urls.api}/orgs/${g.org}/actions/runner_groups/${g.id}`;
  return {
    id: g.id, name: g.name, visibility: g.visibility, default: g.default,
    ...(g.visibility === 'selected' ? { selected_repositories_url: `${api}/repositories` } : {}),
    runners_url: `${api}/runners`, inherited: false, allows_public_repositories: g.allowsPublicRepositories,
    restricted_to_workflows: g.restrictedToWorkflows, selected_workflows: [...g.selectedWorkflows],
    workflow_restrictions_read_only: false,
  };
}

/** A job's steps: "Set up job" then one per command, with the outcome the script reported. */
export function stepsJson(job: Job): Record<string, unknown>[] {
  if (job.status === 'queued') return [];
  const setup = { name: 'Set up job', status: 'completed', conclusion: 'success', number: 1, started_at: job.startedAt, completed_at: job.startedAt };
  const done = job.status === 'completed';
  const steps = job.steps.map((cmd, i) => {
    const exit = job.stepExits[i];
    const ran = exit !== undefined;
    return {
      name: `Run ${cmd.split('\n')[0]?.slice(0, 80) ?? ''}`,
      status: done ? 'completed' : ran ? 'completed' : 'queued',
      conclusion: ran ? (exit === 0 ? 'success' : 'failure') : done ? (job.conclusion === 'cancelled' ? 'cancelled' : 'skipped') : null,
      number: i + 2,
      started_at: ran || done ? job.startedAt : null,
      completed_at: ran || done ? (job.completedAt ?? job.startedAt) : null,
    };
  });
  return [setup, ...steps];
}

/** `job`, as `GET /repos/{o}/{r}/actions/jobs/{id}` returns it. */
export function jobJson(job: Job, urls: Urls): Record<string, unknown> {
  const api = `${urls.api}/repos/${job.run.repo.fullName}`;
  return {
    id: job.id, run_id: job.run.id, workflow_name: job.run.workflowName, head_branch: job.run.headBranch,
    run_url: `${api}/actions/runs/${job.run.id}`, run_attempt: job.runAttempt, node_id: job.nodeId,
    head_sha: job.run.headSha, url: `${api}/actions/jobs/${job.id}`, html_url: `${urls.html}/${job.run.repo.fullName}/actions/runs/${job.run.id}/job/${job.id}`,
    status: job.status, conclusion: job.conclusion, created_at: job.createdAt, started_at: job.startedAt ?? job.createdAt,
    completed_at: job.completedAt, name: job.name, steps: stepsJson(job), check_run_url: `${api}/check-runs/${job.id}`,
    labels: job.labels, runner_id: job.runnerId, runner_name: job.runnerName, runner_group_id: job.runnerGroupId,
    runner_group_name: job.runnerGroupName,
  };
}

/** A run's status and conclusion follow from its jobs, as on GitHub. */
export function runOutcome(jobs: Job[]): { status: string; conclusion: string | null } {
  if (jobs.every((j) => j.status === 'queued')) return { status: 'queued', conclusion: null };
  if (jobs.some((j) => j.status !== 'completed')) return { status: 'in_progress', conclusion: null };
  const c = jobs.map((j) => j.conclusion);
  return { status: 'completed', conclusion: c.includes('failure') ? 'failure' : c.includes('cancelled') ? 'cancelled' : 'success' };
}

/** `workflow-run`; `head_repository` differs from `repository` for a pull request from a fork. */
export function runJson(run: Run, jobs: Job[], urls: Urls): Record<string, unknown> {
  const api = `${urls.api}/repos/${run.repo.fullName}/actions/runs/${run.id}`;
  const actor = userJson(SENDER, urls);
  return {
    id: run.id, name: run.workflowName, node_id: run.nodeId, head_branch: run.headBranch, head_sha: run.headSha,
    path: run.path, display_title: `${run.workflowName} #${run.runNumber}`, run_number: run.runNumber, event: run.event,
    ...runOutcome(jobs), workflow_id: run.workflowId, check_suite_id: run.id + 1, check_suite_node_id: `CS_${run.nodeId}`,
    url: api, html_url: `${urls.html}/${run.repo.fullName}/actions/runs/${run.id}`,
    // GitHub leaves pull_requests empty for a pull request from a fork; the sim always does.
    pull_requests: [], created_at: run.createdAt, updated_at: run.updatedAt, actor, run_attempt: run.runAttempt,
    referenced_workflows: [], run_started_at: run.createdAt, triggering_actor: actor, jobs_url: `${api}/jobs`,
    logs_url: `${api}/logs`, check_suite_url: `${urls.api}/repos/${run.repo.fullName}/check-suites/${run.id + 1}`,
    artifacts_url: `${api}/artifacts`, cancel_url: `${api}/cancel`, rerun_url: `${api}/rerun`, previous_attempt_url: null,
    workflow_url: `${urls.api}/repos/${run.repo.fullName}/actions/workflows/${run.workflowId}`,
    head_commit: {
      id: run.headSha, tree_id: run.headSha.split('').reverse().join(''), message: 'sim commit', timestamp: run.createdAt,
      author: { name: 'Octo Cat', email: 'octocat@github.com' }, committer: { name: 'GitHub', email: 'noreply@github.com' },
    },
    repository: minimalRepoJson(run.repo, urls), head_repository: minimalRepoJson(run.headRepo, urls),
    head_repository_id: run.headRepo.id,
  };
}
