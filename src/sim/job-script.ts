import type { Job } from './model.js';

/**
 * What a sim runner is given: the JIT config (plain `KEY=value` lines, base64'd, so busybox sh
 * can `base64 -d` and `.` it) and, once it claims a job, a POSIX sh script that runs the steps.
 */
export interface JitConfig {
  url: string;
  runnerId: number;
  runnerName: string;
  /** Secret. */
  token: string;
}

export function encodeJitConfig(c: JitConfig): string {
  const text = `HANGAR_SIM_URL=${c.url}\nRUNNER_ID=${c.runnerId}\nRUNNER_NAME=${c.runnerName}\nRUNNER_TOKEN=${c.token}\n`;
  return Buffer.from(text, 'utf8').toString('base64');
}

export function decodeJitConfig(encoded: string): JitConfig {
  const vars = new Map<string, string>();
  for (const line of Buffer.from(encoded.trim(), 'base64').toString('utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  const url = vars.get('HANGAR_SIM_URL');
  const id = Number(vars.get('RUNNER_ID'));
  const runnerName = vars.get('RUNNER_NAME');
  const token = vars.get('RUNNER_TOKEN');
  if (!url || !Number.isInteger(id) || !runnerName || !token) throw new Error('not a sim JIT config');
  return { url, runnerId: id, runnerName, token };
}

/** Single quotes for sh: nothing inside is special but the quote itself. */
export const shQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The job as a real runner runs it. "Set up runner" first: the default `GITHUB_*` variables, the
 * event payload at `GITHUB_EVENT_PATH`, then the job-started hook when the runner's environment
 * names one (`ACTIONS_RUNNER_HOOK_JOB_STARTED`, as GitHub documents: run before the first step,
 * a non-zero exit fails the job and no step runs). Then each step as GitHub runs a `run:` step
 * with `shell: sh`: a fresh `sh -e` per step; the first failing step ends the job with its exit
 * code. Markers let the sim report per-step outcomes.
 */
export function renderJobScript(job: Job): string {
  const run = job.run;
  const env: Record<string, string> = {
    CI: 'true', GITHUB_ACTIONS: 'true', GITHUB_JOB: jobKey(job.name), GITHUB_RUN_ID: String(run.id),
    GITHUB_RUN_ATTEMPT: String(run.runAttempt), GITHUB_RUN_NUMBER: String(run.runNumber), GITHUB_REPOSITORY: run.repo.fullName,
    GITHUB_REPOSITORY_OWNER: run.repo.owner.login, GITHUB_EVENT_NAME: run.event, GITHUB_REF_NAME: run.headBranch,
    GITHUB_REF: `refs/heads/${run.headBranch}`, GITHUB_SHA: run.headSha, GITHUB_WORKFLOW: run.workflowName,
    GITHUB_HEAD_REF: run.event === 'pull_request' ? run.headBranch : '', GITHUB_BASE_REF: run.event === 'pull_request' ? run.repo.defaultBranch : '',
    RUNNER_NAME: job.runnerName ?? '', RUNNER_OS: 'Linux', RUNNER_ARCH: 'X64',
  };
  const lines = [
    '#!/bin/sh',
    `# hangar sim job ${job.id}: ${job.steps.length} step(s), stopping at the first that fails`,
    `HANGAR_SIM_JOB_ID=${job.id}`,
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shQuote(v)}`),
    'export RUNNER_TEMP="$PWD/_temp"',
    'export GITHUB_EVENT_PATH="$RUNNER_TEMP/_github_workflow/event.json"',
    'mkdir -p "$RUNNER_TEMP/_github_workflow"',
    `printf '%s\\n' ${shQuote(JSON.stringify(eventPayload(job)))} > "$GITHUB_EVENT_PATH"`,
    'echo "##[sim] set up runner"',
    'if [ -n "${ACTIONS_RUNNER_HOOK_JOB_STARTED:-}" ]; then',
    '  echo "A job started hook has been configured by the self-hosted runner administrator"',
    '  echo "##[group]Run $ACTIONS_RUNNER_HOOK_JOB_STARTED"',
    '  sh -e "$ACTIONS_RUNNER_HOOK_JOB_STARTED"',
    '  rc=$?',
    '  echo "##[endgroup]"',
    '  echo "##[sim] hook job-started exit $rc"',
    '  if [ "$rc" -ne 0 ]; then echo "##[error]Process completed with exit code $rc."; exit "$rc"; fi',
    'fi',
  ];
  job.steps.forEach((cmd, i) => {
    const n = i + 1;
    lines.push(
      `echo ${shQuote(`##[sim] step ${n}: ${cmd.split('\n')[0] ?? ''}`)}`,
      `sh -e -c ${shQuote(cmd)}`,
      'rc=$?',
      `echo "##[sim] step ${n} exit $rc"`,
      '[ "$rc" -eq 0 ] || exit "$rc"',
    );
  });
  lines.push('exit 0', '');
  return lines.join('\n');
}

/** `GITHUB_JOB` is the job's key in the workflow file: lowercase words joined by dashes here. */
const jobKey = (name: string): string => name.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '') || 'job';

/** What the runner writes to `GITHUB_EVENT_PATH`: the payload of the run's triggering event (a subset). */
function eventPayload(job: Job): Record<string, unknown> {
  const run = job.run;
  const repository = { id: run.repo.id, full_name: run.repo.fullName, private: run.repo.visibility !== 'public', visibility: run.repo.visibility };
  if (run.event === 'pull_request') {
    const head = { ref: run.headBranch, sha: run.headSha, repo: { full_name: run.headRepo.fullName, fork: run.headRepo !== run.repo } };
    return { action: 'opened', number: run.runNumber, pull_request: { head, base: { ref: run.repo.defaultBranch, repo: { full_name: run.repo.fullName } } }, repository };
  }
  if (run.event === 'push') return { ref: `refs/heads/${run.headBranch}`, after: run.headSha, repository };
  return { repository, workflow: run.path };
}
