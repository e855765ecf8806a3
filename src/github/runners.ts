import type { HangarOctokit } from './create-octokit.js';
import { RunnerBusyError, RunnerNameTakenError, githubCall, statusOf, toGitHubError } from './errors.js';
import type { JitConfig, Runner, RunnerScope } from './types.js';

/**
 * Self-hosted runners: mint a just-in-time runner, list, delete. Repository and organization
 * scopes differ only in the route; every function here takes the scope and picks it.
 */

export type MintJitConfigInput = RunnerScope & {
  name: string;
  labels: readonly string[];
  runnerGroupId: number;
  workFolder?: string;
};

export type ListRunnersInput = RunnerScope & {
  /** Only runners whose name starts with this (Hangar's own, say). */
  namePrefix?: string;
};

export type DeleteRunnerInput = RunnerScope & { runnerId: number };

interface RawRunner {
  id: number;
  name: string;
  os: string;
  status: string;
  busy: boolean;
  labels: { name: string }[];
}

function toRunner(r: RawRunner): Runner {
  return { id: r.id, name: r.name, os: r.os, status: r.status, busy: r.busy, labels: r.labels.map((l) => l.name) };
}

export async function mintJitConfig(octokit: HangarOctokit, input: MintJitConfigInput): Promise<JitConfig> {
  const body = {
    name: input.name,
    labels: [...input.labels],
    runner_group_id: input.runnerGroupId,
    work_folder: input.workFolder ?? '_work',
  };
  try {
    const res =
      input.scope === 'repo'
        ? await octokit.rest.actions.generateRunnerJitconfigForRepo({ owner: input.owner, repo: input.repo, ...body })
        : await octokit.rest.actions.generateRunnerJitconfigForOrg({ org: input.owner, ...body });
    const { runner, encoded_jit_config: encodedJitConfig } = res.data;
    return { runner: { id: runner.id, name: runner.name }, encodedJitConfig };
  } catch (err) {
    if (statusOf(err) === 409) {
      throw new RunnerNameTakenError(input.name, `generate-jitconfig: a runner named "${input.name}" already exists`);
    }
    throw toGitHubError(err, 'generate-jitconfig');
  }
}

/** Every runner of the scope, all pages, optionally only those whose name has a prefix. */
export async function listRunners(octokit: HangarOctokit, input: ListRunnersInput): Promise<Runner[]> {
  const raw = await githubCall('list runners', () =>
    input.scope === 'repo'
      ? octokit.paginate(octokit.rest.actions.listSelfHostedRunnersForRepo, {
          owner: input.owner,
          repo: input.repo,
          per_page: 100,
        })
      : octokit.paginate(octokit.rest.actions.listSelfHostedRunnersForOrg, { org: input.owner, per_page: 100 }),
  );
  const runners = (raw as RawRunner[]).map(toRunner);
  const prefix = input.namePrefix;
  return prefix === undefined ? runners : runners.filter((r) => r.name.startsWith(prefix));
}

/** Resolves when the runner is gone, including when it never existed (404). Busy: RunnerBusyError. */
export async function deleteRunner(octokit: HangarOctokit, input: DeleteRunnerInput): Promise<void> {
  try {
    if (input.scope === 'repo') {
      await octokit.rest.actions.deleteSelfHostedRunnerFromRepo({
        owner: input.owner,
        repo: input.repo,
        runner_id: input.runnerId,
      });
    } else {
      await octokit.rest.actions.deleteSelfHostedRunnerFromOrg({ org: input.owner, runner_id: input.runnerId });
    }
  } catch (err) {
    const status = statusOf(err);
    if (status === 404) return;
    if (status === 422) {
      throw new RunnerBusyError(input.runnerId, `delete runner ${input.runnerId}: it is running a job`);
    }
    throw toGitHubError(err, 'delete runner');
  }
}
