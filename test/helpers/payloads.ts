import { createHmac, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface ExampleSet {
  name: string;
  examples: unknown[];
}

/** Every real `workflow_job` example GitHub's docs publish (@octokit/webhooks-examples). */
export function examplePayloads(): { name: string; payload: Record<string, any> }[] {
  const all = require('@octokit/webhooks-examples/api.github.com/index.json') as ExampleSet[];
  const set = all.find((s) => s.name === 'workflow_job');
  if (!set) throw new Error('no workflow_job examples in @octokit/webhooks-examples');
  return set.examples.map((p, i) => ({ name: `${i}: ${(p as any).action} ${(p as any).repository.full_name}`, payload: p as Record<string, any> }));
}

export interface JobPayloadOptions {
  action?: 'queued' | 'in_progress' | 'completed' | 'waiting';
  id?: number;
  runId?: number;
  labels?: string[];
  repo?: string;
  visibility?: 'public' | 'private' | 'internal';
  branch?: string | null;
  conclusion?: string | null;
  runnerName?: string | null;
}

/** A workflow_job payload built on a real example, with the fields a test cares about set. */
export function jobPayload(o: JobPayloadOptions = {}): Record<string, any> {
  const template = examplePayloads().find((e) => e.payload.action === 'queued' && e.payload.installation)!.payload;
  const p = structuredClone(template);
  const action = o.action ?? 'queued';
  const [owner, name] = (o.repo ?? 'acme/app').split('/');
  const visibility = o.visibility ?? 'private';
  p.action = action;
  Object.assign(p.workflow_job, {
    id: o.id ?? 1000,
    run_id: o.runId ?? 500,
    run_attempt: 1,
    labels: o.labels ?? ['self-hosted', 'build'],
    head_branch: o.branch === undefined ? 'main' : o.branch,
    status: action,
    conclusion: action === 'completed' ? (o.conclusion ?? 'success') : null,
    runner_name: action === 'queued' ? null : (o.runnerName ?? 'hangar-r1'),
    runner_id: action === 'queued' ? null : 7,
  });
  Object.assign(p.repository, { name, full_name: `${owner}/${name}`, private: visibility !== 'public', visibility });
  p.repository.owner = { ...p.repository.owner, login: owner };
  return p;
}

export interface Delivery {
  body: string;
  headers: Record<string, string>;
}

export const sign = (secret: string, body: string | Uint8Array) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** A delivery as GitHub sends it: raw JSON body and its headers, signed with `secret`. */
export function delivery(secret: string, payload: unknown, o: { event?: string; deliveryId?: string } = {}): Delivery {
  const body = JSON.stringify(payload);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-github-event': o.event ?? 'workflow_job',
      'x-github-delivery': o.deliveryId ?? randomUUID(),
      'x-hub-signature-256': sign(secret, body),
      'user-agent': 'GitHub-Hookshot/test',
    },
  };
}
