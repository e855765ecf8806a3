import dnsPacket from 'dns-packet';
import { describe, expect, test } from 'vitest';
import { answerForGuest, buildReply, buildUpstreamQuery, parseQuery, RCODE, readUpstreamAnswer, type Question } from '../../src/net/dns-wire.js';

const query = (name: string, o: { id?: number; flags?: number } = {}) =>
  dnsPacket.encode({ type: 'query', id: o.id ?? 7, flags: o.flags ?? dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });

function question(name = 'GitHub.com'): Question {
  const p = parseQuery(query(name));
  if (p.kind !== 'query') throw new Error('not a query');
  return p.question;
}

/** An answer as a real server writes it: names compressed to the question (0xC00C). */
function compressedAnswer(q: Question, id: number, records: { type: number; ttl: number; rdata: number[] }[]): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(id, 0);
  head.writeUInt16BE(0x8180, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt16BE(records.length, 6);
  const qtail = Buffer.from([0, 1, 0, 1]);
  const rrs = records.map((r) => {
    const b = Buffer.alloc(12 + r.rdata.length);
    b.writeUInt16BE(0xc00c, 0);
    b.writeUInt16BE(r.type, 2);
    b.writeUInt16BE(1, 4);
    b.writeUInt32BE(r.ttl, 6);
    b.writeUInt16BE(r.rdata.length, 10);
    Buffer.from(r.rdata).copy(b, 12);
    return b;
  });
  return Buffer.concat([head, q.nameWire, qtail, ...rrs]);
}

describe('parseQuery', () => {
  test('reads one question: the name lower-cased for policy, as sent for the echo', () => {
    const p = parseQuery(query('GitHub.COM', { id: 513 }));
    expect(p).toMatchObject({ kind: 'query', question: { id: 513, rd: true, name: 'github.com', type: 1, qclass: 1 } });
    const echoed = dnsPacket.decode(buildReply((p as { question: Question }).question, RCODE.REFUSED));
    expect(echoed.questions?.[0]?.name).toBe('GitHub.COM');
    expect(echoed.id).toBe(513);
    expect(echoed.flags! & 0xf).toBe(RCODE.REFUSED);
  });

  test('an EDNS OPT record is accepted (and not passed upstream)', () => {
    const msg = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'a.example', class: 'IN' }], additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as never] });
    const p = parseQuery(msg);
    expect(p.kind).toBe('query');
    const up = dnsPacket.decode(buildUpstreamQuery((p as { question: Question }).question, 99));
    expect(up).toMatchObject({ id: 99, questions: [{ name: 'a.example', type: 'A' }], additionals: [] });
  });
});

describe('readUpstreamAnswer', () => {
  const q = question('GitHub.com');
  const a = (ttl: number, ...ip: number[]) => ({ type: 1, ttl, rdata: ip });
  const msg = compressedAnswer(q, 42, [{ type: 5, ttl: 100, rdata: [0xc0, 0x0c] }, a(300, 140, 82, 121, 4), a(30, 140, 82, 121, 5)]);

  test('walks compressed records: every A address, their smallest TTL, where each TTL is', () => {
    const r = readUpstreamAnswer(msg, 42, q);
    expect(r).toMatchObject({ rcode: 0, truncated: false, addresses: ['140.82.121.4', '140.82.121.5'], minTtl: 30 });
    expect(r!.ttlOffsets).toHaveLength(3);
  });

  test('only an answer to exactly our question and ID counts; letter case may differ', () => {
    expect(readUpstreamAnswer(msg, 43, q)).toBeNull();
    expect(readUpstreamAnswer(msg, 42, question('api.github.com'))).toBeNull();
    expect(readUpstreamAnswer(msg, 42, question('GITHUB.COM'))).not.toBeNull();
  });

  test('a TTL with the top bit set reads as 0 (RFC 2181)', () => {
    expect(readUpstreamAnswer(compressedAnswer(q, 1, [a(0x80000000, 1, 2, 3, 4)]), 1, q)?.minTtl).toBe(0);
  });

  test('answerForGuest: the guest\'s ID, TTLs capped, the upstream\'s buffer untouched', () => {
    const r = readUpstreamAnswer(msg, 42, q)!;
    const out = dnsPacket.decode(answerForGuest(msg, 7, r.ttlOffsets, 60));
    expect(out.id).toBe(7);
    expect(out.answers?.map((x) => (x as { ttl?: number }).ttl)).toEqual([60, 60, 30]);
    expect(msg.readUInt16BE(0)).toBe(42);
  });

  test('every truncation and every one-byte change of an answer is read without a throw', () => {
    for (let n = 0; n < msg.length; n++) expect(() => readUpstreamAnswer(msg.subarray(0, n), 42, q)).not.toThrow();
    for (let i = 0; i < msg.length; i++)
      for (const v of [0x00, 0x3f, 0x40, 0xc0, 0xff]) {
        const m = Buffer.from(msg);
        m[i] = v;
        expect(() => readUpstreamAnswer(m, 42, q)).not.toThrow();
      }
  });
});

test('random bytes: parseQuery and readUpstreamAnswer never throw', () => {
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const q = question();
  for (let i = 0; i < 5000; i++) {
    const b = Buffer.from(Array.from({ length: rand() * 2 }, rand));
    if (b.length > 4 && i % 2 === 0) b[2] = 0x01; // mostly well-formed headers, so the parsers go deeper
    if (b.length > 6 && i % 2 === 0) b.writeUInt16BE(1, 4);
    expect(() => parseQuery(b)).not.toThrow();
    expect(() => readUpstreamAnswer(b, b.length > 2 ? b.readUInt16BE(0) : 0, q)).not.toThrow();
  }
});
