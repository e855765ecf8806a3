import { Redis } from 'ioredis';
import { expect } from 'vitest';
import { readJobRecord, type JobRecord } from '../../src/jobs/record.js';
import { keys } from '../../src/queue/keys.js';
import { decodeJitConfig } from '../../src/sim/job-script.js';
import { createSim, type Sim } from '../../src/sim/server.js';
import { OPERATOR_TOKEN, startTestControl, TEST_SECRET, type TestControl, type TestControlOptions } from './control.js';
import { dropPrefix, redisUrl, testPrefix } from './redis.js';

/**
 * A real control with its dashboard on 127.0.0.1:0, a real Redis and the sim as GitHub, fed
 * honestly: signed webhooks from the sim, and the agents' API (heartbeats, mints, reports, the
 * gate) with host tokens, as an agent would call it.
 */
export const BUILD_TOKEN = 'build-host-token-0123456789abcdef';
export const DEPLOY_TOKEN = 'deploy-host-token-0123456789abcdef';

export interface DashboardRig {
  sim: Sim;
  control: TestControl;
  redis: Redis;
  prefix: string;
  /** The dashboard's base URL. */
  dash: string;
  close(): Promise<void>;
}

export async function startDashboardRig(o: Partial<TestControlOptions> = {}): Promise<DashboardRig> {
  const prefix = testPrefix();
  const redis = new Redis(redisUrl());
  const sim = await createSim({ appId: 9, installationId: 3 });
  const simUrl = await sim.listen(0, '127.0.0.1');
  const control = await startTestControl({
    redisUrl: redisUrl(), prefix, apiUrl: simUrl, appId: 9, appKeyPem: sim.appPrivateKeyPem,
    hosts: [
      { name: 'minipc', role: 'build', pools: ['build'], token: BUILD_TOKEN },
      { name: 'cloud', role: 'deploy', pools: ['build', 'deploy'], token: DEPLOY_TOKEN },
    ],
    dashboard: '{listen: "127.0.0.1:0"}',
    ...o,
  });
  sim.setWebhook({ url: `${control.webhookUrl}/webhooks/github`, secret: TEST_SECRET });
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  sim.createRepo({ owner: 'acme', name: 'site', visibility: 'private' });
  return {
    sim, control, redis, prefix, dash: control.dashboard!.url!,
    async close() {
      await control.close();
      await sim.close();
      await dropPrefix(redisUrl(), prefix);
      redis.disconnect();
    },
  };
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  body: any;
}

export async function http(url: string, init: RequestInit & { token?: string | null; cookie?: string; csrf?: string; json?: unknown } = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(init.headers as Record<string, string> | undefined) };
  const token = init.token === undefined ? OPERATOR_TOKEN : init.token;
  if (token !== null && !init.cookie) headers.authorization = `Bearer ${token}`;
  if (init.cookie) headers.cookie = init.cookie;
  if (init.csrf) headers['x-csrf-token'] = init.csrf;
  if (init.json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url, { ...init, headers, redirect: 'manual', ...(init.json !== undefined ? { body: JSON.stringify(init.json) } : {}) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, headers: res.headers, text, body };
}

