import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verify } from '@octokit/webhooks-methods';

/** A webhook endpoint for tests: records every request (raw body, headers, whether the signature verifies). */
export interface Received {
  headers: IncomingHttpHeaders;
  raw: string;
  payload: { action: string; workflow_job: { id: number; status: string; runner_id: number | null; runner_name: string | null } } & Record<string, unknown>;
  signatureOk: boolean;
  at: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Answer with this status from now on. */
  respondWith(status: number): void;
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export async function startReceiver(secret: string): Promise<Receiver> {
  const received: Received[] = [];
  let status = 202;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const sig = String(req.headers['x-hub-signature-256'] ?? '');
      void verify(secret, raw, sig).catch(() => false).then((signatureOk) => {
        received.push({ headers: req.headers, raw, payload: JSON.parse(raw) as Received['payload'], signatureOk, at: Date.now() });
        res.writeHead(status, { 'content-type': 'text/plain' }).end('ok');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/webhooks/github`,
    received,
    respondWith: (s) => void (status = s),
    async waitFor(n, timeoutMs = 5000) {
      const end = Date.now() + timeoutMs;
      while (received.length < n) {
        if (Date.now() > end) throw new Error(`expected ${n} webhook(s), got ${received.length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return received;
    },
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
