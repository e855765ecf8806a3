import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { dnsDecision, type Egress } from './dns-policy.js';
import { listenBoth, serveTcp } from './dns-transport.js';
import { askUpstreams, type Upstream } from './dns-upstream.js';
import { answerForGuest, buildRejection, buildReply, CLASS_IN, parseQuery, QTYPE, RCODE, typeName, UDP_ANSWER_LIMIT, type Question } from './dns-wire.js';
import type { DnsQueryEntry, DnsVerdict } from './egress-log.js';

/**
 * A VM's DNS resolver: one small UDP + TCP server per VM on that VM's gateway address (the host
 * side of its /30), like the metadata endpoint (agent/metadata.ts), forwarding only to the
 * upstreams the operator names.
 *
 * Why in the agent and not Debian's dnsmasq (2.90, `--nftset`), which the issue proposed:
 * 1. the forwarder knows which VM — and so which job — asked, from the socket's addresses, for
 *    the job's egress log (dnsmasq would log by source address, to be joined back to jobs);
 * 2. per-pool policy (internet or an allowlist) needs no dnsmasq instance per pool and no
 *    juggling of port 53 between them;
 * 3. in allowlist mode the answer's addresses are in the nftables allow set before the answer
 *    is sent, so the guest's connect cannot race the set;
 * 4. nothing more to install, configure or supervise: it starts and stops with the VM.
 *
 * Everything a guest sends is hostile. Only datagrams and connections from the guest's own
 * address are answered (others are dropped, and logged at most once per 10 s per kind); a query
 * is read strictly (dns-wire.ts: one question, a plain name) and a malformed one is dropped or
 * answered FORMERR/NOTIMP, never a crash. Bounded: request size, queries per second, upstream
 * queries in flight, TCP connections and their idle time and unread answers.
 *
 * Answers:
 * - a name the pool's egress does not allow, class other than IN, ANY and zone transfers: REFUSED,
 *   without asking upstream. REFUSED rather than NXDOMAIN because it is the truth (the name may
 *   well exist; this resolver will not say), a client reports it as a refusal rather than "no such
 *   host", and nothing caches it as the name's non-existence;
 * - AAAA: NOERROR with no records, without asking upstream: guests get no IPv6 (the host drops it
 *   anyway), and an empty answer makes clients use IPv4 at once instead of trying IPv6 first;
 * - anything else goes to the upstreams (dns-upstream.ts); none answering in `timeoutMs` is
 *   SERVFAIL. In allowlist mode every A record of the answer is passed to `allowAddresses` (TTL:
 *   the answer's smallest, bounded to ttlMin..ttlMax) and only once that has resolved is the
 *   answer sent, its TTLs capped to that bound so the guest never caches an address longer than
 *   the set holds it. A records reached through a CNAME are allowed too: the guest will connect
 *   to them for the name it was allowed. Over UDP an answer longer than 512 octets is sent
 *   truncated (no records, TC set): the guest asks again over TCP.
 * Every question is passed to `onQuery` (decision allowed, denied or failed).
 */
export interface DnsLimits {
  /** Longest query accepted, UDP or TCP (one question with EDNS fits easily). */
  requestBytes: number;
  /** Per VM; beyond it queries are dropped unanswered (burst up to the same number). */
  queriesPerSecond: number;
  /** Upstream questions at once per VM; beyond it, SERVFAIL. */
  inFlight: number;
  tcpConnections: number;
  tcpIdleMs: number;
  /** Answers queued to a TCP client that does not read; beyond it the connection is closed. */
  tcpUnreadBytes: number;
  ttlMin: number;
  ttlMax: number;
}

export const DNS_LIMITS: DnsLimits = {
  requestBytes: 512,
  queriesPerSecond: 100,
  inFlight: 32,
  tcpConnections: 4,
  tcpIdleMs: 10_000,
  tcpUnreadBytes: 64 * 1024,
  ttlMin: 60,
  ttlMax: 3600,
};