/** The agents' API, as a host calls it. */
export const agentCall = (rig: DashboardRig, token: string, method: string, path: string, body?: unknown) =>
  fetch(`${rig.control.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  }).then(async (r) => ({ status: r.status, body: r.status === 204 ? {} : ((await r.json()) as Record<string, any>) }));

export const beat = (rig: DashboardRig, token: string, o: { slots?: number; busy?: number; vms?: { vmId: string; workflowJobId: number }[] } = {}) =>
  agentCall(rig, token, 'PUT', '/api/v1/hosts/self/heartbeat', { slots: o.slots ?? 2, busy: o.busy ?? 0, vms: o.vms ?? [], draining: false, driver: 'qemu-microvm', accel: 'tcg' });

/** Starts a run in the sim and waits until the control has recorded each job. */
export async function recordedJobs(rig: DashboardRig, run: Parameters<Sim['createRun']>[0], phase: string | ((r: JobRecord) => boolean) = 'queued'): Promise<number[]> {
  const done = typeof phase === 'string' ? (r: JobRecord) => r.phase === phase : phase;
  const { jobs } = rig.sim.createRun(run);
  await rig.sim.idle();
  const ids = jobs.map((j) => j.id);
  await expect.poll(async () => (await Promise.all(ids.map((id) => readJobRecord(rig.redis, keys(rig.prefix), id)))).every((r) => r !== null && done(r)), { timeout: 10_000 }).toBe(true);
  return ids;
}

/**
 * One job through every step an agent takes, against the real control and the sim: mint, VM up,
 * its runner takes the job (GitHub: in_progress), the gate allows it, the job's result, the VM's
 * end. `exit` is the job's exit code.
 */
export async function runThrough(rig: DashboardRig, id: number, o: { exit?: number; token?: string; pool?: string } = {}): Promise<{ runnerName: string }> {
  const token = o.token ?? BUILD_TOKEN;
  const minted = await agentCall(rig, token, 'POST', '/api/v1/jit', { pool: o.pool ?? 'build', workflowJobId: id });
  expect(minted.status).toBe(201);
  const runnerName = minted.body.runnerName as string;
  const vmId = `wj-${id}-1`;
  expect((await agentCall(rig, token, 'POST', `/api/v1/jobs/${id}/report`, { kind: 'vm-up', vmId, runnerName })).status).toBe(200);
  const jit = decodeJitConfig(minted.body.encodedJitConfig as string);
  const runner = { authorization: `RunnerToken ${jit.token}` };
  const claimed = await fetch(`${jit.url}/_runner/job`, { headers: runner });
  expect(claimed.headers.get('x-sim-job-id')).toBe(String(id));
  await claimed.body?.cancel();
  const job = rig.sim.job(id);
  const gate = await agentCall(rig, token, 'POST', '/api/v1/job-started', { runnerName, hints: { repository: 'acme/app', runId: job.runId, runAttempt: 1 } });
  expect(gate.body, JSON.stringify(gate.body)).toMatchObject({ decision: 'allow' });
  const exit = o.exit ?? 0;
  expect((await fetch(`${jit.url}/_runner/jobs/${id}/result?exit=${exit}`, { method: 'POST', headers: runner, body: exit === 0 ? 'ok\n' : 'boom\n' })).status).toBe(200);
  await rig.sim.idle();
  const ended = { kind: 'vm-ended', end: 'ran', vmId, runnerName, vmMs: 1500, exitCode: exit, egress: { denied: [], dns: { names: [] } } };
  expect((await agentCall(rig, token, 'POST', `/api/v1/jobs/${id}/report`, ended)).status).toBe(200);
  return { runnerName };
}

export interface SseMessage {
  id: string | null;
  event: string;
  data: any;
}

/** An open `/api/v1/stream`: every message as it came. */
export async function openStream(url: string, headers: Record<string, string>): Promise<{ messages: SseMessage[]; comments: number; close(): void }> {
  const ctl = new AbortController();
  const res = await fetch(url, { headers, signal: ctl.signal });
  if (res.status !== 200) throw new Error(`stream: ${res.status} ${await res.text()}`);
  const out = { messages: [] as SseMessage[], comments: 0, close: () => ctl.abort() };
  void (async () => {
    const decoder = new TextDecoder();
    let buf = '';
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += decoder.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (frame.startsWith(':')) {
            out.comments++;
            continue;
          }
          const m: SseMessage = { id: null, event: 'message', data: null };
          for (const line of frame.split('\n')) {
            const [k, ...rest] = line.split(': ');
            const v = rest.join(': ');
            if (k === 'id') m.id = v;
            else if (k === 'event') m.event = v;
            else if (k === 'data') m.data = JSON.parse(v);
          }
          out.messages.push(m);
        }
      }
    } catch {
      // closed
    }
  })();
  return out;
}
