import { createHash } from 'node:crypto';
import type { RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';

/**
 * How the agent reaches the control: `http://` through fetch (loopback only, beside the
 * control), `https://` through node:https with the control's certificate checked here before
 * a byte of the request (its host token) is written. node:https rather than fetch: Node's fetch
 * takes TLS options only through an undici dispatcher, and undici is not a dependency of ours;
 * node:https is the same core TLS with an Agent whose connection we can hold until it is checked.
 */
export interface ControlTrust {
  /** PEM: the CA that signed the control's certificate, or that certificate itself (agent.controlCaFile). */
  ca?: string;
  /** The sha256 of the control's certificate (DER), lowercase hex (agent.controlCertSha256). */
  certSha256?: string;
}

/** The control's certificate was not the one this agent trusts: never retried, never sent a request. */
export class ControlTlsError extends Error {
  readonly code = 'control-tls';
  constructor(message: string) {
    super(message);
    this.name = 'ControlTlsError';
  }
}

export interface ControlReply {
  status: number;
  text: string;
  /** The answer's Date header (hangar doctor compares it with this machine's clock). */
  date?: string;
}

export type ControlSend = (method: string, url: URL, headers: Record<string, string>, body: string | undefined, signal: AbortSignal) => Promise<ControlReply>;

/** Answers are small JSON; a control sending more is not one. */
const MAX_REPLY_BYTES = 1 << 20;

export function controlTransport(controlUrl: string, trust: ControlTrust = {}): ControlSend {
  const url = new URL(controlUrl);
  if (url.protocol === 'http:') {
    if (trust.ca !== undefined || trust.certSha256 !== undefined) throw new ControlTlsError(`agent.controlUrl ${controlUrl} is plain http://, so agent.controlCaFile and agent.controlCertSha256 cannot apply: use https://`);
    return sendByFetch;
  }
  const agent = new TrustingAgent(controlUrl, trust);
  return (method, target, headers, body, signal) => sendByHttps(agent, method, target, headers, body, signal);
}

async function sendByFetch(method: string, url: URL, headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<ControlReply> {
  const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body }), signal });
  const date = res.headers.get('date');
  return { status: res.status, text: res.status === 204 ? '' : await res.text(), ...(date ? { date } : {}) };
}

function sendByHttps(agent: HttpsAgent, method: string, url: URL, headers: Record<string, string>, body: string | undefined, signal: AbortSignal): Promise<ControlReply> {
  return new Promise((resolve, reject) => {
    // The caller tells a timeout (TimeoutError) from a failure: give it the signal's own reason.
    const fail = (err: Error) => reject(signal.aborted ? (signal.reason as Error) : err);
    const req = httpsRequest(url, { method, agent, headers: body === undefined ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) }, signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_REPLY_BYTES) res.destroy(new Error(`the control's answer is over ${MAX_REPLY_BYTES} bytes`));
        else chunks.push(c);
      });
      const date = res.headers.date;
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), ...(date ? { date } : {}) }));
      res.on('error', fail);
    });
    req.on('error', fail);
    // A connection that is not up within CONNECT_TIMEOUT_MS sent nothing: it is given up and the
    // caller may ask again on a new one. (During a link outage the kernel retries a SYN for two
    // minutes; the link back, a fresh connection answers at once, the stale one maybe never.)
    req.on('socket', (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(() => {
        const err = new Error(`no connection to the control within ${CONNECT_TIMEOUT_MS / 1000} s`);
        err.name = 'ConnectTimeoutError';
        req.destroy(err);
      }, CONNECT_TIMEOUT_MS);
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    });
    req.end(body);
  });
}

const CONNECT_TIMEOUT_MS = 5_000;

/**
 * An https Agent whose every connection is checked before it is handed to a request: with
 * `ca`, the chain and the name in controlUrl against it (not the system's CAs); with
 * `certSha256`, the certificate itself; with neither, the system's CAs.
 */
class TrustingAgent extends HttpsAgent {
  constructor(private readonly controlUrl: string, private readonly trust: ControlTrust) {
    // One connection per request: a kept-alive socket the control closed would fail a request that never reached it.
    super({ keepAlive: false });
  }

  override createConnection(options: RequestOptions, oncreate?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    const { ca, certSha256 } = this.trust;
    const pinOnly = ca === undefined && certSha256 !== undefined;
    const socket = tlsConnect({
      ...(options as ConnectionOptions),
      ...(ca !== undefined ? { ca } : {}),
      // Verified below, on secureConnect: so that the reason is ours, and a pin can stand alone.
      rejectUnauthorized: false,
    });
    const done = (err: Error | null) => {
      socket.off('error', onError);
      if (err) socket.destroy();
      oncreate?.(err, socket);
    };
    const onError = (err: NodeJS.ErrnoException) => done(describeTlsFailure(err, this.controlUrl) ?? err);
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      if (!pinOnly && !socket.authorized) {
        const why = String(socket.authorizationError ?? 'not verified');
        const source = ca !== undefined ? 'agent.controlCaFile' : "this machine's CAs";
        const what = /ALTNAME|HOSTNAME|IP:/i.test(why) ? `does not name the host in agent.controlUrl (${this.controlUrl})` : `is not signed by ${source}`;
        return done(new ControlTlsError(`the control's certificate ${what} (${why}): refusing to send it this host's token`));
      }
      if (certSha256 !== undefined) {
        const cert = socket.getPeerCertificate();
        const got = cert?.raw ? createHash('sha256').update(cert.raw).digest('hex') : '(none)';
        if (got !== certSha256) return done(new ControlTlsError(`the control's certificate pin mismatch: agent.controlCertSha256 is ${certSha256}, the control presented ${got}: refusing to send it this host's token`));
      }
      done(null);
    });
    return undefined;
  }
}

/** A TLS failure before the handshake ended, as the operator can act on it; null for a network error. */
function describeTlsFailure(err: NodeJS.ErrnoException, controlUrl: string): ControlTlsError | null {
  const code = err.code ?? '';
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' || /wrong version number|packet length too long/i.test(String(err.message))) {
    return new ControlTlsError(`the control at ${controlUrl} does not speak TLS (${code || 'wrong version'}): is it the private listener, and does it have control.private.tls? A plain-HTTP listener needs an http:// controlUrl on loopback`);
  }
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return new ControlTlsError(`TLS with the control at ${controlUrl} failed (${code})`);
  return null;
}
