import { readFileSync } from 'node:fs';
import { ControlTlsError, controlTransport, type ControlReply, type ControlTrust } from '../agent/control-transport.js';
import { readAgentCa } from '../config/tls-files.js';
import { fail, judgeHostView, ok, skip, warn } from '../domain/doctor.js';
import type { Check, DoctorContext } from './check.js';

/** The control as the agent reaches it: the same transport, so the same certificate checks. */
export async function askControl(ctx: DoctorContext, path: string, token?: string): Promise<ControlReply> {
  const a = ctx.agent!.agent;
  const trust: ControlTrust = {
    ...(a.controlCaFile ? { ca: readAgentCa(a.controlCaFile) } : {}),
    ...(a.controlCertSha256 ? { certSha256: a.controlCertSha256 } : {}),
  };
  const send = controlTransport(a.controlUrl, trust);
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  return send('GET', new URL(path, a.controlUrl), headers, undefined, AbortSignal.timeout(ctx.timeoutMs));
}

const unreachableFix = 'start `hangar control` (its private listener), or correct agent.controlUrl to control.private.listen';
const tlsFix = "set agent.controlCaFile to the CA that signed the control's certificate (control.private.tls.certFile), or agent.controlCertSha256 to that certificate's sha256";

export const controlReachable: Check = {
  id: 'control-reachable',
  title: "the control reachable, its certificate trusted",
  async run(ctx) {
    const url = ctx.agent!.agent.controlUrl;
    let reply: ControlReply;
    try {
      reply = await askControl(ctx, '/healthz');
    } catch (err) {
      if (err instanceof ControlTlsError) return fail(err.message, tlsFix);
      return fail(`cannot reach the control at ${url}: ${networkReason(err)}`, unreachableFix);
    }
    if (reply.status === 200) return ok(`${url}/healthz answers 200${url.startsWith('https:') ? ', certificate trusted' : ''}`);
    if (reply.status === 503) return warn(`${url}/healthz answers 503: the control is up, its Redis is not`, "start the control's Redis (the control's redis.url)");
    return fail(`${url}/healthz answers ${reply.status}: is agent.controlUrl the control's private listener?`, unreachableFix);
  },
};

export const hostView: Check = {
  id: 'host-role',
  title: "this host's role and pools as the control has them",
  async run(ctx) {
    const a = ctx.agent!.agent;
    const mine = { name: a.host, role: a.role, pools: a.pools };
    let token: string;
    try {
      token = readFileSync(a.tokenFile, 'utf8').trim();
    } catch {
      return skip('agent.tokenFile cannot be read (see config)');
    }
    let reply: ControlReply;
    try {
      reply = await askControl(ctx, '/api/v1/hosts/self', token);
    } catch {
      return skip('the control is unreachable (see control-reachable)');
    }
    if (reply.status === 401) {
      return fail(`the control does not know this host's token (401): its hosts[] has no entry with the sha256 of ${a.tokenFile}`, `put this host's tokenSha256 (\`sha256sum ${a.tokenFile}\`) in the control's hosts[] entry "${a.host}", or enrol it with \`hangar host add ${a.host}\``);
    }
    if (reply.status === 403) return fail(`the control refuses this host: ${messageOf(reply.text)}`, `enrol it again: \`hangar host add ${a.host} --role ${a.role} --pools ${a.pools.join(',')} --config CONTROL.yaml\``);
    if (reply.status === 404) return warn('the control has no GET /api/v1/hosts/self (an older control): only this file\'s hosts[] was checked', 'upgrade the control, then run hangar doctor again');
    if (reply.status !== 200) return fail(`GET /api/v1/hosts/self answered ${reply.status}`, unreachableFix);
    const theirs = JSON.parse(reply.text) as { name: string; role: string; pools: string[] };
    return judgeHostView(mine, theirs);
  },
};

function messageOf(text: string): string {
  try {
    return String((JSON.parse(text) as { message?: unknown }).message ?? text);
  } catch {
    return text.slice(0, 200);
  }
}

/** fetch says only "fetch failed": the reason is in its cause (ECONNREFUSED, ENOTFOUND…). */
export function networkReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  if (e.name === 'TimeoutError') return 'no answer in time';
  const cause = e.cause ?? e;
  return cause.code ? `${cause.code} (${cause.message})` : cause.message;
}
