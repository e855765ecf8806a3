// The SSE side of bench/dashboard: `clients` open pages on /api/v1/stream (bearer auth), job
// transitions driven through the control's transition script at a steady rate while they are
// open, and per-event delivery latency: from the call to the record code to the `job` frame
// that shows the move, parsed at each client.
import { request } from 'node:http';
import { Samples } from '../lib/stats.mjs';

/** One open page: counts frames by event and hands every `job` frame to `onJob(view, at)`. */
function openPage(url, token, onJob) {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`stream: ${res.statusCode}`));
        res.resume();
        return;
      }
      res.setEncoding('utf8');
      const page = { frames: {}, bytes: 0, close: () => req.destroy(), overview: false };
      let buf = '';
      res.on('data', (chunk) => {
        const at = performance.now();
        page.bytes += chunk.length;
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (frame.startsWith(':')) continue;
          const event = /^event: (.+)$/m.exec(frame)?.[1] ?? 'message';
          page.frames[event] = (page.frames[event] ?? 0) + 1;
          if (event === 'overview') {
            page.overview = true;
            resolve(page);
          }
          if (event === 'job') onJob(JSON.parse(/^data: (.*)$/m.exec(frame)[1]), at);
        }
      });
      res.on('error', () => undefined);
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Opens `clients` pages, then moves `jobs` (waiting ones, phase queued) to `minted` one after
 * the other at `rate` per second for `seconds` (as the mint does, by one of `hosts`), and waits
 * up to `graceMs` after the last move for every page to show every move.
 */
export async function sseRound({ streamUrl, token, clients, rate, seconds, graceMs = 5000, moves, jobs, hosts, hostOf }) {
  const issued = new Map(); // `${id}:${phase}` → performance.now() at the call
  const latency = new Samples();
  const seen = new Map(); // key → pages that showed it
  const onJob = (page) => (v, at) => {
    const key = `${v.workflowJobId}:${v.phase}`;
    const t0 = issued.get(key);
    if (t0 === undefined) return;
    let pages = seen.get(key);
    if (!pages) seen.set(key, (pages = new Set()));
    if (pages.has(page)) return;
    pages.add(page);
    latency.push(at - t0);
  };
  const pages = [];
  for (let i = 0; i < clients; i++) {
    const idx = i;
    pages.push(await openPage(streamUrl, token, onJob(idx)));
  }
  const write = new Samples();
  const total = Math.min(jobs.length, Math.round(rate * seconds));
  const t0 = performance.now();
  const pending = [];
  const failures = [];
  for (let n = 0; n < total; n++) {
    const due = t0 + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const id = jobs[n];
    const host = hostOf(id, hosts, n);
    const runner = `hangar-${host.name}-${id}-1`;
    const started = performance.now();
    issued.set(`${id}:minted`, started);
    pending.push(moves.move(id, { to: 'minted', by: `host:${host.name}`, why: 'asked', fields: { mintedRunner: runner, host: host.name, mintedAt: Date.now(), runEvent: 'push' } }).then((r) => {
      write.push(performance.now() - started);
      if (!r.ok) failures.push(`${id}: ${r.reason}`);
    }));
  }
  await Promise.all(pending);
  const driveSeconds = (performance.now() - t0) / 1000;
  const complete = () => [...issued.keys()].every((k) => (seen.get(k)?.size ?? 0) === clients);
  const deadline = performance.now() + graceMs;
  while (!complete() && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  let delivered = 0;
  for (const k of issued.keys()) delivered += seen.get(k)?.size ?? 0;
  const frames = {};
  for (const p of pages) for (const [e, n] of Object.entries(p.frames)) frames[e] = (frames[e] ?? 0) + n;
  const bytes = pages.reduce((n, p) => n + p.bytes, 0);
  for (const p of pages) p.close();
  return {
    clients, moves: issued.size, rate, driveSeconds, expected: issued.size * clients, delivered, failures,
    latency: latency.percentiles([50, 99]), write: write.percentiles([50, 99]), frames, bytes,
  };
}
