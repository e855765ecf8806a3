import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { buildUpstreamQuery, RCODE, readUpstreamAnswer, type Question, type UpstreamAnswer } from './dns-wire.js';

/**
 * The forwarder's side towards the operator's resolvers. Each question goes to the upstreams in
 * the order configured; each one in turn gets an even share of what is left of the time allowed
 * (so a dead first upstream cannot use up the time of the second, and one that refuses the
 * connection passes its time on at once). UDP, from a fresh socket (a random source port) with a
 * random ID; TCP when the guest asked over TCP or the UDP answer was truncated. Only an answer to
 * exactly the question sent, from the address asked, counts; SERVFAIL, REFUSED, NOTIMP and
 * FORMERR count as no answer, so the next upstream is asked.
 */
export interface Upstream {
  host: string;
  port: number;
}

export interface Exchanged {
  upstream: Upstream;
  /** The upstream's answer as it came (its ID, not the guest's). */
  message: Buffer;
  answer: UpstreamAnswer;
}

type Got = { message: Buffer; answer: UpstreamAnswer } | null;

const NO_ANSWER: ReadonlySet<number> = new Set([RCODE.SERVFAIL, RCODE.REFUSED, RCODE.NOTIMP, RCODE.FORMERR]);

export async function askUpstreams(
  upstreams: readonly Upstream[],
  q: Question,
  o: { timeoutMs: number; tcp: boolean; signal: AbortSignal },
): Promise<Exchanged | null> {
  const deadline = Date.now() + o.timeoutMs;
  for (let i = 0; i < upstreams.length; i++) {
    const left = deadline - Date.now();
    if (left <= 0 || o.signal.aborted) return null;
    const upstream = upstreams[i]!;
    const until = Date.now() + left / (upstreams.length - i);
    let got = o.tcp ? null : await exchangeUdp(upstream, q, until, o.signal);
    if (o.tcp || got?.answer.truncated) got = await exchangeTcp(upstream, q, until, o.signal);
    if (got && !got.answer.truncated && !NO_ANSWER.has(got.answer.rcode)) return { upstream, ...got };
  }
  return null;
}

function exchangeUdp(u: Upstream, q: Question, until: number, signal: AbortSignal): Promise<Got> {
  return new Promise((resolve) => {
    const id = randomInt(0, 0x10000);
    const sock = createSocket(isIPv6(u.host) ? 'udp6' : 'udp4');
    const finish = settle(resolve, until, signal, () => sock.close());
    if (!finish.live()) return;
    // A connected socket takes datagrams from u only, and hears ICMP "port unreachable" as an error.
    sock.on('error', () => finish(null));
    sock.on('message', (msg: Buffer) => {
      const answer = readUpstreamAnswer(msg, id, q);
      if (answer) finish({ message: msg, answer });
    });
    sock.connect(u.port, u.host, () => {
      if (finish.live()) sock.send(buildUpstreamQuery(q, id), (err) => err && finish(null));
    });
  });
}

function exchangeTcp(u: Upstream, q: Question, until: number, signal: AbortSignal): Promise<Got> {
  return new Promise((resolve) => {
    const id = randomInt(0, 0x10000);
    const query = buildUpstreamQuery(q, id);
    const sock = connect({ host: u.host, port: u.port });
    const finish = settle(resolve, until, signal, () => sock.destroy());
    if (!finish.live()) return;
    sock.on('error', () => finish(null));
    sock.on('close', () => finish(null));
    sock.on('connect', () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      sock.write(frame);
    });
    // One question, one answer: at most 2 + 65535 octets are kept, then the connection ends.
    let buf = Buffer.alloc(0);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      const message = Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      const answer = readUpstreamAnswer(message, id, q);
      finish(answer ? { message, answer } : null);
    });
  });
}

/** Resolves once, on an answer, the deadline, an abort or an error; cleans up each time. */
function settle(resolve: (g: Got) => void, until: number, signal: AbortSignal, cleanup: () => void) {
  let done = false;
  const finish = (g: Got) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort);
    try {
      cleanup();
    } catch {
      // already closed
    }
    resolve(g);
  };
  const onAbort = () => finish(null);
  const timer = setTimeout(onAbort, Math.max(0, until - Date.now()));
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) finish(null);
  return Object.assign(finish, { live: () => !done });
}
