// The veth guest's downloader (bench/egress's control without QEMU), run in the `vguest`
// namespace:  nsenter --net=/run/netns/NS node bench/egress-lib/client.mjs HOST TAG COUNT
// COUNT sequential GETs of /blob?tag=TAG-<i>, each read to its Content-Length and dropped,
// then closed (as busybox wget does). Prints one JSON array: { i, ok, bytes, ms } per GET.
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';

const [host, tag, count] = process.argv.slice(2);

function get(i) {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const sock = connect({ host, port: 80, noDelay: true });
    let head = '';
    let want = -1;
    let got = 0;
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      resolve({ i, ok, bytes: got, ms: performance.now() - t0 });
      // Our FIN, as wget's: the server times the transfer up to it.
      if (ok) sock.end();
      else sock.destroy();
    };
    sock.setTimeout(60_000, () => settle(false));
    sock.on('error', () => settle(false));
    sock.on('end', () => settle(want >= 0 && got === want));
    sock.on('connect', () => sock.write(`GET /blob?tag=${tag}-${i} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
    sock.on('data', (d) => {
      if (want < 0) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        want = Number(/content-length: (\d+)/i.exec(head.slice(0, end))?.[1] ?? NaN);
        got = head.length - end - 4;
      } else got += d.length;
      if (got >= want) settle(got === want);
    });
  });
}

const out = [];
for (let i = 1; i <= Number(count); i++) out.push(await get(i));
process.stdout.write(JSON.stringify(out) + '\n');
