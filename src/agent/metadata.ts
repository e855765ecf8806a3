import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { JitHandover } from './jit-handover.js';

/**
 * A VM's metadata endpoint: one small HTTP server per VM, on that VM's gateway address, the one
 * host service a guest may reach besides DNS. It answers two questions, each once: the guest's
 * JIT config (`GET /v1/jit`, held until the mint settles: see jit-handover.ts) and the job-start
 * gate (`POST /v1/job-started`: "may the job I was given run here?"). Everything a guest sends
 * is hostile: the server knows which VM asks from the addresses of the connection (its gateway,
 * its guest address — a request that arrives any other way is refused), never from what the
 * request claims; bodies, connections and requests are bounded; no answer but the VM's own JIT
 * config carries a secret, and that one is never logged.
 */
export interface GateHints {
  repository?: string;
  runId?: number;
  runAttempt?: number;
}

export type GateReply = { decision: 'allow'; workflowJobId: number | null } | { decision: 'deny'; reason: string; message: string; workflowJobId: number | null };

export interface MetadataEndpointOptions {
  /** The VM's gateway (host side of its /30) and the guest's own address. */
  hostIp: string;
  guestIp: string;
  port: number;
  logger: Logger;
  /** Asks the control; must settle (a refusal on any failure). */
  gate(hints: GateHints): Promise<GateReply>;
  /** The VM's JIT config on its way (none: `GET /v1/jit` answers 404). */
  jit?: JitHandover;
  /** How long a `GET /v1/jit` is held for the mint to settle (default: the mint's own 60 s, and a little). */
  jitWaitMs?: number;
}

export interface MetadataEndpoint {
  /** The gate's answer once the guest asked, else null. */
  readonly answer: GateReply | null;
  /** Resolves with the gate's answer when the guest has asked. */
  readonly asked: Promise<GateReply>;
  close(): Promise<void>;
}

const BODY_LIMIT = 4096;
const JIT_WAIT_MS = 65_000;
/** A runner asks once; a guest that keeps asking is flooding. */
const REQUEST_LIMIT = 32;
const REPO = /^[A-Za-z0-9_.-]{1,100}\/[A-Za-z0-9_.-]{1,100}$/;

export async function openMetadataEndpoint(o: MetadataEndpointOptions): Promise<MetadataEndpoint> {
  let answer: GateReply | null = null;
  let gateAsked = false;
  let requests = 0;
  let warned = 0;
  let settle: (r: GateReply) => void = () => undefined;
  const asked = new Promise<GateReply>((resolve) => (settle = resolve));
  const warn = (fields: Record<string, unknown>, msg: string) => {
    if (warned++ < 5) o.logger.warn(fields, msg);
  };

  const server = createServer({ maxHeaderSize: 4096 }, (req, res) => {
    if (++requests > REQUEST_LIMIT) {
      warn({ requests }, 'metadata: request limit reached; closing');
      req.socket.destroy();
      return;
    }
    const from = plainAddress(req.socket.remoteAddress);
    const to = plainAddress(req.socket.localAddress);
    if (from !== o.guestIp || to !== o.hostIp) {
      warn({ from, to }, 'metadata: request from an address that is not this VM; refused');
      return send(res, 403, 'deny not-this-vm\n');
    }
    if (req.method === 'GET' && req.url === '/v1/jit') return void answerJit(o, req, res);
    if (req.method !== 'POST' || req.url !== '/v1/job-started') return send(res, 404, 'not found\n');
    readBody(req, BODY_LIMIT).then(
      async (body) => {
        if (gateAsked) return send(res, 200, text({ decision: 'deny', reason: 'already-asked', message: 'this VM asked the gate already', workflowJobId: null }));
        gateAsked = true;
        const reply = await o.gate(parseHints(body));
        answer = reply;
        settle(reply);
        send(res, 200, text(reply));
      },
      () => {
        warn({ limit: BODY_LIMIT }, 'metadata: body too large or broken; refused');
        send(res, 413, 'deny bad-request\n');
        req.socket.destroy();
      },
    );
  });
  server.maxConnections = 4;
  server.headersTimeout = 5_000;
  server.requestTimeout = 5_000;
  server.keepAliveTimeout = 1_000;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.hostIp, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    get answer() {
      return answer;
    },
    asked,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * The guest's JIT config, as GitHub encoded it (text/plain). 404 with a reason when none is
 * coming, 410 once it was handed over, 503 when the mint has not settled within the hold.
 */
async function answerJit(o: MetadataEndpointOptions, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (!o.jit) return send(res, 404, 'no-jit none\n');
  const hungUp = new AbortController();
  const onClose = () => hungUp.abort();
  req.socket.once('close', onClose);
  if (req.socket.destroyed) onClose();
  const got = await o.jit.take(o.jitWaitMs ?? JIT_WAIT_MS, hungUp.signal);
  req.socket.off('close', onClose);
  if (got.kind === 'config') return send(res, 200, got.config);
  if (got.kind === 'withheld') return send(res, 404, `no-jit ${got.reason}\n`);
  if (got.kind === 'gone') return send(res, 410, 'gone: this VM has had its JIT config\n');
  send(res, 503, 'not-ready\n');
}

/** `KEY=value` lines from the hook; only the keys Hangar uses, only values of their shape. */
export function parseHints(body: string): GateHints {
  const hints: GateHints = {};
  for (const line of body.split('\n').slice(0, 16)) {
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (key === 'repository' && REPO.test(value)) hints.repository = value;
    else if (key === 'run_id' && /^\d{1,16}$/.test(value) && Number(value) > 0) hints.runId = Number(value);
    else if (key === 'run_attempt' && /^\d{1,6}$/.test(value) && Number(value) > 0) hints.runAttempt = Number(value);
  }
  return hints;
}

/** The hook reads the first line (`allow`, or `deny REASON`) and prints the second. */
function text(r: GateReply): string {
  return r.decision === 'allow' ? 'allow\n' : `deny ${r.reason}\n${r.message}\n`;
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', connection: 'close' });
  res.end(body);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        req.removeAllListeners('data');
        reject(new Error('too large'));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const plainAddress = (a: string | undefined): string => (a ?? '').replace(/^::ffff:/, '');
