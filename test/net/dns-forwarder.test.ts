import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import dnsPacket, { type DecodedPacket, type RecordClass, type RecordType } from 'dns-packet';
import { pino } from 'pino';
import { afterEach, describe, expect, test } from 'vitest';
import { openDnsForwarder, type DnsForwarder, type DnsForwarderOptions } from '../../src/net/dns-forwarder.js';
import type { Egress } from '../../src/net/dns-policy.js';
import { EgressLog, type DnsQueryEntry } from '../../src/net/egress-log.js';
import { startFakeDns, type FakeDns, type FakeDnsOptions } from '../helpers/fake-dns.js';

/**
 * The forwarder on 127.0.0.1 for a "VM" whose guest is 127.0.0.2 (clients bind that address;
 * one bound to 127.0.0.3 is another VM), a fake upstream on 127.0.0.10. Loopback only.
 */
const HOST = '127.0.0.1';
const GUEST = '127.0.0.2';
const OTHER_VM = '127.0.0.3';
const UPSTREAM = '127.0.0.10';

const RECORDS: Record<string, string[]> = {
  'github.com': ['140.82.121.4'],
  'api.github.com': ['140.82.121.6', '140.82.121.5'],
  'pipelines.actions.githubusercontent.com': ['13.107.42.16'],
  'edge.cdn.example': ['198.51.100.7'],
  // 40 A records: about 1,200 octets, more than a UDP answer may carry.
  'big.example.com': Array.from({ length: 40 }, (_, i) => `198.51.100.${i + 1}`),
};
const CNAMES = { 'objects.githubusercontent.com': 'edge.cdn.example' };
const ALLOWLIST: Egress = { mode: 'allowlist', allow: ['github.com', '*.actions.githubusercontent.com', 'objects.githubusercontent.com', 'big.example.com'] };

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function upstream(o: Partial<FakeDnsOptions> = {}): Promise<FakeDns> {
  const f = await startFakeDns({ host: UPSTREAM, records: RECORDS, cnames: CNAMES, ...o });
  cleanups.push(() => f.close());
  return f;
}

interface Harness {
  fwd: DnsForwarder;
  port: number;
  entries: DnsQueryEntry[];
  allowed: { ips: string[]; ttl: number }[];
  warnings: { kind?: string; msg: string }[];
}

async function forwarder(up: FakeDns | { port: number }[], o: Partial<DnsForwarderOptions> = {}): Promise<Harness> {
  const entries: DnsQueryEntry[] = [];
  const allowed: Harness['allowed'] = [];
  const warnings: Harness['warnings'] = [];
  const fwd = await openDnsForwarder({
    hostIp: HOST,
    guestIp: GUEST,
    port: 0,
    upstreams: Array.isArray(up) ? up.map((u) => ({ host: UPSTREAM, ...u })) : [{ host: UPSTREAM, port: up.port }],
    egress: { mode: 'internet' },
    logger: pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line)) }),
    timeoutMs: 1000,
    onQuery: (e) => void entries.push(e),
    allowAddresses: async (ips, ttl) => void allowed.push({ ips, ttl }),
    ...o,
  });
  cleanups.push(() => fwd.close());
  return { fwd, port: fwd.port, entries, allowed, warnings };
}

const query = (name: string, type: RecordType = 'A', o: { id?: number; klass?: RecordClass; flags?: number } = {}) =>
  dnsPacket.encode({ type: 'query', id: o.id ?? 4242, flags: o.flags ?? dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: o.klass ?? 'IN' }] });
const rcode = (p: DecodedPacket) => p.flags! & 0xf;
const addresses = (p: DecodedPacket) => (p.answers ?? []).filter((a) => a.type === 'A').map((a) => (a as { data: string }).data);
const ttls = (p: DecodedPacket) => (p.answers ?? []).map((a) => (a as { ttl?: number }).ttl);

