// The server side of bench/dashboard.mjs, run as a child process so that the load generator and
// the SSE clients never share its event loop. Two modes:
//   node bench/dashboard-server.mjs hangar CONFIG_FILE   the real control (buildControl from dist/):
//        the public (webhooks) and private (agents') listeners and the dashboard's own, all on 127.0.0.1:0, log silent
//   node bench/dashboard-server.mjs bare                 node:http answering fixed JSON bodies (the
//        parent sends them: {type:'bodies', bodies: {path: json}}), no auth, no work
// IPC: sends {type:'ready', url, dashboard}; answers {type:'cpu'} with its CPU time,
// {type:'sections'} (hangar) with the read model's sections timed in process; {type:'stop'} exits.
import { createServer } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stopper } from './lib/cli.mjs';

const [mode, configFile] = process.argv.slice(2);
const send = (msg) => process.send?.(msg);
const dist = process.env.HANGAR_BENCH_DIST ?? fileURLToPath(new URL('../dist', import.meta.url));
const fromDist = (file) => import(pathToFileURL(join(dist, file)).href);

let control;

async function startHangar() {
  const { pino } = await import('pino');
  const { loadConfig, requireControl } = await fromDist('config/load.js');
  const { readControlSecrets } = await fromDist('config/secrets.js');
  const { buildControl } = await fromDist('main/control-app.js');
  const config = requireControl(loadConfig(configFile));
  // As main/control.ts composes it: buildControl starts every unit, the dashboard on its own listener.
  control = await buildControl(config, readControlSecrets(config), pino({ level: 'silent' }));
  // The agents' API (heartbeats) is the private listener's.
  return { url: control.url, dashboard: control.dashboard.url, close: () => control.close() };
}

let bodies = new Map();
async function startBare() {
  // The floor for an answer of that size on this machine: node:http, a fixed Buffer, keep-alive.
  const srv = createServer((req, res) => {
    const body = bodies.get(req.url) ?? bodies.get(req.url.replace(/\/\d+$/, '/:id'));
    if (!body) {
      res.writeHead(404, { 'content-type': 'application/json', 'content-length': 2 }).end('{}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-store' });
    res.end(body);
  });
  srv.keepAliveTimeout = 60_000;
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${srv.address().port}`;
  return { url, dashboard: url, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }) };
}

/** Each section of the overview computed `n` times in process: ms per call (no HTTP, no Redis). */
function sections(n) {
  const m = control.dashboard.model;
  const time = (fn) => {
    fn();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) fn();
    return (performance.now() - t0) / n;
  };
  return {
    overview: time(() => m.overview()),
    'overview, serialised': time(() => JSON.stringify(m.overview())),
    pools: time(() => m.pools()),
    batch: time(() => m.batch()),
    savings: time(() => m.savings()),
  };
}

let server;
const stop = stopper(mode, () => server);

process.on('message', (msg) => {
  if (msg?.type === 'cpu') send({ type: 'cpu', id: msg.id, usage: process.cpuUsage() });
  if (msg?.type === 'bodies') {
    bodies = new Map(Object.entries(msg.bodies).map(([p, b]) => [p, Buffer.from(b)]));
    send({ type: 'bodies', id: msg.id });
  }
  if (msg?.type === 'sections') send({ type: 'sections', id: msg.id, ms: sections(msg.n ?? 50) });
  if (msg?.type === 'stop') void stop(0);
});
// The parent went away (crash, kill -9): do not outlive it.
process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
// Ctrl-C reaches the whole process group: the parent decides when this one stops.
process.on('SIGINT', () => undefined);

try {
  if (mode === 'hangar') server = await startHangar();
  else if (mode === 'bare') server = await startBare();
  else throw new Error(`unknown mode ${mode}: expected hangar or bare`);
  send({ type: 'ready', url: server.url, dashboard: server.dashboard, pid: process.pid });
} catch (err) {
  send({ type: 'failed', message: err?.stack ?? String(err) });
  process.exit(1);
}
