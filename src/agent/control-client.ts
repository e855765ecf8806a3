import type { JobReport } from '../jit/report.js';
import type { GateHints, GateReply } from './metadata.js';
import type { BootSnapshot, HostUsage } from '../domain/host-usage.js';
import { ControlTlsError, controlTransport, type ControlReply, type ControlTrust } from './control-transport.js';

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

  /** Worth another try: the control was unreachable, timed out, or failed (5xx, 429). */
  get retryable(): boolean {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

/** The control's certificate is not the one this agent trusts (or it does not speak TLS): another try cannot help. */
export class ControlUntrustedError extends ControlError {
  override get retryable(): boolean {
    return false;
  }
}

/**
 * The control refused this host's token as revoked (`hangar host remove`): nothing it sends will be
 * taken again, so another try cannot help; the agent stops taking jobs (agent.ts).
 */
export class HostRevokedError extends ControlError {
  override get retryable(): boolean {
    return false;
  }
}

const revoked = (status: number, body: Record<string, unknown>): HostRevokedError | null =>
  status === 403 && body.error === 'host-revoked' ? new HostRevokedError(403, `the control refused this host's token as revoked: ${String(body.message ?? '')}`.trim()) : null;

/** A failed send as the agent says it: the TLS reason as it is, else unreachable (with a hint when a plain request met a TLS listener). */
function unreachable(err: unknown, controlUrl: string): ControlError {
  if (err instanceof ControlTlsError) return new ControlUntrustedError(0, err.message);
  const cause = (err as { cause?: { code?: string } }).cause;
  const hint = controlUrl.startsWith('http:') && cause?.code === 'UND_ERR_SOCKET'
    ? ' (the connection closed before any answer: if the control\'s private listener has TLS, agent.controlUrl must be https://)'
    : '';
  return new ControlError(0, `control unreachable at ${controlUrl}: ${(err as Error).name}${hint}`);
}

const json = (r: ControlReply): Record<string, unknown> => {
  try {
    const v: unknown = JSON.parse(r.text);
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
};

/** What the agent's heartbeat tells the control (the host itself is the one its token names). */
export interface HostBeat {
  slots: number;
  busy: number;
  vms: { vmId: string; workflowJobId: number }[];
  /** The runner slice against its caps; null when it could not be read. */
  usage?: HostUsage | null;
  driver?: string;
  accel?: 'kvm' | 'tcg' | null;
  boots?: BootSnapshot;
  draining: boolean;
}

/** The control's answer to a heartbeat: whether the operator drained this host (an older control says nothing: no). */
export interface BeatAnswer {
  drain: boolean;
}

export interface ControlClient {
  requestRunner(pool: string, workflowJobId: number, signal?: AbortSignal): Promise<JitAnswer>;
  /**
   * The job-start gate for this host's runner: never throws. No answer within `timeoutMs`, or
   * any answer that is not a decision, is a refusal (fail closed).
   */
  jobStarted(runnerName: string, hints: GateHints, timeoutMs?: number): Promise<GateReply>;
  /**
   * Reports on a job this host took. Tries a few times over a few seconds on a network error or
   * a 5xx; throws ControlError when the control refused it or never answered.
   */
  report(workflowJobId: number, report: JobReport): Promise<{ phase: string }>;
  heartbeat(beat: HostBeat): Promise<BeatAnswer>;
  /** Removes this host's heartbeat (it is draining away). */
  goodbye(): Promise<void>;
}

const REPORT_PAUSES_MS = [250, 1000, 3000];

/**
 * `trust`: how an `https://` controlUrl's certificate is checked (agent.controlCaFile,
 * agent.controlCertSha256; control-transport.ts). A certificate that does not match fails every
 * call at once with the reason (ControlUntrustedError, not retried), before the token is sent.
 */
export function createControlClient(controlUrl: string, token: string, trust: ControlTrust = {}): ControlClient {
  const url = new URL('/api/v1/jit', controlUrl);
  const gateUrl = new URL('/api/v1/job-started', controlUrl);
  const send = controlTransport(controlUrl, trust);
  const post = (target: URL, payload: unknown, signal: AbortSignal) =>
    send('POST', target, { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, JSON.stringify(payload), signal);
  const call = async (method: string, path: string, payload?: unknown, timeoutMs = 10_000): Promise<{ status: number; body: Record<string, unknown> }> => {
    let res: ControlReply;
    try {
      res = await send(
        method,
        new URL(path, controlUrl),
        { authorization: `Bearer ${token}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
        payload === undefined ? undefined : JSON.stringify(payload),
        AbortSignal.timeout(timeoutMs),
      );
    } catch (err) {
      throw unreachable(err, controlUrl);
    }
    const body = res.status === 204 ? {} : json(res);
    const gone = revoked(res.status, body);
    if (gone) throw gone;
    if (res.status >= 400) throw new ControlError(res.status, `control answered ${res.status} to ${method} ${path}: ${String(body.error ?? '')} ${String(body.message ?? '')}`.trim());
    return { status: res.status, body };
  };
  return {
    async report(workflowJobId, report) {
      for (let i = 0; ; i++) {
        try {
          const { body } = await call('POST', `/api/v1/jobs/${workflowJobId}/report`, report);
          return { phase: String(body.phase ?? '') };
        } catch (err) {
          if (!(err instanceof ControlError) || !err.retryable || i >= REPORT_PAUSES_MS.length) throw err;
          await new Promise((res) => setTimeout(res, REPORT_PAUSES_MS[i]));
        }
      }
    },
    async heartbeat(beat) {
      const { body } = await call('PUT', '/api/v1/hosts/self/heartbeat', beat, 5_000);
      return { drain: body.drain === true };
    },
    async goodbye() {
      await call('DELETE', '/api/v1/hosts/self/heartbeat', undefined, 5_000);
    },
    async jobStarted(runnerName, hints, timeoutMs = 15_000) {
      const refuse = (message: string): GateReply => ({ decision: 'deny', reason: 'control-unreachable', message, workflowJobId: null });
      // A control restarting (an upgrade, a crash and systemd's restart) refuses connections for
      // a few seconds: ask again until the deadline rather than fail the job at once. Only what
      // never reached the control is asked again (a refused connection, a proxy's 502/503/504);
      // an answer, or a request that may have been taken (a timeout), is final.
      const deadline = Date.now() + timeoutMs;
      let pause = 250;
      let last = 'unreachable';
      while (Date.now() < deadline) {
        let res: ControlReply;
        try {
          res = await post(gateUrl, { runnerName, hints }, AbortSignal.timeout(Math.max(1, deadline - Date.now())));
        } catch (err) {
          if ((err as Error).name === 'TimeoutError') return refuse(`the Hangar control at ${controlUrl} gave no answer within ${timeoutMs / 1000} s, so the job is refused (fail closed)`);
          // Not the control this host trusts: asking again cannot change that, and nothing was sent.
          if (err instanceof ControlTlsError) return { decision: 'deny', reason: 'control-untrusted', message: `${err.message}; the job is refused (fail closed)`, workflowJobId: null };
          last = 'unreachable';
          await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, deadline - Date.now()))));
          pause = Math.min(pause * 2, 2000);
          continue;
        }
        if ([502, 503, 504].includes(res.status)) {
          last = `answering ${res.status}`;
          await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(0, deadline - Date.now()))));
          pause = Math.min(pause * 2, 2000);
          continue;
        }
        const body = json(res);
        const workflowJobId = typeof body.workflowJobId === 'number' ? body.workflowJobId : null;
        if (res.status === 200 && body.decision === 'allow') return { decision: 'allow', workflowJobId };
        if (res.status === 200 && body.decision === 'deny') {
          return { decision: 'deny', reason: String(body.reason ?? 'refused'), message: String(body.message ?? ''), workflowJobId };
        }
        return refuse(`the Hangar control answered ${res.status}, so the job is refused (fail closed)`);
      }
      return refuse(`the Hangar control at ${controlUrl} was ${last} for ${timeoutMs / 1000} s, so the job is refused (fail closed)`);
    },
    async requestRunner(pool, workflowJobId, signal) {
      let res: ControlReply;
      try {
        res = await post(url, { pool, workflowJobId }, signal ?? AbortSignal.timeout(60_000));
      } catch (err) {
        throw unreachable(err, controlUrl);
      }
      const body = json(res);
      if (res.status === 201) return body as JitAnswer & { kind: 'minted' };
      const gone = revoked(res.status, body);
      if (gone) throw gone;
      if (res.status === 403) return { kind: 'refused', reason: String(body.reason ?? 'refused') };
      if (res.status === 409 && body.error === 'already-minted') return { kind: 'refused', reason: 'already-minted' };
      if (res.status === 409) return { kind: 'busy', runnerName: String(body.runnerName ?? '') };
      if (res.status === 401) throw new ControlError(401, 'the control does not know this host token: check agent.tokenFile and the control\'s hosts[].tokenSha256');
      throw new ControlError(res.status, `control answered ${res.status}: ${String(body.error ?? '')}`);
    },
  };
}
