import { readFileSync } from 'node:fs';
import { loadConfig, requireControl } from '../config/load.js';
import { PayloadError } from '../domain/errors.js';
import { decide, labelsServedBy, type Decision } from '../domain/policy.js';
import { parseWorkflowJob } from '../intake/parse.js';

/** `hangar policy explain PAYLOAD --config FILE [--json]`. */
export async function policyExplain(payloadFile: string, configFile: string, json: boolean): Promise<void> {
  const config = requireControl(loadConfig(configFile));
  let payload: unknown;
  try {
    payload = JSON.parse(readFileSync(payloadFile, 'utf8'));
  } catch (err) {
    throw new PayloadError('(file)', `${payloadFile}: ${(err as Error).message}`);
  }
  // Policy does not depend on the action; explain a payload of any action as if it were queued.
  const ev = parseWorkflowJob({ ...(payload as object), action: 'queued' });
  if (!ev) throw new PayloadError('action', 'not a workflow_job payload');
  const decision = decide(ev, config);
  if (json) {
    process.stdout.write(`${JSON.stringify(decision)}\n`);
    return;
  }
  const lines = [
    `job ${ev.workflowJobId} "${ev.jobName}" of ${ev.repo} (${ev.visibility}), branch ${ev.headBranch ?? '-'}`,
    `runs-on: ${ev.labels.join(', ') || '(none)'}`,
    ...config.pools.map((p) => `  pool ${p.name}${p.deploy ? ' (deploy)' : ''}: labels ${labelsServedBy(ev.labels, p.labels) ? 'match' : 'do not match'} [${p.labels.join(', ')}]`),
    `decision: ${describe(decision)}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

const WHY: Record<string, string> = {
  'public-repo': 'the repository is public: anyone could run code on your hosts through a pull request',
  'internal-repo': 'the repository is internal; set policy.allowInternal to run its jobs',
  'repo-not-allowed': 'the repository is not in policy.repositories',
  'no-pool': 'no pool has every label the job asks for (runs-on must be a subset of a pool\'s labels)',
  'deploy-not-allowed': 'only a deploy pool serves these labels, and it does not allow this repository or branch',
};

function describe(d: Decision): string {
  if (d.kind === 'accept') return `accept into pool ${d.pool}`;
  if (d.kind === 'ignore') return 'ignore: not a self-hosted job (GitHub runs it on its own runners)';
  return `reject (${d.reason}): ${WHY[d.reason]}`;
}