export interface DnsForwarderOptions {
  /** The VM's gateway (host side of its /30), where the guest's resolv.conf points. */
  hostIp: string;
  guestIp: string;
  /** 53 in production; 0 picks a free port (the same for UDP and TCP), for tests. */
  port?: number;
  upstreams: readonly Upstream[];
  egress: Egress;
  logger: Logger;
  /** Called for every question; must not throw (a throw is logged and ignored). */
  onQuery(entry: DnsQueryEntry): void;
  /** Allowlist mode: put these IPv4 addresses in the VM's allow set for ttlSeconds. */
  allowAddresses(ips: string[], ttlSeconds: number): Promise<void>;
  /** For all upstreams together, and again for allowAddresses. Default 2000. */
  timeoutMs?: number;
  limits?: Partial<DnsLimits>;
}

export interface DnsForwarderStats {
  allowed: number;
  denied: number;
  failed: number;
  /** Unparseable or FORMERR/NOTIMP queries (not passed to onQuery). */
  malformed: number;
  oversize: number;
  rateLimited: number;
  notThisVm: number;
  /** Questions answered SERVFAIL because `inFlight` upstream questions were pending. */
  busy: number;
  tcpRefused: number;
}

export interface DnsForwarder {
  readonly port: number;
  readonly stats: Readonly<DnsForwarderStats>;
  close(): Promise<void>;
}

/** Never answered: ANY (RFC 8482), zone transfers, the obsolete mailbox types. */
const REFUSED_TYPES: ReadonlySet<number> = new Set([QTYPE.ANY, QTYPE.AXFR, QTYPE.IXFR, QTYPE.MAILA, QTYPE.MAILB]);

