import { createSim, type Sim, type SimOptions } from '../../../src/sim/server.js';
import { startReceiver, type Receiver } from './receiver.js';

export const SECRET = 'test-webhook-secret';

export interface SimHarness {
  sim: Sim;
  url: string;
  receiver: Receiver;
  /** An installation token, for the routes that want one. */
  token: string;
  /** fetch against the sim; JSON body in, status + parsed body + headers out. */
  call(method: string, path: string, opts?: { body?: unknown; auth?: string | null }): Promise<{ status: number; body: any; headers: Headers }>;
  close(): Promise<void>;
}

/** A sim on 127.0.0.1:0 with a webhook receiver; one org `acme` with a private repo `acme/app`. */
export async function startSim(opts: Partial<SimOptions> = {}): Promise<SimHarness> {
  const receiver = await startReceiver(SECRET);
  const sim = await createSim({ appId: 42, installationId: 7, webhookUrl: receiver.url, webhookSecret: SECRET, ...opts });
  const url = await sim.listen(0, '127.0.0.1');
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  const token = sim.installationToken();
  const call: SimHarness['call'] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { accept: 'application/vnd.github+json' };
    const auth = o.auth === undefined ? `token ${token}` : o.auth;
    if (auth !== null) headers.authorization = auth;
    if (o.body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${url}${path}`, { method, headers, ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}) });
    const text = await res.text();
    let body: unknown = text;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body, headers: res.headers };
  };
  return {
    sim, url, receiver, token, call,
    async close() {
      await sim.close();
      await receiver.close();
    },
  };
}
