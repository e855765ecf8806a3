// A real `workflow_job` `queued` delivery (GitHub's own example from @octokit/webhooks-examples),
// with the fields set the same way as test/helpers/payloads.ts jobPayload() does, turned into a
// template so that every request can carry a distinct workflow job id and delivery id at the cost
// of a string concatenation and one HMAC (what GitHub does when it sends).
import { createHmac, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** Placeholder job id: must appear exactly once in the serialised payload. */
const SENTINEL = 987654321987;

export function queuedTemplate({ repo = 'acme/app', labels = ['self-hosted', 'build'] } = {}) {
  const all = require('@octokit/webhooks-examples/api.github.com/index.json');
  const set = all.find((s) => s.name === 'workflow_job');
  if (!set) throw new Error('no workflow_job examples in @octokit/webhooks-examples');
  const template = set.examples.find((p) => p.action === 'queued' && p.installation);
  if (!template) throw new Error('no queued workflow_job example with an installation');
  const p = structuredClone(template);
  const [owner, name] = repo.split('/');
  p.action = 'queued';
  Object.assign(p.workflow_job, {
    id: SENTINEL,
    run_id: 500,
    run_attempt: 1,
    labels,
    head_branch: 'main',
    status: 'queued',
    conclusion: null,
    runner_name: null,
    runner_id: null,
  });
  Object.assign(p.repository, { name, full_name: `${owner}/${name}`, private: true, visibility: 'private' });
  p.repository.owner = { ...p.repository.owner, login: owner };
  const json = JSON.stringify(p);
  const parts = json.split(String(SENTINEL));
  if (parts.length !== 2) throw new Error(`job id placeholder found ${parts.length - 1} times in the payload`);
  const [before, after] = parts;
  const beforeBuf = Buffer.from(before);
  const afterBuf = Buffer.from(after);
  return {
    /** Body with workflow_job.id = `id`, byte for byte what JSON.stringify would give. */
    body: (id) => before + id + after,
    /**
     * The whole HTTP request of one delivery as buffers to write together: a head of its own
     * (request line, GitHub's headers with this body's signature) and the body, whose two large
     * parts around the job id are shared by every request. Signing happens here, not when sent.
     */
    request(secret, host, path, id) {
      const idBuf = Buffer.from(String(id));
      const hmac = createHmac('sha256', secret).update(beforeBuf).update(idBuf).update(afterBuf).digest('hex');
      const headers = deliveryHeaders(secret, null, randomUUID(), `sha256=${hmac}`);
      const length = beforeBuf.length + idBuf.length + afterBuf.length;
      let head = `POST ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: keep-alive\r\ncontent-length: ${length}\r\n`;
      for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
      return [Buffer.from(`${head}\r\n`, 'latin1'), beforeBuf, idBuf, afterBuf];
    },
    bytes: Buffer.byteLength(json) - String(SENTINEL).length + 5,
  };
}

export const sign = (secret, body) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** Headers as GitHub's Hookshot sends them for one delivery. */
export function deliveryHeaders(secret, body, deliveryId = randomUUID(), signature = sign(secret, body)) {
  return {
    'content-type': 'application/json',
    'user-agent': 'GitHub-Hookshot/bench',
    'x-github-event': 'workflow_job',
    'x-github-delivery': deliveryId,
    'x-github-hook-id': '123456789',
    'x-github-hook-installation-target-id': '424242',
    'x-github-hook-installation-target-type': 'integration',
    'x-hub-signature-256': signature,
  };
}