export async function openDnsForwarder(o: DnsForwarderOptions): Promise<DnsForwarder> {
  const limits = { ...DNS_LIMITS, ...o.limits };
  const timeoutMs = o.timeoutMs ?? 2000;
  const stats: DnsForwarderStats = { allowed: 0, denied: 0, failed: 0, malformed: 0, oversize: 0, rateLimited: 0, notThisVm: 0, busy: 0, tcpRefused: 0 };
  const warn = throttledWarn(o.logger);
  const abort = new AbortController();
  // One listener per upstream question in flight, and those are bounded.
  setMaxListeners(limits.inFlight + 1, abort.signal);
  const takeToken = tokenBucket(limits.queriesPerSecond);
  let inFlight = 0;

  const record = (q: Question, decision: DnsVerdict, answers: string[] = []) => {
    stats[decision]++;
    try {
      o.onQuery({ at: Date.now(), name: q.name, type: typeName(q.type), decision, answers });
    } catch (err) {
      warn('on-query', { err }, 'dns: onQuery threw; ignored');
    }
  };
  const fail = (q: Question) => (record(q, 'failed'), buildReply(q, RCODE.SERVFAIL));

  async function resolve(q: Question, tcp: boolean): Promise<Buffer> {
    if (q.qclass !== CLASS_IN || REFUSED_TYPES.has(q.type) || dnsDecision(q.name, o.egress) === 'deny') {
      record(q, 'denied');
      return buildReply(q, RCODE.REFUSED);
    }
    if (q.type === QTYPE.AAAA) return record(q, 'allowed'), buildReply(q, RCODE.NOERROR);
    if (inFlight >= limits.inFlight) {
      stats.busy++;
      warn('busy', { inFlight }, 'dns: too many upstream questions in flight; SERVFAIL');
      return fail(q);
    }
    inFlight++;
    try {
      const got = await askUpstreams(o.upstreams, q, { timeoutMs, tcp, signal: abort.signal });
      if (!got) {
        warn('upstream', { name: q.name, timeoutMs }, 'dns: no upstream answered; SERVFAIL');
        return fail(q);
      }
      if (!tcp && got.message.length > UDP_ANSWER_LIMIT) return record(q, 'allowed'), buildReply(q, RCODE.NOERROR, { truncated: true });
      const ips = [...new Set(got.answer.addresses)];
      let cap: number | null = null;
      if (o.egress.mode === 'allowlist' && ips.length > 0) {
        cap = Math.min(limits.ttlMax, Math.max(limits.ttlMin, got.answer.minTtl ?? limits.ttlMin));
        if (!(await settles(Promise.resolve(cap).then((ttl) => o.allowAddresses(ips, ttl)), timeoutMs))) {
          warn('allow', { name: q.name }, 'dns: allowAddresses failed or took too long; SERVFAIL');
          return fail(q);
        }
      }
      record(q, 'allowed', ips);
      return answerForGuest(got.message, q.id, got.answer.ttlOffsets, cap);
    } finally {
      inFlight--;
    }
  }

  /** One message from the guest, either transport; null is "say nothing". */
  async function handle(msg: Buffer, tcp: boolean): Promise<Buffer | null> {
    if (msg.length > limits.requestBytes) {
      stats.oversize++;
      warn('oversize', { bytes: msg.length }, 'dns: query too large; dropped');
      return null;
    }
    if (!takeToken()) {
      stats.rateLimited++;
      warn('rate', { perSecond: limits.queriesPerSecond }, 'dns: query rate limit reached; dropped');
      return null;
    }
    const p = parseQuery(msg);
    if (p.kind === 'query') return resolve(p.question, tcp);
    stats.malformed++;
    warn('malformed', { bytes: msg.length }, 'dns: malformed query');
    return p.kind === 'reject' ? buildRejection(p.id, p.rd, p.rcode) : null;
  }

  const { udp, tcp, port } = await listenBoth(o.hostIp, o.port ?? 53);
  let closed: Promise<void> | null = null;
  udp.on('error', (err) => warn('udp', { err }, 'dns: udp socket error'));
  udp.on('message', (msg, rinfo) => {
    if (rinfo.address !== o.guestIp) {
      stats.notThisVm++;
      warn('not-this-vm', { from: rinfo.address }, 'dns: datagram from an address that is not this VM; dropped');
      return;
    }
    handle(msg, false).then(
      (out) => {
        if (out && !closed) udp.send(out, rinfo.port, rinfo.address, () => undefined);
      },
      (err: unknown) => warn('bug', { err }, 'dns: query handling failed'),
    );
  });

  const sockets = new Set<Socket>();
  tcp.on('connection', (sock: Socket) => {
    const from = (sock.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (from !== o.guestIp || sockets.size >= limits.tcpConnections) {
      if (from !== o.guestIp) stats.notThisVm++;
      else stats.tcpRefused++;
      warn(from !== o.guestIp ? 'not-this-vm' : 'tcp-limit', { from, open: sockets.size }, 'dns: tcp connection refused');
      sock.destroy();
      return;
    }
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    const onTcp = (m: Buffer) => handle(m, true).catch((err: unknown) => (warn('bug', { err }, 'dns: query handling failed'), null));
    serveTcp(sock, limits, onTcp, () => {
      stats.oversize++;
      warn('oversize', {}, 'dns: tcp message too large; connection closed');
    });
  });

  return {
    port,
    stats,
    close() {
      closed ??= (async () => {
        abort.abort();
        for (const s of sockets) s.destroy();
        await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
      })();
      return closed;
    },
  };
}

/** True if p resolved within ms; false if it rejected or took longer. */
function settles(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    p.then(
      () => (clearTimeout(timer), resolve(true)),
      () => (clearTimeout(timer), resolve(false)),
    );
  });
}

function tokenBucket(perSecond: number): () => boolean {
  let tokens = perSecond;
  let last = Date.now();
  return () => {
    const now = Date.now();
    tokens = Math.min(perSecond, tokens + ((now - last) * perSecond) / 1000);
    last = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}

/** A guest can make every warning happen at will: each kind is logged at most once per 10 s. */
function throttledWarn(logger: Logger, everyMs = 10_000) {
  const seen = new Map<string, { at: number; suppressed: number }>();
  return (kind: string, fields: Record<string, unknown>, msg: string) => {
    const now = Date.now();
    const s = seen.get(kind);
    if (s && now - s.at < everyMs) {
      s.suppressed++;
      return;
    }
    logger.warn({ ...fields, kind, suppressed: s?.suppressed ?? 0 }, msg);
    seen.set(kind, { at: now, suppressed: 0 });
  };
}
