/**
 * Small servers the local fleet runs inside its network namespaces, one process per namespace,
 * started as `nsenter --net=/run/netns/NAME node dist/main/netns-tool.js MODE JSON`:
 *
 * - `serve [{ "host": "198.51.100.20", "port": 80, "reply": "public-web" }, …]`: HTTP servers
 *   answering every request 200 with `reply` (the LAN's router, web server and metadata address,
 *   the internet's public web server, prod): something real for a guest to reach, or be kept from.
 * - `bridge [{ "socket": "/tmp/…/control.sock", "host": "127.0.0.1", "port": 8080 }, …]`: each
 *   unix socket forwarded to a TCP port of the namespace, byte for byte, so a caller outside
 *   the namespace (a test) reaches a server that listens only inside it.
 *
 * - `dns [{ "host": "203.0.113.53", "port": 53, "names": { "allowed.example": "198.51.100.20" } }]`:
 *   an authoritative UDP DNS server for those names (A, TTL 300), NXDOMAIN for the rest: the
 *   upstream the guests' forwarders ask.
 *
 * - `faults [{ "host": "127.0.0.1", "port": 8090, "to": { "host": "127.0.0.1", "port": 8080 },
 *   "fail": [{ "method": "POST", "path": "/api/v1/jit", "times": 1, "status": 502 }] }]`: an HTTP
 *   proxy that answers the first `times` matching requests with `status` and passes everything
 *   else through: a control that fails the way a real one can (a restart, a proxy in front of it).
 *
 * Prints `ready` once everything listens; runs until SIGTERM. Not part of `hangar`'s CLI: it
 * is scaffolding for the demo and the tests, not something an operator runs.
 */
import { rmSync } from 'node:fs';
import { createServer as createHttpServer, request } from 'node:http';
import { createSocket, type Socket } from 'node:dgram';
import { connect, createServer, type Server } from 'node:net';
import { buildReply, parseQuery, QTYPE, RCODE } from '../net/dns-wire.js';

interface Served { host: string; port: number; reply: string }
interface Bridged { socket: string; host: string; port: number }
interface Zone { host: string; port: number; names: Record<string, string> }
interface Faulted { host: string; port: number; to: { host: string; port: number }; fail: { method: string; path: string; times: number; status: number }[] }

function faultyProxy(f: Faulted): Server {
  const left = f.fail.map((x) => x.times);
  return createHttpServer((req, res) => {
    const i = f.fail.findIndex((x, n) => x.method === req.method && x.path === req.url && left[n]! > 0);
    if (i >= 0) {
      left[i]!--;
      req.resume();
      process.stdout.write(`fault: ${f.fail[i]!.status} ${req.method} ${req.url}\n`);
      return void res.writeHead(f.fail[i]!.status, { 'content-type': 'application/json' }).end('{"error":"injected"}');
    }
    const out = request({ host: f.to.host, port: f.to.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  }) as unknown as Server;
}

/** One question, one answer: the A record of a known name, else NXDOMAIN. */
function dnsServer(z: Zone): Promise<Socket> {
  const sock = createSocket('udp4');
  sock.on('message', (msg, from) => {
    const p = parseQuery(msg);
    if (p.kind !== 'query') return;
    const q = p.question;
    const ip = z.names[q.name];
    if (!ip) return void sock.send(buildReply(q, RCODE.NXDOMAIN), from.port, from.address);
    const head = buildReply(q, RCODE.NOERROR);
    if (q.type !== QTYPE.A) return void sock.send(head, from.port, from.address);
    head.writeUInt16BE(1, 6); // one answer
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(QTYPE.A, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(300, 6);
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, i) => rr.writeUInt8(Number(o), 12 + i));
    sock.send(Buffer.concat([head, rr]), from.port, from.address);
  });
  return new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(z.port, z.host, () => resolve(sock));
  });
}

function listen(server: Server, ...at: [string] | [number, string]): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(at as [number, string]), () => resolve());
  });
}

function serve(specs: Served[]): Server[] {
  return specs.map((s) =>
    createHttpServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' }).end(`${s.reply}\n`);
    }),
  );
}

async function main(): Promise<void> {
  const [mode, arg] = process.argv.slice(2);
  const specs = JSON.parse(arg ?? '[]') as unknown[];
  const servers: Server[] = [];
  if (mode === 'serve') {
    const list = specs as Served[];
    const made = serve(list);
    servers.push(...made);
    await Promise.all(made.map((srv, i) => listen(srv, list[i]!.port, list[i]!.host)));
  } else if (mode === 'bridge') {
    for (const b of specs as Bridged[]) {
      const srv = createServer((outer) => {
        const inner = connect(b.port, b.host);
        // Either side failing or closing ends both: a refused target looks like a reset to the caller.
        outer.on('error', () => inner.destroy());
        inner.on('error', () => outer.destroy());
        outer.pipe(inner).pipe(outer);
      });
      rmSync(b.socket, { force: true });
      servers.push(srv);
      await listen(srv, b.socket);
    }
  } else if (mode === 'faults') {
    for (const f of specs as Faulted[]) {
      const srv = faultyProxy(f);
      servers.push(srv);
      await listen(srv, f.port, f.host);
    }
  } else if (mode === 'dns') {
    const socks = await Promise.all((specs as Zone[]).map(dnsServer));
    process.once('SIGTERM', () => socks.forEach((x) => x.close()));
  } else {
    process.stderr.write('usage: netns-tool.js serve|bridge|dns|faults JSON\n');
    process.exit(2);
  }
  process.stdout.write('ready\n');
  const stop = () => {
    for (const s of servers) s.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`netns-tool: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
