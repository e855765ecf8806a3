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
 * Each step runs as GitHub runs a `run:` step with `shell: sh`: a fresh `sh -e` per step. The first
 * failing step ends the job with its exit code. Markers let the sim report per-step outcomes.
 */
export function renderJobScript(job: Job): string {
  const run = job.run;
  const env: Record<string, string> = {
    CI: 'true', GITHUB_ACTIONS: 'true', GITHUB_JOB: job.name, GITHUB_RUN_ID: String(run.id),
    GITHUB_RUN_ATTEMPT: String(run.runAttempt), GITHUB_RUN_NUMBER: String(run.runNumber), GITHUB_REPOSITORY: run.repo.fullName,
    GITHUB_REPOSITORY_OWNER: run.repo.owner.login, GITHUB_EVENT_NAME: run.event, GITHUB_REF_NAME: run.headBranch,
    GITHUB_SHA: run.headSha, GITHUB_WORKFLOW: run.workflowName, RUNNER_NAME: job.runnerName ?? '',
  };
  const lines = [
    '#!/bin/sh',
    `# hangar sim job ${job.id}: ${job.steps.length} step(s), stopping at the first that fails`,
    `HANGAR_SIM_JOB_ID=${job.id}`,
    ...Object.entries(env).map(([k, v]) => `export ${k}=${shQuote(v)}`),
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
