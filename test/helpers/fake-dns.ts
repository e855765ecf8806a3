import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket, { type Answer, type DecodedPacket } from 'dns-packet';

/**
 * A small authoritative-looking DNS server for tests, UDP and TCP on one loopback address and
 * port, encoding with `dns-packet` (not Hangar's own codec, so the two are checked against each
 * other). A names answer A records from `records` (a CNAME in `cnames` is followed once), other
 * types of known names get NOERROR with no records, unknown names NXDOMAIN. A UDP answer over
 * 512 octets is sent truncated, as real servers do. `silent` answers nothing at all.
 */
export interface FakeDnsOptions {
  host: string;
  records?: Record<string, string[]>;
  cnames?: Record<string, string>;
  ttl?: number;
  silent?: boolean;
}

export interface FakeDns {
  readonly port: number;
  /** Every query received, in order. */
  readonly queries: { name: string; type: string; tcp: boolean }[];
  close(): Promise<void>;
}

export async function startFakeDns(o: FakeDnsOptions): Promise<FakeDns> {
  const queries: FakeDns['queries'] = [];
  const answer = (msg: Buffer, tcp: boolean): Buffer | null => {
    let q: DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return null;
    }
    const question = q.questions?.[0];
    if (!question) return null;
    queries.push({ name: question.name, type: question.type, tcp });
    if (o.silent) return null;
    const name = question.name.toLowerCase();
    const target = o.cnames?.[name];
    const known = target !== undefined || o.records?.[name] !== undefined;
    const answers: Answer[] = [];
    if (question.type === 'A' && known) {
      const ttl = o.ttl ?? 300;
      if (target) answers.push({ type: 'CNAME', name: question.name, ttl, data: target });
      for (const ip of o.records?.[target ?? name] ?? []) answers.push({ type: 'A', name: target ?? question.name, ttl, data: ip });
    }
    const reply = (list: Answer[], extra: number) =>
      dnsPacket.encode({ type: 'response', id: q.id ?? 0, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | extra, questions: [question], answers: list });
    const full = reply(answers, known ? 0 : 3 /* NXDOMAIN */);
    return !tcp && full.length > 512 ? reply([], dnsPacket.TRUNCATED_RESPONSE) : full;
  };

  for (let attempt = 0; ; attempt++) {
    const udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, o.host, resolve));
    const port = udp.address().port;
    const tcp = createServer();
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, o.host, () => resolve(true));
    });
    if (!ok) {
      udp.close();
      if (attempt < 8) continue;
      throw new Error('fake DNS: no port free for both UDP and TCP');
    }
    wire(udp, tcp, answer);
    return {
      port,
      queries,
      close: () =>
        Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]).then(() => undefined),
    };
  }
}

function wire(udp: UdpSocket, tcp: Server, answer: (msg: Buffer, tcp: boolean) => Buffer | null): void {
  udp.on('message', (msg, rinfo) => {
    const out = answer(msg, false);
    if (out) udp.send(out, rinfo.port, rinfo.address);
  });
  tcp.on('connection', (sock: Socket) => {
    let buf: Buffer = Buffer.alloc(0);
    sock.on('error', () => undefined);
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const out = answer(msg, true);
        if (!out) continue;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length, 0);
        sock.write(Buffer.concat([len, out]));
      }
    });
  });
}
