import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino, type Logger } from 'pino';
import { createGitHubClient, type GitHubClient, type ThrottleOptions } from '../../../src/github/index.js';
import { createSim, type Sim } from '../../../src/sim/server.js';

export interface Call {
  method: string;
  path: string;
  status: number;
  at: number;
}

export interface SimClient {
  sim: Sim;
  url: string;
  /** Every HTTP exchange the sim's server saw, with the status it answered. */
  calls: Call[];
  client(opts?: { throttle?: ThrottleOptions; logger?: Logger; installationId?: number | null }): GitHubClient;
  close(): Promise<void>;
}

export const APP_ID = 42;
export const INSTALLATION_ID = 7;

/**
 * An in-process sim on 127.0.0.1:0 with one org `acme` and a private repo `acme/app`, and a
 * recorder of every exchange on its HTTP server (the sim has no call counter of its own).
 */
export async function startSimClient(): Promise<SimClient> {
  const sim = await createSim({ appId: APP_ID, installationId: INSTALLATION_ID });
  const calls: Call[] = [];
  sim.app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    res.on('finish', () => {
      const path = new URL(req.url ?? '/', 'http://sim').pathname;
      calls.push({ method: req.method ?? '', path, status: res.statusCode, at: Date.now() });
    });
  });
  const url = await sim.listen(0, '127.0.0.1');
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  return {
    sim,
    url,
    calls,
    client(o = {}) {
      return createGitHubClient({
        apiUrl: url,
        appId: APP_ID,
        privateKey: sim.appPrivateKeyPem,
        ...(o.installationId === null ? {} : { installationId: o.installationId ?? INSTALLATION_ID }),
        logger: o.logger ?? pino({ level: 'silent' }),
        // The sim does not need GitHub's one-second spacing of writes.
        throttle: { writeSpacingMs: 0, ...o.throttle },
      });
    },
    close: () => sim.close(),
  };
}

/** Lines a pino logger wrote, parsed. */
export function captureLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}
