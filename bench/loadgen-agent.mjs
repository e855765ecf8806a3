#!/usr/bin/env node
// The load generator of bench/intake, run on a machine of its own: GitHub does not send its
// webhooks from the control's machine, and on a small machine the load generator's own CPU is
// taken from the server it measures (docs/benchmarks.md). Start it on the other machine, then
// point bench/intake at it:
//
//   other machine:    node bench/loadgen-agent.mjs [--host 0.0.0.0] [--port 7399]
//   control machine:  npm run bench:intake -- --loadgen http://OTHER:7399 --listen THIS_MACHINE_ADDRESS
//
// bench/intake still starts Redis and the servers, runs the checks and reports; this agent only
// signs and sends the requests (the same bench/lib/loadgen.mjs and payloads as a local run) and
// sends back every answer's status and latency. It answers one bench at a time, over plain HTTP:
// the webhook secret it is given is the bench's own throwaway one. It drives only the address the
// bench calls it from, so it cannot be told to flood another host.
//
//   POST /prepare {url, path, secret, firstId, count, cycle}   sign `count` requests for `url`
//   POST /drive   {url, connections, seconds, rate}            drive `url`; answers and CPU back
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { drive } from './lib/loadgen.mjs';
import { queuedTemplate } from './lib/payload.mjs';
import { jobIds, SignedRequests } from './lib/requests.mjs';

const USAGE = `usage: node bench/loadgen-agent.mjs [--host ADDR] [--port N]
  --host ADDR   address to listen on (default 0.0.0.0)
  --port N      port to listen on (default 7399)`;

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '0.0.0.0' },
    port: { type: 'string', default: '7399' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}
const port = Number(opt.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`--port must be a port number\n${USAGE}`);
  process.exit(2);
}

const template = queuedTemplate();
/** Signed requests by target URL. */
const targets = new Map();
const ids = jobIds();
let busy = false;

/** Makes sure `count` unsent requests for `url` are signed (a cycling target: `count` in all). */
function prepare({ url, path, secret, firstId, count, cycle }) {
  for (const [name, v] of [['url', url], ['path', path], ['secret', secret]]) {
    if (typeof v !== 'string' || v === '') throw new Error(`${name}: expected a non-empty string`);
  }
  for (const [name, v] of [['firstId', firstId], ['count', count]]) {
    if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name}: expected a non-negative integer`);
  }
  ids.raise(firstId);
  let t = targets.get(url);
  if (!t || t.secret !== secret) {
    t = new SignedRequests({ template, secret, url, path, ids, cycle: Boolean(cycle) });
    targets.set(url, t);
  }
  t.prepare(count);
  return { nextId: ids.peek() };
}

async function driveTarget({ url, connections, seconds, rate }) {
  const t = targets.get(url);
  if (!t) throw new Error(`url: no requests prepared for ${url}`);
  if (!Number.isInteger(connections) || connections < 1) throw new Error('connections: expected a positive integer');
  if (!(seconds > 0)) throw new Error('seconds: expected a positive number');
  if (rate !== undefined && rate !== null && !(rate > 0)) throw new Error('rate: expected a positive number or null');
  const late0 = t.builtLate;
  // Every answer: status, latency (ms) and the second of the run it came in.
  const status = [];
  const ms = [];
  const sec = [];
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const result = await drive({
    url,
    connections,
    seconds,
    rate: rate ?? undefined,
    next: () => t.next(),
    onAnswer: (code, latency) => {
      status.push(code);
      ms.push(Math.round(latency * 1000) / 1000);
      sec.push(Math.floor((performance.now() - t0) / 1000));
    },
  });
  const wall = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { ...result, nextId: ids.peek(), builtLate: t.builtLate - late0, cores: (cpu.user + cpu.system) / 1e6 / wall, answers: { status, ms, sec } };
}

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
}

const server = createServer(async (req, res) => {
  const reply = (code, obj) => {
    const text = JSON.stringify(obj);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
  try {
    if (req.method === 'GET' && req.url === '/') return reply(200, { agent: 'hangar bench loadgen', busy });
    if (req.method !== 'POST' || (req.url !== '/prepare' && req.url !== '/drive')) return reply(404, { error: 'POST /prepare or POST /drive' });
    const input = await body(req);
    // It drives only the machine that asked (an open load generator would flood any host it is told).
    const target = typeof input.url === 'string' && URL.canParse(input.url) ? new URL(input.url).hostname.replace(/^\[|\]$/g, '') : '';
    const from = (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (target !== from) return reply(403, { error: `url: drives only the machine that asks (${from}), not ${target || 'that'}; start bench/intake with --listen set to the address it reaches this agent from` });
    if (req.url === '/prepare') return reply(200, prepare(input));
    if (busy) return reply(409, { error: 'already driving a target' });
    busy = true;
    try {
      return reply(200, await driveTarget(input));
    } finally {
      busy = false;
    }
  } catch (err) {
    return reply(400, { error: String(err?.message ?? err) });
  }
});
server.listen(port, opt.host, () => {
  const a = server.address();
  console.log(`bench loadgen agent listening on http://${a.address}:${a.port} (run bench/intake with --loadgen http://<this machine>:${a.port})`);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
