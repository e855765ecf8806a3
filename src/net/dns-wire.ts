/**
 * The few pieces of the DNS wire format (RFC 1035) the forwarder needs, and nothing else: read a
 * guest's query strictly (one question, a plain name of letters, digits, `-` and `_`, no
 * compression, no records but at most one EDNS OPT), build the short answers the forwarder makes
 * itself, build the query it sends upstream, and check and read an upstream's answer (its A
 * records, their TTLs). Every read is bounds-checked; bad input yields `drop`, a rejection or
 * `null`, never an exception. Pure (Buffer only).
 *
 * Our own ~200 lines rather than a general codec such as `dns-packet`: the forwarder passes an
 * upstream's answer on byte for byte (only the ID and, in allowlist mode, TTLs change), so it
 * needs to walk records, not decode them into objects; and the guest-facing parser is stricter
 * than a general one (a general decoder accepts compressed or multiple questions, odd bytes in
 * labels). The tests speak to it with `dns-packet`, so the two are checked against each other.
 */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export type Rcode = (typeof RCODE)[keyof typeof RCODE];

export const QTYPE = { A: 1, AAAA: 28, IXFR: 251, AXFR: 252, MAILB: 253, MAILA: 254, ANY: 255 } as const;
export const CLASS_IN = 1;
/** Without EDNS a UDP answer may be at most this long (RFC 1035 4.2.1). */
export const UDP_ANSWER_LIMIT = 512;
/** A name's wire form: length octets, labels and the final zero (RFC 1035 3.1). */
const NAME_WIRE_LIMIT = 255;
const HEADER = 12;

export interface Question {
  id: number;
  rd: boolean;
  /** Lower case, dotted, no trailing dot; '' is the root. */
  name: string;
  /** The name's labels as the guest sent them, letter case kept, for the echo in the answer. */
  nameWire: Buffer;
  type: number;
  qclass: number;
}

export type QueryParse =
  | { kind: 'query'; question: Question }
  /** Readable header, unusable question: answer with only the header and this rcode. */
  | { kind: 'reject'; id: number; rd: boolean; rcode: typeof RCODE.FORMERR | typeof RCODE.NOTIMP }
  /** Not a query at all (too short, or a response): say nothing. */
  | { kind: 'drop' };

export interface UpstreamAnswer {
  rcode: number;
  truncated: boolean;
  /** Dotted IPv4 of every A record (class IN) in the answer section, in order. */
  addresses: string[];
  /** The smallest TTL of those A records, or null when there are none. */
  minTtl: number | null;
  /** Where each answer record's TTL is, to cap them. */
  ttlOffsets: number[];
}

export function parseQuery(msg: Buffer): QueryParse {
  if (msg.length < HEADER) return { kind: 'drop' };
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  // A response sent to us is never answered: two forwarders must not be able to loop.
  if (flags & 0x8000) return { kind: 'drop' };
  const rd = (flags & 0x0100) !== 0;
  if (((flags >> 11) & 0xf) !== 0) return { kind: 'reject', id, rd, rcode: RCODE.NOTIMP };
  const formerr = { kind: 'reject', id, rd, rcode: RCODE.FORMERR } as const;
  const [qd, an, ns, ar] = [msg.readUInt16BE(4), msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)];
  if (qd !== 1 || an !== 0 || ns !== 0 || ar > 1) return formerr;
  const name = readPlainName(msg, HEADER);
  if (!name || name.end + 4 > msg.length) return formerr;
  const question: Question = {
    id,
    rd,
    name: name.text,
    nameWire: Buffer.from(msg.subarray(HEADER, name.end)),
    type: msg.readUInt16BE(name.end),
    qclass: msg.readUInt16BE(name.end + 2),
  };
  return { kind: 'query', question };
}

/** An answer made here: the header, the guest's question echoed, no records. */
export function buildReply(q: Question, rcode: Rcode, opts: { truncated?: boolean } = {}): Buffer {
  const out = Buffer.alloc(HEADER + q.nameWire.length + 4);
  out.writeUInt16BE(q.id, 0);
  out.writeUInt16BE(0x8000 | (q.rd ? 0x0100 : 0) | (opts.truncated ? 0x0200 : 0) | 0x0080 | rcode, 2);
  out.writeUInt16BE(1, 4);
  q.nameWire.copy(out, HEADER);
  out.writeUInt16BE(q.type, HEADER + q.nameWire.length);
  out.writeUInt16BE(q.qclass, HEADER + q.nameWire.length + 2);
  return out;
}

/** An answer to a query whose question could not be used: header only. */
export function buildRejection(id: number, rd: boolean, rcode: Rcode): Buffer {
  const out = Buffer.alloc(HEADER);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x8000 | (rd ? 0x0100 : 0) | 0x0080 | rcode, 2);
  return out;
}

/**
 * The query sent upstream: our own ID, recursion desired, the guest's question and nothing of
 * the rest of its packet (no EDNS options, cookies or client subnet reach the upstream).
 */
