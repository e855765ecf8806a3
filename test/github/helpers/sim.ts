import { pino, type Logger } from 'pino';
import { createGitHubClient, type GitHubClient, type RequestBudget, type RequestObserver, type RunFactsStore, type ThrottleOptions } from '../../../src/github/index.js';
import type { CallCounts } from '../../../src/sim/calls.js';
import { createSim, type Sim } from '../../../src/sim/server.js';

export interface SimClient {
  sim: Sim;
  url: string;
  client(opts?: { throttle?: ThrottleOptions; logger?: Logger; installationId?: number | null; budget?: RequestBudget; observer?: RequestObserver; runFacts?: RunFactsStore }): GitHubClient;
  close(): Promise<void>;
}

export const APP_ID = 42;
export const INSTALLATION_ID = 7;

/** Route keys of the sim's call record (`sim.calls()`), for the routes these tests count. */
export const TOKEN = 'POST /app/installations/:installation_id/access_tokens';
export const RUNS = 'GET /repos/:owner/:repo/actions/runs';

/** How many calls, on any route, the sim answered with `status`. */
export function answeredWith(calls: CallCounts, status: number): number {
  return Object.values(calls).reduce((n, byStatus) => n + (byStatus[status] ?? 0), 0);
}

/** An in-process sim on 127.0.0.1:0 with one org `acme` and a private repo `acme/app`. */
export async function startSimClient(): Promise<SimClient> {
  const sim = await createSim({ appId: APP_ID, installationId: INSTALLATION_ID });
  const url = await sim.listen(0, '127.0.0.1');
  sim.createRepo({ owner: 'acme', name: 'app', visibility: 'private' });
  return {
    sim,
    url,
    client(o = {}) {
      return createGitHubClient({
        apiUrl: url,
        appId: APP_ID,
        privateKey: sim.appPrivateKeyPem,
        ...(o.installationId === null ? {} : { installationId: o.installationId ?? INSTALLATION_ID }),
        logger: o.logger ?? pino({ level: 'silent' }),
        // The sim does not need GitHub's one-second spacing of writes.
        throttle: { writeSpacingMs: 0, ...o.throttle },
        ...(o.budget ? { budget: o.budget } : {}),
        ...(o.observer ? { observer: o.observer } : {}),
        ...(o.runFacts ? { runFacts: o.runFacts } : {}),
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