/** Every answer that comes back within waitMs to datagrams sent from `from`. */
async function udpSend(port: number, msgs: Buffer[], o: { from?: string; waitMs?: number; want?: number } = {}): Promise<Buffer[]> {
  const sock = createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, o.from ?? GUEST, r));
  const got: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, o.waitMs ?? 1500);
    sock.on('message', (m) => {
      got.push(m);
      if (got.length >= (o.want ?? msgs.length)) (clearTimeout(timer), resolve());
    });
  });
  for (const m of msgs) sock.send(m, port, HOST);
  await done;
  sock.close();
  return got;
}

async function udpAsk(port: number, msg: Buffer, o: { from?: string; waitMs?: number } = {}): Promise<DecodedPacket | null> {
  const [reply] = await udpSend(port, [msg], o);
  return reply ? dnsPacket.decode(reply) : null;
}

/** Opens a connection from `from`, writes `data`, collects framed answers until `want` or close. */
async function tcpSend(port: number, data: Buffer, o: { from?: string; want?: number; waitMs?: number } = {}): Promise<{ answers: DecodedPacket[]; closed: boolean }> {
  const sock = connect({ host: HOST, port, localAddress: o.from ?? GUEST });
  const answers: DecodedPacket[] = [];
  let buf = Buffer.alloc(0);
  let closed = false;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, o.waitMs ?? 1500);
    sock.on('error', () => undefined);
    sock.on('close', () => ((closed = true), clearTimeout(timer), resolve()));
    sock.on('connect', () => sock.write(data));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        answers.push(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (answers.length >= (o.want ?? 1)) (clearTimeout(timer), resolve());
    });
  });
  sock.destroy();
  return { answers, closed };
}
const frame = (...msgs: Buffer[]) => Buffer.concat(msgs.map((m) => Buffer.concat([Buffer.from([m.length >> 8, m.length & 0xff]), m])));

