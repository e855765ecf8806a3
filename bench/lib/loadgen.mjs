// A lean HTTP/1.1 load generator for bench/intake: keep-alive connections over node:net, one
// request in flight per connection, requests prepared before the clock starts.
//
// Why not autocannon (which this bench used first): on the 2-core reference machine the load
// generator shares the cores with the server and Redis, and autocannon spent 120–190 µs of CPU
// per request (it rebuilds every request from objects, and signing ran inside the measured
// window). Here a request is three shared buffers and a small per-request head, written with one
// writev, and an answer is parsed only as far as its status line and Content-Length. So the load
// generator takes a few tens of µs per request and leaves the cores to what is measured.
//
// Two modes:
//   closed loop (default)  each connection sends its next request as soon as the previous one is
//                          answered: the throughput the server sustains with `connections` busy
//   fixed rate (`rate`)    requests are due at an even `rate` per second over the connections; a
//                          request that finds every connection busy waits, and its latency counts
//                          from when it was due (no coordinated omission): latency at that rate
import { connect } from 'node:net';

const CRLF2 = Buffer.from('\r\n\r\n');

/**
 * Drives `url` for `seconds`. `next()` returns the next request as an array of Buffers (written
 * together) or a Buffer. Calls `onAnswer(status, ms)` for every answer of a request sent before
 * the deadline; in-flight requests at the deadline are still awaited (and counted), so the
 * server's work is all accounted for. Resolves to `{ sent, answered, errors, seconds }`.
 */
export async function drive({ url, connections, seconds, next, onAnswer, rate, timeoutMs = 10_000 }) {
  const { hostname, port } = new URL(url);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let sent = 0;
  let answered = 0;
  let errors = 0;
  let lastAnswer = t0;
  const idle = [];
  const backlog = []; // fixed rate: due times of requests waiting for a free connection
  let finish;
  const done = new Promise((r) => (finish = r));
  let open = 0;

  const conns = await Promise.all(
    Array.from({ length: connections }, () =>
      new Promise((resolve, reject) => {
        const s = connect({ host: hostname, port: Number(port), noDelay: true }, () => resolve(s));
        s.once('error', reject);
      }),
    ),
  );

  const maybeFinish = () => {
    if (open === 0 && performance.now() >= deadline && (rate === undefined || backlog.length === 0)) finish();
  };

  function send(c, dueAt) {
    const req = next();
    c.dueAt = dueAt;
    c.busy = true;
    open++;
    sent++;
    c.timer = setTimeout(() => {
      errors++;
      c.destroy(new Error('timeout'));
    }, timeoutMs);
    if (Array.isArray(req)) {
      c.cork();
      for (const b of req) c.write(b);
      c.uncork();
    } else {
      c.write(req);
    }
  }

  function answeredOn(c, status) {
    const now = performance.now();
    clearTimeout(c.timer);
    c.busy = false;
    open--;
    answered++;
    lastAnswer = now;
    onAnswer(status, now - c.dueAt);
    if (rate === undefined) {
      if (now < deadline) send(c, performance.now());
    } else if (backlog.length > 0) {
      send(c, backlog.shift());
    } else {
      idle.push(c);
    }
    maybeFinish();
  }

  for (const c of conns) {
    c.setNoDelay(true);
    let buf = null;
    let need = -1; // bytes of the current answer (head + body) once the head is complete
    let status = 0;
    c.on('data', (chunk) => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
      for (;;) {
        if (need < 0) {
          const end = buf.indexOf(CRLF2);
          if (end < 0) return;
          const head = buf.toString('latin1', 0, end);
          status = Number(head.slice(9, 12));
          const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          if (!m) {
            errors++;
            c.destroy(new Error('answer without Content-Length'));
            return;
          }
          need = end + 4 + Number(m[1]);
        }
        if (buf.length < need) return;
        buf = buf.length === need ? null : buf.subarray(need);
        need = -1;
        answeredOn(c, status);
        if (buf === null) return;
      }
    });
    c.on('error', () => undefined);
    c.on('close', () => {
      if (c.busy) {
        clearTimeout(c.timer);
        c.busy = false;
        open--;
        errors++;
        maybeFinish();
      }
    });
  }

  if (rate === undefined) {
    for (const c of conns) send(c, performance.now());
  } else {
    idle.push(...conns);
    const interval = 1000 / rate;
    let due = t0;
    const tick = () => {
      const now = performance.now();
      while (due <= now && due < deadline) {
        if (idle.length > 0) send(idle.pop(), due);
        else backlog.push(due);
        due += interval;
      }
      if (due < deadline) setTimeout(tick, 1);
      else maybeFinish();
    };
    tick();
  }
  setTimeout(maybeFinish, seconds * 1000 + 1).unref();
  await done;
  for (const c of conns) c.destroy();
  return { sent, answered, errors, seconds: (lastAnswer - t0) / 1000 };
}
