// The server side of bench/intake.mjs, run as a child process so that the load generator never
// shares its event loop. Two modes:
//   node bench/intake-server.mjs hangar CONFIG_FILE   the real control (buildControl), log silent
//   node bench/intake-server.mjs bare                 a bare Fastify POST /webhooks/github → 202
// Talks to the parent over IPC: sends {type:'ready', url, metricsUrl} (the webhook listener, the one serving /metrics); answers {type:'cpu'} with its CPU time;
// {type:'profile-start'} / {type:'profile-stop', file} take a CPU profile of the window between;
// on {type:'stop'} closes cleanly and exits 0.
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Fastify from 'fastify';
import { stopper } from './lib/cli.mjs';

const [mode, configFile] = process.argv.slice(2);
const send = (msg) => process.send?.(msg);
const dist = process.env.HANGAR_BENCH_DIST ?? fileURLToPath(new URL('../dist', import.meta.url));
const fromDist = (file) => import(pathToFileURL(join(dist, file)).href);

async function startHangar() {
  const { pino } = await import('pino');
  const { loadConfig, requireControl } = await fromDist('config/load.js');
  const { readControlSecrets } = await fromDist('config/secrets.js');
  const { buildControl } = await fromDist('main/control-app.js');
  const config = requireControl(loadConfig(configFile));
  const control = await buildControl(config, readControlSecrets(config), pino({ level: 'silent' }));
  // Webhooks go to the public listener; /metrics is the private one's.
  return { url: control.webhookUrl, metricsUrl: control.url, close: () => control.close() };
}

async function startBare() {
  // Same framework, same body handling as the intake route (raw bytes, same body limit), and an
  // answer of about the same size; no verification, no parsing, no Redis.
  const app = Fastify({ logger: false, bodyLimit: 65536 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.post('/webhooks/github', async (_req, reply) => reply.code(202).send({ result: 'created', decision: { kind: 'accept', pool: 'build' } }));
  const url = await app.listen({ host: process.env.HANGAR_BENCH_LISTEN ?? '127.0.0.1', port: 0 });
  return { url, close: () => app.close() };
}

let server;
const stop = stopper(mode, () => server);

// CPU profile of a window the parent chooses (the measured load only), via the inspector.
let session;
async function profile(msg) {
  try {
    if (msg.type === 'profile-start') {
      session = new Session();
      session.connect();
      await session.post('Profiler.enable');
      await session.post('Profiler.setSamplingInterval', { interval: msg.intervalUs ?? 1000 });
      await session.post('Profiler.start');
    } else {
      const { profile: p } = await session.post('Profiler.stop');
      writeFileSync(msg.file, JSON.stringify(p));
      session.disconnect();
      session = undefined;
    }
    send({ type: msg.type, id: msg.id, ok: true });
  } catch (err) {
    send({ type: msg.type, id: msg.id, ok: false, message: String(err?.message ?? err) });
  }
}

/** CPU time of the main thread alone, as process.cpuUsage() gives it ({user, system} in µs); null off Linux. */
function mainThreadCpu() {
  try {
    // Fields 14 and 15 of /proc/PID/task/PID/stat: utime and stime in clock ticks (USER_HZ, 100 on Linux).
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(f[11]) * 1e4, system: Number(f[12]) * 1e4 };
  } catch {
    return null;
  }
}

/**
 * The main thread's scheduler figures from /proc/self/task/PID/schedstat (ns): time on a core, and
 * time runnable but waiting for one (another thread or process had both cores); null where absent.
 */
function mainThreadSched() {
  try {
    const [onCpu, waiting] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ').map(Number);
    return { onCpu, waiting };
  } catch {
    return null;
  }
}

// Event-loop delay of the main thread (the thread that answers webhooks), per measured window;
// with its event-loop utilisation and its run-queue wait over the same window.
const eld = monitorEventLoopDelay({ resolution: 1 });
eld.enable();
let window0 = { at: performance.now(), elu: performance.eventLoopUtilization(), sched: mainThreadSched() };

process.on('message', (msg) => {
  if (msg?.type === 'cpu') send({ type: 'cpu', id: msg.id, usage: process.cpuUsage(), mainThread: mainThreadCpu() });
  if (msg?.type === 'eld-reset') {
    eld.reset();
    window0 = { at: performance.now(), elu: performance.eventLoopUtilization(), sched: mainThreadSched() };
    send({ type: 'eld-reset', id: msg.id });
  }
  if (msg?.type === 'eld') {
    const ms = (ns) => ns / 1e6;
    const wallMs = performance.now() - window0.at;
    const sched = mainThreadSched();
    send({
      type: 'eld',
      id: msg.id,
      p50: ms(eld.percentile(50)),
      p99: ms(eld.percentile(99)),
      max: ms(eld.max),
      utilisation: performance.eventLoopUtilization(window0.elu).utilization,
      // Share of the window the main thread was runnable but not on a core.
      runQueueWait: sched && window0.sched ? ms(sched.waiting - window0.sched.waiting) / wallMs : NaN,
    });
  }
  if (msg?.type === 'profile-start' || msg?.type === 'profile-stop') void profile(msg);
  if (msg?.type === 'stop') void stop(0);
});
// The parent went away (crash, kill -9): do not outlive it.
process.on('disconnect', () => void stop(0));
process.on('SIGTERM', () => void stop(0));
process.on('SIGINT', () => void stop(0));

try {
  if (mode === 'hangar') server = await startHangar();
  else if (mode === 'bare') server = await startBare();
  else throw new Error(`unknown mode ${mode}: expected hangar or bare`);
  send({ type: 'ready', url: server.url, metricsUrl: server.metricsUrl ?? server.url, pid: process.pid });
} catch (err) {
  send({ type: 'failed', message: err?.stack ?? String(err) });
  process.exit(1);
}
