// The "internet" server of bench/egress, run inside the bench's `inet` namespace:
//   nsenter --net=/run/netns/NS node bench/egress-lib/server.mjs MIB PORT
// A plain HTTP/1.1 server on node:net, on every address of the namespace (198.51.100.20 and
// the private stand-in):
//   GET /blob?tag=T   MIB MiB of random bytes (made once, sent from memory: no disk in the path)
//   GET /private      a short body: the isolation check's target
// Prints one JSON line per answer on stdout, with times on this host's monotonic clock (ms,
// fractional; wReq/wEnd: the same two moments as Date.now(), to line up with other processes):
//   tReq     the request's head had arrived
//   tFinish  the last byte was handed to the kernel (it may still sit in socket buffers)
//   tEnd     the client's FIN arrived: it had read all Content-Length bytes and closed (busybox
//            wget does so at once) — the end of the transfer as the guest saw it
// and first {"ready": true}. Runs until killed.
//
// Not node:http: its server closes a `Connection: close` socket itself right after the last
// write, so the moment the client has read everything cannot be seen (up to 4 MiB, tcp_wmem's
// default maximum, may still sit in the server's socket buffer then: ~6 % of a 64 MiB transfer
// at guest speed). Here the server half-closes only after the client's FIN.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';

const [mib, port] = process.argv.slice(2).map(Number);
const blob = randomBytes(mib * 1024 * 1024);
const now = () => performance.timeOrigin + performance.now();
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const MAX_HEAD = 8192;

function answer(sock, head) {
  const tReq = now();
  const wReq = Date.now();
  const m = /^GET (\S+) HTTP\/1\.[01]\r\n/.exec(head);
  const url = new URL(m?.[1] ?? '/', 'http://x');
  const rec = { path: url.pathname, tag: url.searchParams.get('tag'), remote: sock.remoteAddress, local: sock.localAddress, tReq, wReq };
  const reply = (status, body, type = 'text/plain') => {
    sock.write(`HTTP/1.1 ${status}\r\ncontent-type: ${type}\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`);
    sock.write(body, () => { rec.tFinish = now(); });
  };
  if (!m || (url.pathname !== '/blob' && url.pathname !== '/private')) {
    reply('404 Not Found', Buffer.from('not here\n'));
    sock.end();
    return;
  }
  if (url.pathname === '/private') {
    reply('200 OK', Buffer.from('private-reached\n'));
    sock.end();
    say({ ...rec, bytes: 0, complete: true });
    return;
  }
  reply('200 OK', blob, 'application/octet-stream');
  let done = false;
  const finish = (how) => {
    if (done) return;
    done = true;
    rec.tEnd = now();
    rec.wEnd = Date.now();
    say({ ...rec, bytes: blob.length, complete: how === 'end' && rec.tFinish !== undefined, how });
    sock.end();
  };
  sock.once('end', () => finish('end'));
  sock.once('close', () => finish('close'));
}

const server = createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
  let head = '';
  sock.on('error', () => sock.destroy());
  sock.setTimeout(300_000, () => sock.destroy());
  const onData = (d) => {
    head += d.toString('latin1');
    if (head.includes('\r\n\r\n')) {
      sock.off('data', onData);
      sock.resume(); // anything after the head (there should be nothing) is read and dropped
      answer(sock, head);
    } else if (head.length > MAX_HEAD) sock.destroy();
  };
  sock.on('data', onData);
});
server.listen(port, '0.0.0.0', () => say({ ready: true, bytes: blob.length }));
