/**
 * The agent's side of `POST /api/v1/jit`. The host token and the JIT config live only in
 * memory here and in the request/response bodies: never in a log line or an error message.
 */
export type JitAnswer =
  | { kind: 'minted'; runnerName: string; runnerId: number; encodedJitConfig: string }
  | { kind: 'refused'; reason: string }
  | { kind: 'busy'; runnerName: string };

export class ControlError extends Error {
  readonly code = 'control-unavailable';
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ControlError';
  }
}

export interface ControlClient {
  requestRunner(pool: string, workflowJobId: number, signal?: AbortSignal): Promise<JitAnswer>;
}

export function createControlClient(controlUrl: string, token: string): ControlClient {
  const url = new URL('/api/v1/jit', controlUrl).toString();
  return {
    async requestRunner(pool, workflowJobId, signal) {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ pool, workflowJobId }),
          signal: signal ?? AbortSignal.timeout(60_000),
        });
      } catch (err) {
        throw new ControlError(0, `control unreachable at ${controlUrl}: ${(err as Error).name}`);
      }
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.status === 201) return body as JitAnswer & { kind: 'minted' };
      if (res.status === 403) return { kind: 'refused', reason: String(body.reason ?? 'refused') };
      if (res.status === 409) return { kind: 'busy', runnerName: String(body.runnerName ?? '') };
      if (res.status === 401) throw new ControlError(401, 'the control does not know this host token: check agent.tokenFile and the control\'s hosts[].tokenSha256');
      throw new ControlError(res.status, `control answered ${res.status}: ${String(body.error ?? '')}`);
    },
  };
}
