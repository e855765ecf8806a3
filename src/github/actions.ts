import type { HangarOctokit } from './create-octokit.js';
import { githubCall, statusOf, toGitHubError } from './errors.js';
import type { RunCancellation, WorkflowJob, WorkflowRun } from './types.js';

/**
 * Workflow runs and jobs: what the agent checks before starting a VM, and what reconcile polls;
 * and cancelling the run of a job Hangar refused, so no other runner of the repository takes it.
 */

interface RawJob {
  id: number;
  run_id: number;
  run_attempt?: number;
  name: string;
  status: string;
  conclusion: string | null;
  labels: string[];
  runner_id: number | null;
  runner_name: string | null;
  head_branch: string | null;
  head_sha: string;
  workflow_name: string | null;
}

interface RawRun {
  id: number;
  run_attempt?: number;
  name?: string | null;
  event: string;
  status: string | null;
  conclusion: string | null;
  head_branch: string | null;
  head_sha: string;
  head_repository?: { full_name: string } | null;
  repository: { full_name: string };
}

function toJob(j: RawJob): WorkflowJob {
  return {
    id: j.id,
    runId: j.run_id,
    runAttempt: j.run_attempt ?? 1,
    name: j.name,
    status: j.status,
    conclusion: j.conclusion,
    labels: j.labels,
    runnerId: j.runner_id,
    runnerName: j.runner_name,
    headBranch: j.head_branch,
    headSha: j.head_sha,
    workflowName: j.workflow_name,
  };
}

function toRun(r: RawRun): WorkflowRun {
  return {
    id: r.id,
    runAttempt: r.run_attempt ?? 1,
    name: r.name ?? null,
    event: r.event,
    status: r.status,
    conclusion: r.conclusion,
    headBranch: r.head_branch,
    headSha: r.head_sha,
    headRepositoryFullName: r.head_repository?.full_name ?? null,
    repositoryFullName: r.repository.full_name,
  };
}

export async function getJob(octokit: HangarOctokit, owner: string, repo: string, jobId: number): Promise<WorkflowJob> {
  const res = await githubCall('get job', () =>
    octokit.rest.actions.getJobForWorkflowRun({ owner, repo, job_id: jobId }),
  );
  return toJob(res.data as RawJob);
}

export async function getRun(octokit: HangarOctokit, owner: string, repo: string, runId: number): Promise<WorkflowRun> {
  const res = await githubCall('get run', () => octokit.rest.actions.getWorkflowRun({ owner, repo, run_id: runId }));
  return toRun(res.data as RawRun);
}

/** Every run of the repository that is still queued, all pages. */
export async function listQueuedRuns(octokit: HangarOctokit, owner: string, repo: string): Promise<WorkflowRun[]> {
  return listRunsWithStatus(octokit, owner, repo, 'queued');
}

/**
 * Every run that may still hold a queued job: queued runs, and runs in progress (one job of a run
 * can be running while another still waits; the run then says `in_progress`). All pages.
 */
export async function listOpenRuns(octokit: HangarOctokit, owner: string, repo: string): Promise<WorkflowRun[]> {
  const [queued, running] = await Promise.all([
    listRunsWithStatus(octokit, owner, repo, 'queued'),
    listRunsWithStatus(octokit, owner, repo, 'in_progress'),
  ]);
  const seen = new Set(queued.map((r) => r.id));
  return [...queued, ...running.filter((r) => !seen.has(r.id))];
}

async function listRunsWithStatus(octokit: HangarOctokit, owner: string, repo: string, status: 'queued' | 'in_progress'): Promise<WorkflowRun[]> {
  const runs = await githubCall(`list ${status} runs`, () =>
    octokit.paginate(octokit.rest.actions.listWorkflowRunsForRepo, { owner, repo, status, per_page: 100 }),
  );
  return (runs as RawRun[]).map(toRun);
}

/** Every job of one attempt of a run, all pages. */
export async function listJobsForAttempt(
  octokit: HangarOctokit,
  owner: string,
  repo: string,
  runId: number,
  attempt: number,
): Promise<WorkflowJob[]> {
  const jobs = await githubCall('list jobs for attempt', () =>
    octokit.paginate(octokit.rest.actions.listJobsForWorkflowRunAttempt, {
      owner,
      repo,
      run_id: runId,
      attempt_number: attempt,
      per_page: 100,
    }),
  );
  return (jobs as RawJob[]).map(toJob);
}

/**
 * Cancels a workflow run: its queued jobs complete as `cancelled`, running ones are stopped.
 * 409 (every job already completed) is `'already-completed'`, not an error; 404 is GitHubError.
 */
export async function cancelRun(
  octokit: HangarOctokit,
  owner: string,
  repo: string,
  runId: number,
): Promise<RunCancellation> {
  try {
    await octokit.rest.actions.cancelWorkflowRun({ owner, repo, run_id: runId });
    return 'cancelled';
  } catch (err) {
    if (statusOf(err) === 409) return 'already-completed';
    throw toGitHubError(err, 'cancel run');
  }
}

/** `POST /repos/{owner}/{repo}/actions/jobs/{job_id}/rerun` (201). */
export async function rerunJob(octokit: HangarOctokit, owner: string, repo: string, jobId: number): Promise<void> {
  await githubCall('rerun job', () => octokit.rest.actions.reRunJobForWorkflowRun({ owner, repo, job_id: jobId }));
}