describe('internet mode', () => {
  test('resolves A over UDP: the upstream asked once, the answer passed on, nothing put in an allow set', async () => {
    const up = await upstream();
    const h = await forwarder(up);
    const reply = await udpAsk(h.port, query('GitHub.com'));
    expect(reply).toMatchObject({ id: 4242, questions: [{ name: 'GitHub.com', type: 'A' }] });
    expect(rcode(reply!)).toBe(0);
    expect(addresses(reply!)).toEqual(['140.82.121.4']);
    expect(ttls(reply!)).toEqual([300]);
    expect(up.queries).toEqual([{ name: 'GitHub.com', type: 'A', tcp: false }]);
    expect(h.allowed).toEqual([]);
    expect(h.entries).toEqual([{ at: expect.any(Number), name: 'github.com', type: 'A', decision: 'allowed', answers: ['140.82.121.4'] }]);
  });

  test('a real stub resolver (c-ares, node:dns) resolves through it, and over TCP when an answer is too big for UDP', async () => {
    const up = await upstream();
    const h = await forwarder(up);
    const r = new Resolver({ timeout: 1000, tries: 1 });
    r.setLocalAddress(GUEST);
    r.setServers([`${HOST}:${h.port}`]);
    expect((await r.resolve4('api.github.com')).sort()).toEqual(['140.82.121.5', '140.82.121.6']);
    expect(await r.resolve4('big.example.com')).toHaveLength(40);
    await expect(r.resolve6('github.com')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(r.resolve4('nothing.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    // The guest's UDP question: upstream over UDP (truncated), again over TCP (too big for the
    // guest's UDP, so it is told TC); the guest's TCP question: upstream over TCP.
    expect(up.queries.filter((q) => q.name === 'big.example.com').map((q) => q.tcp)).toEqual([false, true, true]);
  });

  test.each<[string, Egress]>([
    ['internet', { mode: 'internet' }],
    ['allowlist', ALLOWLIST],
  ])('AAAA (%s): NOERROR with no records, upstream not asked — guests get no IPv6', async (_n, egress) => {
    const up = await upstream();
    const h = await forwarder(up, { egress });
    const reply = await udpAsk(h.port, query('github.com', 'AAAA'));
    expect(rcode(reply!)).toBe(0);
    expect(reply!.answers).toEqual([]);
    expect(up.queries).toEqual([]);
    expect(h.entries).toMatchObject([{ name: 'github.com', type: 'AAAA', decision: 'allowed', answers: [] }]);
  });

  test('ANY, zone transfers and class CHAOS (version.bind) are REFUSED without asking upstream', async () => {
    const up = await upstream();
    const h = await forwarder(up);
    for (const msg of [query('github.com', 'ANY' as RecordType), query('github.com', 'AXFR'), query('version.bind', 'TXT', { klass: 'CH' })])
      expect(rcode((await udpAsk(h.port, msg))!)).toBe(5);
    expect(up.queries).toEqual([]);
    expect(h.entries.map((e) => e.decision)).toEqual(['denied', 'denied', 'denied']);
  });
});

describe('allowlist mode', () => {
  test('a listed name resolves, and its addresses are in the allow set before the answer reaches the guest', async () => {
    const up = await upstream();
    const events: string[] = [];
    const h = await forwarder(up, {
      egress: ALLOWLIST,
      allowAddresses: async (ips, ttl) => {
        events.push(`allow ${ips.join(',')} ttl ${ttl}`);
        await sleep(150);
        events.push('allowed');
      },
    });
    const reply = await udpAsk(h.port, query('github.com'));
    events.push('answer');
    expect(addresses(reply!)).toEqual(['140.82.121.4']);
    expect(events).toEqual(['allow 140.82.121.4 ttl 300', 'allowed', 'answer']);
  });

  test('a wildcard sub-domain resolves; an A record behind a CNAME goes to the allow set too', async () => {
    const up = await upstream();
    const h = await forwarder(up, { egress: ALLOWLIST });
    expect(addresses((await udpAsk(h.port, query('pipelines.actions.githubusercontent.com')))!)).toEqual(['13.107.42.16']);
    const viaCname = (await udpAsk(h.port, query('objects.githubusercontent.com')))!;
    expect(viaCname.answers?.map((a) => a.type)).toEqual(['CNAME', 'A']);
    expect(h.allowed).toEqual([
      { ips: ['13.107.42.16'], ttl: 300 },
      { ips: ['198.51.100.7'], ttl: 300 },
    ]);
  });

  test.each(['example.com', 'api.github.com', 'actions.githubusercontent.com' /* a wildcard\'s apex */])(
    'an unlisted name (%s) is REFUSED without asking upstream',
    async (name) => {
      const up = await upstream();
      const h = await forwarder(up, { egress: ALLOWLIST });
      const reply = (await udpAsk(h.port, query(name)))!;
      expect(rcode(reply)).toBe(5);
      expect(reply.questions?.[0]?.name).toBe(name);
      expect(reply.answers).toEqual([]);
      expect(up.queries).toHaveLength(0);
      expect(h.allowed).toEqual([]);
      expect(h.entries).toMatchObject([{ name, decision: 'denied', answers: [] }]);
    },
  );

  test.each([
    [86_400, 3600, 3600],
    [5, 60, 5],
  ])('upstream TTL %i: in the allow set for %i s, the guest told %i s', async (ttl, setTtl, guestTtl) => {
    const up = await upstream({ ttl });
    const h = await forwarder(up, { egress: ALLOWLIST });
    const reply = (await udpAsk(h.port, query('github.com')))!;
    expect(h.allowed).toEqual([{ ips: ['140.82.121.4'], ttl: setTtl }]);
    expect(ttls(reply)).toEqual([guestTtl]);
  });

  test('allowAddresses failing or hanging: SERVFAIL, recorded as failed, no address given', async () => {
    const up = await upstream();
    for (const allowAddresses of [() => Promise.reject(new Error('nft says no')), () => new Promise<void>(() => undefined)]) {
      const h = await forwarder(up, { egress: ALLOWLIST, timeoutMs: 300, allowAddresses });
      const reply = (await udpAsk(h.port, query('github.com')))!;
      expect(rcode(reply)).toBe(2);
      expect(reply.answers).toEqual([]);
      expect(h.entries).toMatchObject([{ name: 'github.com', decision: 'failed' }]);
    }
  });

  test('TCP: a query over TCP goes upstream over TCP; a too-big UDP answer is sent truncated and asked again over TCP', async () => {
    const up = await upstream();
    const h = await forwarder(up, { egress: ALLOWLIST });
    const tcp = await tcpSend(h.port, frame(query('github.com')));
    expect(addresses(tcp.answers[0]!)).toEqual(['140.82.121.4']);
    expect(up.queries).toEqual([{ name: 'github.com', type: 'A', tcp: true }]);

    const udp = (await udpAsk(h.port, query('big.example.com')))!;
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    expect(h.allowed).toHaveLength(1); // nothing allowed for an answer the guest did not get
    const big = await tcpSend(h.port, frame(query('big.example.com')));
    expect(addresses(big.answers[0]!)).toHaveLength(40);
    expect(h.allowed[1]?.ips).toHaveLength(40);
  });
});

describe('hostile input is bounded and does not crash it', () => {
  test('another VM (127.0.0.3) gets nothing over UDP or TCP, and is logged once, not per packet', async () => {
    const up = await upstream();
    const h = await forwarder(up);
    expect(await udpSend(h.port, Array.from({ length: 30 }, () => query('github.com')), { from: OTHER_VM, waitMs: 300 })).toEqual([]);
    expect(await tcpSend(h.port, frame(query('github.com')), { from: OTHER_VM })).toEqual({ answers: [], closed: true });
    expect(up.queries).toEqual([]);
    expect(h.fwd.stats.notThisVm).toBe(31);
    expect(h.warnings.filter((w) => w.kind === 'not-this-vm')).toHaveLength(1);
    expect(addresses((await udpAsk(h.port, query('github.com')))!)).toEqual(['140.82.121.4']);
  });

  const header = (flags: number, qd: number, an = 0) => Buffer.from([0x12, 0x34, flags >> 8, flags & 0xff, 0, qd, 0, an, 0, 0, 0, 0]);
  const tail = Buffer.from([0, 1, 0, 1]);
  const twoQuestions = dnsPacket.encode({ type: 'query', id: 1, questions: [{ type: 'A', name: 'a.example' }, { type: 'A', name: 'b.example' }] });
  test.each<[string, Buffer, 'none' | 'formerr' | 'notimp']>([
    ['an empty datagram', Buffer.alloc(0), 'none'],
    ['five bytes', Buffer.from('hello'), 'none'],
    ['a response, not a query', dnsPacket.encode({ type: 'response', id: 1, questions: [{ type: 'A', name: 'github.com' }] }), 'none'],
    ['more than 512 octets', Buffer.concat([query('github.com'), Buffer.alloc(600)]), 'none'],
    ['no question', header(0x0100, 0), 'formerr'],
    ['two questions', twoQuestions, 'formerr'],
    ['an answer record in a query', Buffer.concat([header(0x0100, 1, 1), Buffer.from([1, 0x61, 0]), tail]), 'formerr'],
    ['a compression pointer as the name', Buffer.concat([header(0x0100, 1), Buffer.from([0xc0, 0x0c]), tail]), 'formerr'],
    ['a dot inside a label', Buffer.concat([header(0x0100, 1), Buffer.from([3, 0x61, 0x2e, 0x62, 3, 0x63, 0x6f, 0x6d, 0]), tail]), 'formerr'],
    ['a NUL inside a label', Buffer.concat([header(0x0100, 1), Buffer.from([2, 0x61, 0x00, 0]), tail]), 'formerr'],
    ['a 64-octet label', Buffer.concat([header(0x0100, 1), Buffer.from([64, ...Buffer.alloc(64, 0x61), 0]), tail]), 'formerr'],
    ['a name over 255 octets', Buffer.concat([header(0x0100, 1), ...Array.from({ length: 5 }, () => Buffer.from([63, ...Buffer.alloc(63, 0x61)])), Buffer.from([0]), tail]), 'formerr'],
    ['a name running past the end', Buffer.concat([header(0x0100, 1), Buffer.from([9, 0x61, 0x62])]), 'formerr'],
    ['type and class cut off', Buffer.concat([header(0x0100, 1), Buffer.from([1, 0x61, 0, 0])]), 'formerr'],
    ['opcode STATUS', query('github.com', 'A', { flags: 2 << 11 }), 'notimp'],
  ])('malformed: %s', async (_n, msg, want) => {
    const up = await upstream();
    const h = await forwarder(up);
    const reply = await udpAsk(h.port, msg, { waitMs: 300 });
    if (want === 'none') expect(reply).toBeNull();
    else expect(reply && { rcode: rcode(reply), questions: reply.questions }).toEqual({ rcode: want === 'formerr' ? 1 : 4, questions: [] });
    expect(up.queries).toEqual([]);
    expect(h.entries).toEqual([]);
    expect(addresses((await udpAsk(h.port, query('github.com')))!)).toEqual(['140.82.121.4']);
  });

  test('random junk, 2,000 datagrams: no crash, no question reaches upstream, still answering', async () => {
    const up = await upstream();
    const h = await forwarder(up, { limits: { queriesPerSecond: 100_000 } });
    let seed = 99;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    const junk = Array.from({ length: 2000 }, () => Buffer.from(Array.from({ length: 12 + rand() * 2 }, rand)));
    for (let i = 0; i < junk.length; i += 100) await udpSend(h.port, junk.slice(i, i + 100), { waitMs: 30 });
    expect(up.queries.filter((q) => q.name !== 'github.com')).toHaveLength(0);
    expect(h.fwd.stats.malformed + h.fwd.stats.oversize).toBeGreaterThan(1900);
    expect(addresses((await udpAsk(h.port, query('github.com')))!)).toEqual(['140.82.121.4']);
  });

  test('a flood beyond 100 queries/s is dropped unanswered, logged once; a second later it answers again', async () => {
    const up = await upstream();
    const h = await forwarder(up);
    const flood = Array.from({ length: 1000 }, (_, i) => query('github.com', 'AAAA', { id: i }));
    let answered = 0;
    for (let i = 0; i < flood.length; i += 50) answered += (await udpSend(h.port, flood.slice(i, i + 50), { waitMs: 5 })).length;
    await sleep(100);
    expect(answered).toBeLessThan(200);
    expect(h.fwd.stats.rateLimited).toBeGreaterThan(700);
    expect(h.entries.length).toBeLessThan(200);
    expect(h.warnings.filter((w) => w.kind === 'rate')).toHaveLength(1);
    await sleep(1100);
    expect(rcode((await udpAsk(h.port, query('github.com', 'AAAA')))!)).toBe(0);
  });

  test('at most 32 questions wait on upstream: the rest are SERVFAIL at once', async () => {
    const up = await upstream({ silent: true });
    const h = await forwarder(up, { limits: { queriesPerSecond: 10_000 }, timeoutMs: 1000 });
    const t0 = Date.now();
    const early = await udpSend(h.port, Array.from({ length: 100 }, (_, i) => query(`n${i}.example`, 'A', { id: i })), { want: 68, waitMs: 900 });
    expect(Date.now() - t0).toBeLessThan(900);
    expect(early.map((m) => rcode(dnsPacket.decode(m)))).toEqual(Array(68).fill(2));
    expect(h.fwd.stats.busy).toBe(68);
    expect(up.queries).toHaveLength(32);
  });

  test('a huge TCP message is refused on its length alone; the connection closes, the forwarder goes on', async () => {
    const up = await upstream();
    const h = await forwarder(up);
    const huge = Buffer.concat([Buffer.from([0xff, 0xff]), Buffer.alloc(65_535, 0x61)]);
    expect(await tcpSend(h.port, huge)).toEqual({ answers: [], closed: true });
    expect(await tcpSend(h.port, Buffer.from([0x02, 0x58]))).toEqual({ answers: [], closed: true }); // declares 600
    expect(h.fwd.stats.oversize).toBe(2);
    const ok = await tcpSend(h.port, frame(query('github.com', 'A', { id: 1 }), query('api.github.com', 'A', { id: 2 })), { want: 2 });
    expect(ok.answers.map((a) => a.id).sort()).toEqual([1, 2]);
  });

  test('at most 4 TCP connections from the guest; idle ones are closed', async () => {
    const up = await upstream();
    const h = await forwarder(up, { limits: { tcpIdleMs: 300 } });
    const open = Array.from({ length: 4 }, () => connect({ host: HOST, port: h.port, localAddress: GUEST }));
    await Promise.all(open.map((s) => new Promise((r) => s.once('connect', r))));
    await sleep(50);
    expect(await tcpSend(h.port, frame(query('github.com')), { waitMs: 500 })).toEqual({ answers: [], closed: true });
    expect(h.fwd.stats.tcpRefused).toBe(1);
    const closedAt = await Promise.all(open.map((s) => new Promise<number>((r) => s.once('close', () => r(Date.now())))));
    expect(closedAt).toHaveLength(4);
    expect((await tcpSend(h.port, frame(query('github.com')))).answers).toHaveLength(1);
  });
});

describe('upstreams', () => {
  test('upstream down: SERVFAIL within the timeout, recorded as failed', async () => {
    const up = await upstream({ silent: true });
    const h = await forwarder(up, { timeoutMs: 400 });
    const t0 = Date.now();
    const reply = (await udpAsk(h.port, query('github.com')))!;
    const took = Date.now() - t0;
    expect(rcode(reply)).toBe(2);
    expect(took).toBeGreaterThanOrEqual(380);
    expect(took).toBeLessThan(700);
    expect(h.entries).toMatchObject([{ name: 'github.com', decision: 'failed', answers: [] }]);
  });

  test('the first upstream refuses (nothing listening): the second answers at once', async () => {
    const closed = createSocket('udp4');
    await new Promise<void>((r) => closed.bind(0, UPSTREAM, r));
    const deadPort = closed.address().port;
    await new Promise<void>((r) => closed.close(() => r()));
    const up = await upstream();
    const h = await forwarder([{ port: deadPort }, { port: up.port }], { timeoutMs: 2000 });
    const t0 = Date.now();
    expect(addresses((await udpAsk(h.port, query('github.com')))!)).toEqual(['140.82.121.4']);
    expect(Date.now() - t0).toBeLessThan(500);
  });

  test('the first upstream is silent: the second is asked after its share of the time', async () => {
    const silent = await upstream({ silent: true });
    const up = await startFakeDns({ host: '127.0.0.11', records: RECORDS });
    cleanups.push(() => up.close());
    const h = await forwarder([], { timeoutMs: 600, upstreams: [{ host: UPSTREAM, port: silent.port }, { host: '127.0.0.11', port: up.port }] });
    const t0 = Date.now();
    expect(addresses((await udpAsk(h.port, query('github.com')))!)).toEqual(['140.82.121.4']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(silent.queries).toHaveLength(1);
  });

  test('close() ends questions still waiting on upstream and frees the port', async () => {
    const up = await upstream({ silent: true });
    const h = await forwarder(up, { timeoutMs: 5000 });
    const pending = udpAsk(h.port, query('github.com'), { waitMs: 500 });
    await sleep(50);
    const t0 = Date.now();
    await h.fwd.close();
    expect(Date.now() - t0).toBeLessThan(200);
    expect(await pending).toBeNull();
    const again = createSocket('udp4');
    await new Promise<void>((resolve, reject) => (again.once('error', reject), again.bind(h.port, HOST, resolve)));
    again.close();
  });
});

test('the egress log of a job stays bounded: 600 distinct unlisted names keep 500, count 100 as overflow', async () => {
  const up = await upstream();
  const log = new EgressLog();
  const h = await forwarder(up, { egress: ALLOWLIST, limits: { queriesPerSecond: 100_000 }, onQuery: (e) => log.addDns(e) });
  const names = Array.from({ length: 600 }, (_, i) => query(`x${i}.exfil.example`, 'TXT', { id: i }));
  for (let i = 0; i < names.length; i += 100) expect(await udpSend(h.port, names.slice(i, i + 100))).toHaveLength(100);
  const { dns } = log.toJSON();
  expect(dns).toMatchObject({ queries: 600, overflow: 100 });
  expect(dns.names).toHaveLength(500);
  expect(dns.names.every((n) => n.denied === 1 && n.allowed === 0)).toBe(true);
  expect(up.queries).toEqual([]);
  expect(h.fwd.stats.denied).toBe(600);
});