export function buildUpstreamQuery(q: Question, id: number): Buffer {
  const out = Buffer.alloc(HEADER + q.nameWire.length + 4);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(0x0100, 2);
  out.writeUInt16BE(1, 4);
  q.nameWire.copy(out, HEADER);
  out.writeUInt16BE(q.type, HEADER + q.nameWire.length);
  out.writeUInt16BE(q.qclass, HEADER + q.nameWire.length + 2);
  return out;
}

/** Null unless `msg` is a well-formed answer to exactly the question we sent with `id`. */
export function readUpstreamAnswer(msg: Buffer, id: number, q: Question): UpstreamAnswer | null {
  if (msg.length < HEADER + q.nameWire.length + 4) return null;
  const flags = msg.readUInt16BE(2);
  if (msg.readUInt16BE(0) !== id || !(flags & 0x8000) || ((flags >> 11) & 0xf) !== 0) return null;
  if (msg.readUInt16BE(4) !== 1) return null;
  const qEnd = HEADER + q.nameWire.length;
  if (!sameName(msg.subarray(HEADER, qEnd), q.nameWire)) return null;
  if (msg.readUInt16BE(qEnd) !== q.type || msg.readUInt16BE(qEnd + 2) !== q.qclass) return null;
  const answer: UpstreamAnswer = { rcode: flags & 0xf, truncated: (flags & 0x0200) !== 0, addresses: [], minTtl: null, ttlOffsets: [] };
  if (answer.truncated) return answer;
  let pos = qEnd + 4;
  for (let i = msg.readUInt16BE(6); i > 0; i--) {
    pos = skipName(msg, pos);
    if (pos < 0 || pos + 10 > msg.length) return null;
    const [type, klass, rdlength] = [msg.readUInt16BE(pos), msg.readUInt16BE(pos + 2), msg.readUInt16BE(pos + 8)];
    // RFC 2181 8: a TTL with the top bit set is read as zero.
    const ttl = msg.readUInt32BE(pos + 4) > 0x7fffffff ? 0 : msg.readUInt32BE(pos + 4);
    answer.ttlOffsets.push(pos + 4);
    pos += 10;
    if (pos + rdlength > msg.length) return null;
    if (type === QTYPE.A && klass === CLASS_IN && rdlength === 4) {
      answer.addresses.push(`${msg[pos]}.${msg[pos + 1]}.${msg[pos + 2]}.${msg[pos + 3]}`);
      answer.minTtl = Math.min(answer.minTtl ?? ttl, ttl);
    }
    pos += rdlength;
  }
  return answer;
}

/** A copy of an upstream answer for the guest: its query's ID, and no TTL above `ttlCap`. */
export function answerForGuest(msg: Buffer, guestId: number, ttlOffsets: readonly number[], ttlCap: number | null): Buffer {
  const out = Buffer.from(msg);
  out.writeUInt16BE(guestId, 0);
  if (ttlCap !== null) for (const at of ttlOffsets) if (out.readUInt32BE(at) > ttlCap) out.writeUInt32BE(ttlCap, at);
  return out;
}

export function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `TYPE${type}`;
}

const TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
  64: 'SVCB', 65: 'HTTPS', 251: 'IXFR', 252: 'AXFR', 255: 'ANY', 257: 'CAA',
};

/** Letters, digits, `-`, `_`: any other octet in a label (a dot, a NUL) could make the text
 * the policy sees differ from the name the upstream resolves. */
function labelOctet(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f;
}

function readPlainName(msg: Buffer, start: number): { text: string; end: number } | null {
  const labels: string[] = [];
  let pos = start;
  for (;;) {
    if (pos >= msg.length) return null;
    const len = msg[pos]!;
    if (len === 0) break;
    // 0xC0 is a compression pointer, 0x40 and 0x80 are reserved: none belongs in a question.
    if (len > 63 || pos + 1 + len > msg.length) return null;
    for (let i = pos + 1; i <= pos + len; i++) if (!labelOctet(msg[i]!)) return null;
    labels.push(msg.toString('latin1', pos + 1, pos + 1 + len).toLowerCase());
    pos += 1 + len;
    if (pos + 1 - start > NAME_WIRE_LIMIT) return null;
  }
  return { text: labels.join('.'), end: pos + 1 };
}

/** The offset after a (possibly compressed) name, or -1. Pointers are not followed. */
function skipName(msg: Buffer, start: number): number {
  let pos = start;
  while (pos < msg.length) {
    const len = msg[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) return pos + 2 <= msg.length ? pos + 2 : -1;
    if (len > 63) return -1;
    pos += 1 + len;
  }
  return -1;
}

/** Equal but for the letter case of ASCII letters (RFC 4343); length octets must match exactly. */
function sameName(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  const fold = (c: number) => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);
  for (let i = 0; i < a.length; i++) if (fold(a[i]!) !== fold(b[i]!)) return false;
  return true;
}
