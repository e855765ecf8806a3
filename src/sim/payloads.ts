import { createRequire } from 'node:module';
import type { JobAction } from './store.js';
import type { Job } from './model.js';
import { SENDER, jobJson, repoFields, userJson, type Urls } from './shapes.js';

/**
 * `workflow_job` webhook payloads, built on a real example from @octokit/webhooks-examples:
 * the example decides which keys exist and in what order; the sim fills in its own values.
 */
interface Example {
  action: string;
  workflow_job: Record<string, unknown>;
  repository: Record<string, unknown>;
  sender: Record<string, unknown>;
  installation?: Record<string, unknown>;
  organization?: Record<string, unknown>;
}

let cached: { job: Example; org: Record<string, unknown> } | undefined;

function templates(): { job: Example; org: Record<string, unknown> } {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const all = require('@octokit/webhooks-examples/api.github.com/index.json') as { name: string; examples: Example[] }[];
  const examples = all.find((e) => e.name === 'workflow_job')?.examples ?? [];
  // The queued example that carries `installation`, as an App receives it; one with `organization` for that block.
  const job = examples.find((e) => e.action === 'queued' && e.installation && !('deployment' in e));
  const org = examples.find((e) => e.organization)?.organization;
  if (!job || !org) throw new Error('@octokit/webhooks-examples has no usable workflow_job example');
  cached = { job, org };
  return cached;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The template's keys, in its order, with the sim's values where it has one; nested objects alike. */
function fill(template: Record<string, unknown>, values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, example] of Object.entries(template)) {
    const value = values[key];
    if (!(key in values)) out[key] = structuredClone(example);
    else if (isRecord(example) && isRecord(value) && Object.keys(example).length > 0) out[key] = fill(example, value);
    else out[key] = value;
  }
  return out;
}

export interface PayloadContext {
  urls: Urls;
  installationId: number;
}

export function workflowJobPayload(action: JobAction, job: Job, ctx: PayloadContext): Record<string, unknown> {
  const t = templates();
  const repo = job.run.repo;
  const owner = repo.owner;
  const orgApi = `${ctx.urls.api}/orgs/${owner.login}`;
  const organization = fill(t.org, {
    login: owner.login, id: owner.id, node_id: owner.nodeId, url: orgApi, repos_url: `${orgApi}/repos`,
    events_url: `${orgApi}/events`, hooks_url: `${orgApi}/hooks`, issues_url: `${orgApi}/issues`,
    members_url: `${orgApi}/members{/member}`, public_members_url: `${orgApi}/public_members{/member}`,
    avatar_url: `https://avatars.githubusercontent.com/u/${owner.id}?v=4`, description: null,
  });
  return {
    action,
    workflow_job: fill(t.job.workflow_job, jobJson(job, ctx.urls)),
    repository: fill(t.job.repository, repoFields(repo, ctx.urls)),
    organization,
    sender: fill(t.job.sender, userJson(SENDER, ctx.urls)),
    installation: { id: ctx.installationId, node_id: Buffer.from(`023:IntegrationInstallation${ctx.installationId}`).toString('base64') },
  };
}
