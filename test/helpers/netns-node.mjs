// Small servers and clients for packet tests, run inside a namespace with
// `nsenter --net=/run/netns/NAME node test/helpers/netns-node.mjs serve|probe JSON`.
//
// serve [{ "proto": "tcp"|"udp", "port": 80, "host": "0.0.0.0", "reply": "internet" }, ...]
//   tcp: answers every connection with `reply` and closes; udp: answers every datagram with `reply`.
//   Prints "ready" once every socket listens; runs until killed.
// probe [{ "kind": "tcp"|"udp", "host": "…", "port": 80, "timeoutMs": 1500, "bind": "…"?, "size": 4000? }, ...]
//   (udp `size`: a datagram that large, so the kernel sends it in fragments)
//   Runs all at once, prints one JSON array: { outcome, code?, ms, data? } per probe, where
//   outcome is open | reply | refused | unreachable | timeout | error.
// burst { "host": "…", "port": 9, "count": 40, "timeoutMs": 1500 }
//   `count` UDP sockets send one datagram each, as fast as they can; prints { sent, replies }.
import dgram from 'node:dgram';
import net from 'node:net';

const [mode, arg] = process.argv.slice(2);
const spec = JSON.parse(arg ?? 'null');

const outcomeOf = (code) =>
  ({ ECONNREFUSED: 'refused', EHOSTUNREACH: 'unreachable', ENETUNREACH: 'unreachable', EACCES: 'unreachable', EPERM: 'unreachable' })[code] ?? 'error';

function serve(specs) {
  let pending = specs.length;
  const ready = () => --pending === 0 && console.log('ready');
  for (const s of specs) {
    const host = s.host ?? '0.0.0.0';
    if (s.proto === 'tcp') {
      const srv = net.createServer((c) => {
        c.on('error', () => {});
        c.end(s.reply);
      });
      srv.listen({ port: s.port, host, ipv6Only: host === '::' }, ready);
    } else {
      const sock = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
      sock.on('message', (_m, r) => sock.send(s.reply, r.port, r.address));
      sock.bind(s.port, host, ready);
    }
  }
}

function tcp(p) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const done = (r) => {
      clearTimeout(timer);
      sock.destroy();
      resolve({ ...r, ms: Date.now() - t0 });
    };
    const sock = net.connect({ host: p.host, port: p.port, ...(p.bind ? { localAddress: p.bind } : {}) });
    let data = '';
    let connected = false;
    const timer = setTimeout(() => done(connected ? { outcome: 'open', data } : { outcome: 'timeout' }), p.timeoutMs ?? 1500);
    sock.on('connect', () => (connected = true));
    sock.on('data', (d) => (data += d));
    sock.on('end', () => done({ outcome: 'open', data }));
    sock.on('error', (e) => done(connected ? { outcome: 'open', data } : { outcome: outcomeOf(e.code), code: e.code }));
  });
}

function udp(p) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const sock = dgram.createSocket(p.host.includes(':') ? 'udp6' : 'udp4');
    const done = (r) => {
      clearTimeout(timer);
      sock.close();
      resolve({ ...r, ms: Date.now() - t0 });
    };
    const timer = setTimeout(() => done({ outcome: 'timeout' }), p.timeoutMs ?? 1500);
    sock.on('error', (e) => done({ outcome: outcomeOf(e.code), code: e.code }));
    sock.on('message', (m) => done({ outcome: 'reply', data: String(m) }));
    sock.bind({ address: p.bind, port: 0 }, () => {
      sock.connect(p.port, p.host, (err) => {
        if (err) return done({ outcome: outcomeOf(err.code), code: err.code });
        sock.send(p.size ? Buffer.alloc(p.size, 'x') : 'ping', (e) => e && done({ outcome: outcomeOf(e.code), code: e.code }));
      });
    });
  });
}

async function burst(b) {
  let replies = 0;
  const socks = [];
  for (let i = 0; i < b.count; i++) {
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    s.on('message', () => replies++);
    socks.push(s);
    s.send('ping', b.port, b.host);
  }
  await new Promise((r) => setTimeout(r, b.timeoutMs ?? 1500));
  for (const s of socks) s.close();
  return { sent: b.count, replies };
}

if (mode === 'serve') serve(spec);
else if (mode === 'probe') console.log(JSON.stringify(await Promise.all(spec.map((p) => (p.kind === 'tcp' ? tcp(p) : udp(p))))));
else if (mode === 'burst') console.log(JSON.stringify(await burst(spec)));
else {
  console.error('usage: netns-node.mjs serve|probe|burst JSON');
  process.exit(2);
}
