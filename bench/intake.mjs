#!/usr/bin/env node
// bench/intake: webhook intake throughput and latency of the real control, with a same-run
// baseline (a bare Fastify route). Run with `npm run bench:intake` (builds first), or after a
// build: `node bench/intake.mjs [--duration 10] [--runs 3] [--cpu-prof]`. See docs/benchmarks.md.
//
// Layout (each its own process, so the load generator never shares the server's event loop):
//   this process        load generator (bench/lib/loadgen.mjs; with --loadgen, bench/loadgen-agent.mjs on
//                       another machine runs it instead), 50 connections, every request a distinct
//                       signed workflow_job `queued` delivery; checks and report
//   redis-server        startLocalRedis(): AOF on, appendfsync everysec, noeviction
//   child "bare"        Fastify, POST /webhooks/github → 202, no work
//   child "hangar"      buildControl() from dist/, listening on 127.0.0.1:random, log silent
import { fork } from 'node:child_process';
import { randomBytes, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { summarise } from './lib/cpuprofile.mjs';
import { drive as load } from './lib/loadgen.mjs';
import { queuedTemplate } from './lib/payload.mjs';
import { jobIds, SignedRequests } from './lib/requests.mjs';
import { cpuShare, median, Samples } from './lib/stats.mjs';
import { numericOptions } from './lib/cli.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');

/** The issue's target for Hangar on the 2-core reference machine. */
const TARGET = { rps: 3000, p99Ms: 25 };
const POOL = 'build';
/** Cores used by other processes above which a measurement counts as noisy. */
const NOISY = 0.25;
const PATH = '/webhooks/github';

const USAGE = `usage: node bench/intake.mjs [options]   (npm run bench:intake -- [options] builds first)
  --duration S        measured seconds per target (default 10)
  --warmup S          unmeasured warm-up seconds per target before measuring (default 2)
  --connections N     concurrent connections (default 50)
  --rate R            after the closed-loop phase, also drive Hangar at a fixed R deliveries/s over the same
                      connections (open loop, latency from when each request was due) and report it (default 0: skip)
  --runs N            independent runs (fresh redis and servers each); prints the median (default 1)
  --quiet-wait S      before each target, wait up to S s for other processes to use < 0.25 cores (default 60; 0: don't)
  --retry-noisy N     measure a target again (up to N times) when other processes used ≥ 0.25 cores meanwhile (default 2)
  --drain-timeout S   how long the outbox relay may take to enqueue the backlog (default 120)
  --cpu-prof          CPU-profile the control child's main thread (inspector) during the measured load and print
                      a summary (the relay runs in a thread of its own and is not in the profile)
  --prof-dir DIR      where to keep the .cpuprofile files (default: a temp dir, removed)
  --json FILE         also write the results as JSON
  --dist DIR          the compiled Hangar to measure (default: dist/ of this checkout; for A/B experiments)
  --strict            exit 3 when the target is missed (default: report only)
  --loadgen URL       drive the load from a bench/loadgen-agent.mjs on another machine (GitHub's place) instead
                      of this process; give --listen too, so that the agent can reach the servers
  --listen ADDR       address the servers listen on (default 127.0.0.1)
exit status: 0 ok, 1 failed (any non-2xx, client errors, or the outbox check), 3 target missed with --strict`;

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    runs: { type: 'string', default: '1' },
    rate: { type: 'string', default: '0' },
    'drain-timeout': { type: 'string', default: '120' },
    'quiet-wait': { type: 'string', default: '60' },
    'retry-noisy': { type: 'string', default: '2' },
    'cpu-prof': { type: 'boolean', default: false },
    'prof-dir': { type: 'string' },
    json: { type: 'string' },
    dist: { type: 'string' },
    strict: { type: 'boolean', default: false },
    loadgen: { type: 'string' },
    listen: { type: 'string', default: '127.0.0.1' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
const num = numericOptions(opt, USAGE);
const cfg = {
  duration: num('duration', 1),
  warmup: num('warmup', 0),
  connections: Math.floor(num('connections', 1)),
  runs: Math.floor(num('runs', 1)),
  rate: num('rate', 0),
  drainTimeout: num('drain-timeout', 1),
  quietWait: num('quiet-wait', 0),
  retryNoisy: Math.floor(num('retry-noisy', 0)),
};

if (opt.loadgen !== undefined && !/^https?:\/\/[^/]+\/?$/.test(opt.loadgen)) {
  console.error(`--loadgen must be the agent's base URL, like http://10.0.0.2:7399\n${USAGE}`);
  process.exit(2);
}
if (opt.loadgen !== undefined && /^(127\.|localhost$|::1$)/.test(opt.listen)) {
  console.warn(`--loadgen with --listen ${opt.listen}: an agent on another machine cannot reach a loopback address`);
}
const loadgenUrl = opt.loadgen?.replace(/\/$/, '');

const dist = resolve(opt.dist ?? join(root, 'dist'));
for (const f of ['main/control-app.js', 'main/local-redis.js', 'config/load.js', 'config/secrets.js']) {
  if (!existsSync(join(dist, f))) {
    console.error(`${join(dist, f)} is missing: build first (npm run build), or use npm run bench:intake`);
    process.exit(1);
  }
}
const { startLocalRedis } = await import(pathToFileURL(join(dist, 'main/local-redis.js')).href);
// The control's node flags (older builds, measured with --dist, have none).
const { CONTROL_NODE_FLAGS = [] } = await import(pathToFileURL(join(dist, 'config/runtime.js')).href).catch(() => ({}));

// ---------------------------------------------------------------------------------------------
// Cleanup: everything started registers its undo here; run on success, failure and signals.
const cleanups = [];
let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    while (cleanups.length > 0) {
      const undo = cleanups.pop();
      try {
        await undo();
      } catch (err) {
        console.error(`cleanup: ${err?.message ?? err}`);
      }
    }
  })();
  return cleaning;
}
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping servers and redis…`);
    void cleanup().finally(() => process.exit(code));
  });
}

// ---------------------------------------------------------------------------------------------
// Child servers

async function startServer(mode, args = []) {
  const child = fork(join(here, 'intake-server.mjs'), [mode, ...args], {
    env: { ...process.env, HANGAR_BENCH_DIST: dist, HANGAR_BENCH_LISTEN: opt.listen },
    // The control's node flags, as its unit and the demo start it (both children get them, so the
    // baseline runs alike); HANGAR_BENCH_SERVER_ARGS replaces them for experiments, e.g. "--trace-gc".
    execArgv: process.env.HANGAR_BENCH_SERVER_ARGS !== undefined ? process.env.HANGAR_BENCH_SERVER_ARGS.split(' ').filter(Boolean) : [...CONTROL_NODE_FLAGS],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (child.connected) child.send({ type: 'stop' });
    else child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(t);
  };
  cleanups.push(stop);
  const { url, metricsUrl } = await new Promise((resolveUrl, reject) => {
    const t = setTimeout(() => reject(new Error(`${mode} server did not start within 30 s`)), 30_000);
    child.on('message', (m) => {
      if (m?.type === 'ready') {
        clearTimeout(t);
        resolveUrl({ url: m.url, metricsUrl: m.metricsUrl ?? m.url });
      } else if (m?.type === 'failed') {
        clearTimeout(t);
        reject(new Error(`${mode} server failed to start: ${m.message}`));
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(t);
      reject(new Error(`${mode} server exited during start (code ${code}, signal ${signal})`));
    });
  });
  let seq = 0;
  const ask = (type, extra = {}) =>
    new Promise((r, reject) => {
      const id = ++seq;
      const on = (m) => {
        if (m?.type === type && m.id === id) {
          child.off('message', on);
          if (m.ok === false) reject(new Error(`${mode} server: ${type}: ${m.message}`));
          else r(m);
        }
      };
      child.on('message', on);
      void exited.then(({ code, signal }) => reject(new Error(`${mode} server exited (code ${code}, signal ${signal})`)));
      child.send({ type, id, ...extra });
    });
  const cpu = async () => (await ask('cpu')).usage;
  const mainThreadCpu = async () => (await ask('cpu')).mainThread;
  return { mode, url, metricsUrl, pid: child.pid, cpu, mainThreadCpu, ask, stop };
}

// ---------------------------------------------------------------------------------------------
// Load

const SECRET = `bench-${randomBytes(16).toString('hex')}`;
const template = queuedTemplate();
const ids = jobIds(); // unique across phases and runs (each run also has a fresh prefix and redis)

/** Requests for one server: signed here, or by the remote load generator (--loadgen). */
function requestsFor(url, { cycle = false } = {}) {
  return loadgenUrl ? new RemoteRequests(url, cycle) : new SignedRequests({ template, secret: SECRET, url, path: PATH, ids, cycle });
}

/** The agent signs them (same template, same secret, job ids from ours on); drive() asks it for the answers. */
class RemoteRequests {
  constructor(url, cycle) {
    this.url = url;
    this.cycle = cycle;
    this.builtLate = 0;
  }
  async prepare(n) {
    const r = await agent('/prepare', { url: this.url, path: PATH, secret: SECRET, firstId: ids.peek(), count: n, cycle: this.cycle });
    ids.raise(r.nextId);
  }
}

/** A call to the remote load generator (bench/loadgen-agent.mjs). */
async function agent(path, body) {
  const res = await fetch(`${loadgenUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const out = await res.json().catch(() => ({ error: `answer ${res.status} is not JSON` }));
  if (!res.ok) throw new Error(`loadgen agent ${loadgenUrl}${path}: ${out.error ?? res.status}`);
  return out;
}

async function redisCpuSeconds(redis) {
  const info = await redis.info('cpu');
  const get = (k) => Number(info.match(new RegExp(`^${k}:([0-9.]+)`, 'm'))?.[1] ?? NaN);
  return get('used_cpu_user') + get('used_cpu_sys');
}

/** Busy CPU seconds of the whole machine so far (all cores), from /proc/stat; NaN elsewhere. */
function machineBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal …: busy is everything but idle and iowait.
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
    return busy / 100; // USER_HZ
  } catch {
    return NaN;
  }
}

/** Waits (up to `maxSeconds`) for a second in which other processes use under `limit` cores. */
async function waitQuiet(server, redis, maxSeconds, limit = NOISY) {
  const t0 = performance.now();
  let others = NaN;
  for (;;) {
    const a = { machine: machineBusySeconds(), server: await server.cpu(), redis: await redisCpuSeconds(redis), me: process.cpuUsage() };
    await new Promise((r) => setTimeout(r, 1000));
    const b = { machine: machineBusySeconds(), server: await server.cpu(), redis: await redisCpuSeconds(redis), me: process.cpuUsage() };
    const ours = cpuShare(a.server, b.server, 1) + (b.redis - a.redis) + cpuShare(a.me, b.me, 1);
    others = Math.max(0, b.machine - a.machine - ours);
    if (!(others >= limit) || (performance.now() - t0) / 1000 >= maxSeconds) break;
  }
  return { others, waited: (performance.now() - t0) / 1000 - 1 };
}

/** Waits until the outbox stream is empty (the relay has caught up), up to `maxSeconds`. */
async function waitOutboxEmpty(redis, outboxKey, maxSeconds) {
  const t0 = performance.now();
  while ((await redis.xlen(outboxKey)) > 0 && (performance.now() - t0) / 1000 < maxSeconds) {
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Drives the server for `seconds`; returns status counts, exact latency percentiles and CPU shares. */
async function drive(server, seconds, redis, rate) {
  const lat = new Samples();
  // The same latencies by second of the window: a tail spread over the run or a few bad seconds.
  const bySecond = [];
  const status = {};
  const reqs = server.requests;
  // Enough for the phase at 1.5× the best rate seen so far against this server (at least 6,000/s).
  // (phase() has signed this drive's requests already; this only tops up if it has not.)
  await reqs.prepare(reqs.cycle ? 20_000 : Math.ceil(seconds * Math.max(6000, 1.5 * (server.bestRps ?? 0), rate ?? 0)));
  const late0 = reqs.builtLate;
  const main0 = await server.mainThreadCpu();
  await server.ask('eld-reset');
  await redis.config('SET', 'latency-monitor-threshold', '10');
  await redis.latency('RESET');
  const cpu0 = { me: process.cpuUsage(), server: await server.cpu(), redis: await redisCpuSeconds(redis), machine: machineBusySeconds() };
  const t0 = performance.now();
  // What Redis was doing, by second: an AOF rewrite (a forked child writing the whole dataset)
  // takes a core from the server and Redis while it runs; and the relay's backlog (outbox
  // entries not yet in BullMQ).
  const rewriting = [];
  const backlog = [];
  const sampler = setInterval(() => {
    const sec = Math.floor((performance.now() - t0) / 1000);
    void redis.info('persistence').then((info) => {
      if (/aof_rewrite_in_progress:1/.test(info)) rewriting[sec] = true;
    }, () => undefined);
    if (server.outboxKey) void redis.xlen(server.outboxKey).then((n) => (backlog[sec] = n), () => undefined);
  }, 250);
  const answer = (code, ms, sec) => {
    status[code] = (status[code] ?? 0) + 1;
    if (code >= 200 && code < 300) {
      lat.push(ms);
      (bySecond[sec] ??= new Samples(1 << 12)).push(ms);
    }
  };
  let result;
  if (loadgenUrl) {
    result = await agent('/drive', { url: server.url, connections: cfg.connections, seconds, rate: rate ?? null });
    const a = result.answers;
    for (let i = 0; i < a.status.length; i++) answer(a.status[i], a.ms[i], a.sec[i]);
    reqs.builtLate += result.builtLate;
    ids.raise(result.nextId);
  } else {
    result = await load({
      url: server.url,
      connections: cfg.connections,
      seconds,
      rate,
      next: () => reqs.next(),
      onAnswer: (code, ms) => answer(code, ms, Math.floor((performance.now() - t0) / 1000)),
    });
  }
  const wall = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const cpu1 = { me: process.cpuUsage(), server: await server.cpu(), redis: await redisCpuSeconds(redis), machine: machineBusySeconds() };
  const ours = cpuShare(cpu0.server, cpu1.server, wall) + (cpu1.redis - cpu0.redis) / wall + cpuShare(cpu0.me, cpu1.me, wall);
  const main1 = await server.mainThreadCpu();
  const eld = await server.ask('eld');
  // Redis's own record of events that took ≥ 10 ms (command, fork, AOF fsync/write…) in this window.
  const redisStalls = ((await redis.latency('LATEST')) ?? []).map(([event, , last, max]) => ({ event, last, max }));
  const ok = lat.n;
  const p = lat.percentiles([50, 90, 99, 99.9]);
  if (rate === undefined) server.bestRps = Math.max(server.bestRps ?? 0, ok / result.seconds);
  return {
    seconds: result.seconds,
    rate,
    ok,
    rps: ok / result.seconds,
    p50: p[50],
    p90: p[90],
    p99: p[99],
    p999: p[99.9],
    max: p.max,
    mean: p.mean,
    p99BySecond: Array.from(bySecond, (x) => (x ? x.percentiles([99])[99] : NaN)),
    aofRewriteSeconds: Array.from(rewriting, (x, i) => (x ? i : -1)).filter((i) => i >= 0),
    outboxBySecond: server.outboxKey ? Array.from(backlog, (x) => x ?? NaN) : null,
    status,
    non2xx: Object.entries(status).reduce((n, [c, k]) => n + (Number(c) >= 300 || Number(c) < 200 ? k : 0), 0),
    errors: result.errors,
    builtLate: reqs.builtLate - late0,
    eventLoopDelay: { p50: eld.p50, p99: eld.p99, max: eld.max },
    // The main thread over the window: busy (event-loop utilisation), and runnable but waiting for a core.
    mainThread: { utilisation: eld.utilisation ?? NaN, runQueueWait: eld.runQueueWait ?? NaN },
    redisStalls,
    cpu: {
      server: cpuShare(cpu0.server, cpu1.server, wall),
      // The server's main thread alone (the rest: the relay thread, V8's GC helpers, libuv's pool).
      serverMain: main0 && main1 ? cpuShare(main0, main1, wall) : NaN,
      redis: (cpu1.redis - cpu0.redis) / wall,
      // On another machine with --loadgen: the agent's own figure (this process then only waits).
      loadgen: loadgenUrl ? result.cores : cpuShare(cpu0.me, cpu1.me, wall),
      // Everything else on the machine (other users' builds, tests…), in cores; noise indicator.
      others: Math.max(0, (cpu1.machine - cpu0.machine) / wall - ours),
    },
  };
}

async function phase(server, redis, { profileFile, settle, rate } = {}) {
  const drives = [];
  let measured;
  for (let attempt = 0; ; attempt++) {
    // Measure again from the same state: e.g. the relay has drained the previous attempt's backlog.
    if (attempt > 0 && settle) await settle();
    if (cfg.quietWait > 0) {
      const q = await waitQuiet(server, redis, cfg.quietWait);
      if (q.others >= NOISY) process.stdout.write(` [machine not quiet after ${cfg.quietWait} s: others use ${f2(q.others)} cores]`);
      else if (q.waited >= 1) process.stdout.write(` [waited ${q.waited.toFixed(0)} s for a quiet machine]`);
    }
    // Sign the warm-up's and the measured window's requests now, so that the window follows the
    // warm-up at once: a pause of a second or two to sign them in between would let the relay
    // drain and V8 shrink the heap while idle, and the window would start from that, not warm.
    if (!server.requests.cycle) await server.requests.prepare(Math.ceil((cfg.warmup + cfg.duration) * Math.max(7000, 1.5 * (server.bestRps ?? 0), rate ?? 0)));
    if (cfg.warmup > 0) drives.push(await drive(server, cfg.warmup, redis, rate));
    if (profileFile) await server.ask('profile-start');
    measured = await drive(server, cfg.duration, redis, rate);
    if (profileFile) await server.ask('profile-stop', { file: profileFile });
    drives.push(measured);
    measured.attempts = attempt + 1;
    if (!(measured.cpu.others >= NOISY) || attempt >= cfg.retryNoisy) break;
    process.stdout.write(` [noisy: other processes used ${f2(measured.cpu.others)} cores, measuring again]`);
  }
  measured.noisy = measured.cpu.others >= NOISY;
  return { measured, drives };
}

// ---------------------------------------------------------------------------------------------
// Hangar's own view: /metrics (server-side counts) and the BullMQ queue

async function scrape(url) {
  const text = await (await fetch(`${url}/metrics`)).text();
  const results = {};
  for (const m of text.matchAll(/^hangar_webhook_deliveries_total\{result="([^"]+)"\} (\S+)$/gm)) results[m[1]] = Number(m[2]);
  const sum = Number(text.match(/^hangar_intake_duration_seconds_sum\{result="created"\} (\S+)$/m)?.[1] ?? NaN);
  const count = Number(text.match(/^hangar_intake_duration_seconds_count\{result="created"\} (\S+)$/m)?.[1] ?? NaN);
  return { results, handlerMeanMs: (1000 * sum) / count };
}

async function queued(queue) {
  const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'paused', 'active', 'completed', 'failed');
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** Waits until BullMQ holds `expected` jobs for the pool, while the relay makes progress. */
async function waitForRelay(queue, redis, outboxKey, expected, server) {
  const cpu0 = await server.cpu();
  const redisCpu0 = await redisCpuSeconds(redis);
  const t0 = performance.now();
  const atEnd = { enqueued: await queued(queue), outbox: await redis.xlen(outboxKey) };
  let last = atEnd.enqueued;
  let lastProgress = t0;
  let enqueued = last;
  for (;;) {
    enqueued = await queued(queue);
    const now = performance.now();
    if (enqueued !== last) {
      last = enqueued;
      lastProgress = now;
    }
    if (enqueued >= expected) break;
    if (now - lastProgress > 10_000 || now - t0 > cfg.drainTimeout * 1000) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const drainSeconds = (performance.now() - t0) / 1000;
  const cpu1 = await server.cpu();
  const redisCpu1 = await redisCpuSeconds(redis);
  const outboxLeft = await redis.xlen(outboxKey);
  const moved = enqueued - atEnd.enqueued;
  // Only the relay works in the control once the load has stopped: its cost per job.
  const cpuUsPerJob = moved > 0 ? ((cpu1.user - cpu0.user + cpu1.system - cpu0.system) / moved) : NaN;
  const redisUsPerJob = moved > 0 ? ((redisCpu1 - redisCpu0) * 1e6) / moved : NaN;
  return { atEnd, enqueued, drainSeconds, outboxLeft, moved, rate: moved / drainSeconds, cpuUsPerJob, redisUsPerJob };
}

// ---------------------------------------------------------------------------------------------
// One run

async function machine() {
  const redisVersion = (await import('node:child_process'))
    .execFileSync('redis-server', ['--version'], { encoding: 'utf8' })
    .match(/v=(\S+)/)?.[1];
  const model = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpus()[0]?.model ?? '?';
  return { nproc: cpus().length, cpu: model.trim(), node: process.version, redis: redisVersion ?? '?' };
}

async function oneRun(index, profDir) {
  const tmp = mkdtempSync(join(tmpdir(), 'hangar-bench-'));
  cleanups.push(async () => rmSync(tmp, { recursive: true, force: true }));

  const lr = await startLocalRedis({ appendfsync: 'everysec', persistence: true });
  cleanups.push(() => lr.dispose());
  const redis = new Redis(lr.url, { maxRetriesPerRequest: null });
  cleanups.push(async () => redis.disconnect());
  const [, appendonly, , appendfsync, , policy] = [
    ...(await redis.config('GET', 'appendonly')),
    ...(await redis.config('GET', 'appendfsync')),
    ...(await redis.config('GET', 'maxmemory-policy')),
  ];

  // Config and secret files, as test/helpers/control.ts writes them.
  const prefix = `bench${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  writeFileSync(join(tmp, 'secret'), SECRET, { mode: 0o600 });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  writeFileSync(join(tmp, 'app.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const configFile = join(tmp, 'hangar.yaml');
  writeFileSync(
    configFile,
    `github:
  apiUrl: http://127.0.0.1:1
  appId: 1
  privateKeyFile: ${tmp}/app.pem
  webhookSecretFile: ${tmp}/secret
redis: {url: "${lr.url}", prefix: ${prefix}}
control: {host: "${opt.listen}", port: 0, bodyLimitBytes: 65536, private: {listen: "127.0.0.1:0"}}
policy: {repositories: ["acme/*"]}
dashboard: {enabled: false}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
log: {level: silent}
`,
  );

  const hangar = await startServer('hangar', [configFile]);
  const bare = await startServer('bare');
  hangar.requests = requestsFor(hangar.url);
  bare.requests = requestsFor(bare.url, { cycle: true });

  console.log(`\nrun ${index}/${cfg.runs}: redis ${lr.url} (appendonly=${appendonly}, appendfsync=${appendfsync}, maxmemory-policy=${policy}), prefix ${prefix}`);
  console.log(`  bare   ${bare.url} (pid ${bare.pid})   hangar ${hangar.url} (pid ${hangar.pid})`);

  // Bare first, then stop it: the control's relay keeps working after its load ends and must
  // not steal CPU from the baseline.
  process.stdout.write('  bare Fastify: warm-up, measuring…');
  const b = await phase(bare, redis);
  await bare.stop();
  console.log(' done');
  // Redis's own per-command accounting covers the Hangar phase and the relay drain only.
  await redis.config('RESETSTAT');
  hangar.outboxKey = `${prefix}:outbox`;
  process.stdout.write('  Hangar control: warm-up, measuring…');
  const h = await phase(hangar, redis, {
    profileFile: profDir && join(profDir, `hangar-run${index}-${process.pid}.cpuprofile`),
    settle: () => waitOutboxEmpty(redis, `${prefix}:outbox`, cfg.drainTimeout),
  });
  console.log(' done');

  // The outbox relay after the load: how far behind it was, and how long it took to catch up.
  // (While the intake is busy the relay moves one batch per 200 ms; see src/queue/outbox.ts.)
  const queue = new Queue(`pool-${POOL}`, { connection: redis, prefix });
  cleanups.push(() => queue.close());
  const createdAfterLoad = (await scrape(hangar.metricsUrl)).results.created ?? 0;
  const relay = await waitForRelay(queue, redis, `${prefix}:outbox`, createdAfterLoad, hangar);
  const warm = h.drives.length >= 2 ? h.drives[h.drives.length - 2] : { ok: 0, seconds: 0 };
  // End to end for the last attempt (warm-up + measured, back to back; earlier attempts were drained first).
  relay.endToEnd = (warm.ok + h.measured.ok) / (warm.seconds + h.measured.seconds + relay.drainSeconds);

  let fixed;
  if (cfg.rate > 0) {
    process.stdout.write(`  Hangar control at a fixed ${f0(cfg.rate)}/s: warm-up, measuring…`);
    fixed = await phase(hangar, redis, { rate: cfg.rate, settle: () => waitOutboxEmpty(redis, `${prefix}:outbox`, cfg.drainTimeout) });
    console.log(' done');
  }

  // Server-side view, then the outbox relay check over everything.
  const server = await scrape(hangar.metricsUrl);
  const created = server.results.created ?? 0;
  const other = Object.entries(server.results).filter(([k, v]) => k !== 'created' && v > 0);
  const sum = (p, f) => p.drives.reduce((n, d) => n + f(d), 0);
  const hangarDrives = [...h.drives, ...(fixed?.drives ?? [])];
  const clientOk = hangarDrives.reduce((n, d) => n + d.ok, 0);
  const inFlight = hangarDrives.length * cfg.connections;
  // Also without --rate: the relay deletes a batch's outbox entries after adding them to BullMQ,
  // so the last batch can still be in the stream when BullMQ's count is already complete.
  await waitOutboxEmpty(redis, `${prefix}:outbox`, cfg.drainTimeout);
  const finalEnqueued = await queued(queue);
  const outboxLeft = await redis.xlen(`${prefix}:outbox`);
  const info = await redis.info();
  const commands = [];
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    commands.push({ command: m[1], calls: Number(m[2]), usec: Number(m[3]) });
  }
  commands.sort((a, b) => b.usec - a.usec);
  const infoNum = (k) => Number(info.match(new RegExp(`^${k}:([0-9.]+)`, 'm'))?.[1] ?? NaN);
  const redisState = {
    aofRewrites: infoNum('aof_rewrites'),
    aofMB: infoNum('aof_current_size') / 2 ** 20,
    usedMemoryMB: infoNum('used_memory') / 2 ** 20,
    latestForkUs: infoNum('latest_fork_usec'),
  };
  await hangar.stop();

  const checks = [];
  const check = (ok, text) => checks.push({ ok, text });
  check(sum(b, (d) => d.non2xx) === 0, `bare: every answer 2xx (${fmtStatus(b)})`);
  check(hangarDrives.every((d) => d.non2xx === 0), `Hangar: every answer 2xx (${fmtStatus({ drives: hangarDrives })})`);
  const errs = [...b.drives, ...hangarDrives].reduce((n, d) => n + d.errors, 0); // a timed-out request counts as an error
  check(errs === 0, `no connection errors or timeouts on the client (${errs})`);
  check(
    other.length === 0 && created >= clientOk && created - clientOk <= inFlight,
    `Hangar: every 202 was a new job ("created" on /metrics: ${created}; other results: ${other.map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}; ` +
      `the client saw ${clientOk}; up to ${inFlight} more may have been in flight when a load phase stopped)`,
  );
  check(
    finalEnqueued === created && outboxLeft === 0,
    `outbox relay: BullMQ pool "${POOL}" holds ${finalEnqueued} jobs for ${created} accepted deliveries, outbox left ${outboxLeft} ` +
      `(after the closed-loop load: backlog ${createdAfterLoad - relay.atEnd.enqueued}, drained in ${relay.drainSeconds.toFixed(1)} s)`,
  );
  if (fixed) {
    const m = fixed.measured;
    check(m.rps >= 0.97 * cfg.rate, `Hangar kept up with the fixed rate: ${f0(m.rps)} of ${f0(cfg.rate)} deliveries/s answered`);
  }
  return { index, prefix, bare: b, hangar: h, fixed, server, relay, created, createdAfterLoad, checks, redisSettings: { appendonly, appendfsync, policy }, redisState, commands };
}

const fmtStatus = (p) => {
  const all = {};
  for (const d of p.drives) for (const [c, n] of Object.entries(d.status)) all[c] = (all[c] ?? 0) + n;
  return Object.entries(all).map(([c, n]) => `${c}×${n}`).join(', ') || 'no answers';
};

// ---------------------------------------------------------------------------------------------
// Report

const f0 = (x) => Math.round(x).toLocaleString('en-US');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const pct = (x) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)} %` : '–');
const pad = (s, n) => String(s).padStart(n);

function table(rows) {
  const head = ['', 'deliveries/s', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'CPU srv', 'redis', 'loadgen', 'others'];
  const w = [22, 13, 8, 8, 8, 8, 8, 6, 8, 7];
  const line = (cells) => cells.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : pad(c, w[i]))).join(' ');
  return [line(head), ...rows.map(line)].join('\n');
}

function rowOf(name, m) {
  return [name, f0(m.rps), f2(m.p50), f2(m.p90), f2(m.p99), f2(m.max), f2(m.cpu.server), f2(m.cpu.redis), f2(m.cpu.loadgen), f2(m.cpu.others)];
}

function verdict(rps, p99) {
  const pass = rps >= TARGET.rps && p99 <= TARGET.p99Ms;
  return {
    pass,
    line:
      `target (Hangar ≥ ${f0(TARGET.rps)} deliveries/s and p99 ≤ ${TARGET.p99Ms} ms on a 2-core machine; this one has ${cpus().length}): ` +
      `${pass ? 'PASS' : 'FAIL'} — ${f0(rps)}/s (${rps >= TARGET.rps ? 'ok' : 'short'}), p99 ${f2(p99)} ms (${p99 <= TARGET.p99Ms ? 'ok' : 'over'})`,
  };
}

function report(r) {
  const b = r.bare.measured;
  const h = r.hangar.measured;
  const rl = r.relay;
  console.log('');
  const rows = [rowOf('bare Fastify (202)', b), rowOf('Hangar intake (202)', h)];
  if (r.fixed) rows.push(rowOf(`Hangar at ${f0(cfg.rate)}/s fixed`, r.fixed.measured));
  console.log(table(rows));
  console.log(`${'Hangar / bare'.padEnd(22)} ${pad(`${f2(h.rps / b.rps)}×`, 13)}   p99 ${f2(h.p99 / b.p99)}×   (p99.9: bare ${f2(b.p999)} ms, Hangar ${f2(h.p999)} ms)`);
  console.log(`  CPU columns: cores used during the measured ${cfg.duration} s by the server child, redis-server, the load generator, and every other process on the machine (noise)`);
  console.log(`  Hangar handler time (its own histogram, mean, "created"): ${f2(r.server.handlerMeanMs)} ms; control CPU per delivery: ${f0((h.cpu.server * 1e6) / h.rps)} µs`);
  console.log(
    `  outbox relay (paced while the intake is busy): ${f0(rl.atEnd.enqueued)} of ${f0(r.createdAfterLoad)} jobs in BullMQ when the load stopped; ` +
      `the other ${f0(rl.moved)} in ${rl.drainSeconds.toFixed(1)} s after (${f0(rl.rate)} jobs/s; control CPU ${f0(rl.cpuUsPerJob)} µs, redis CPU ${f0(rl.redisUsPerJob)} µs per job)`,
  );
  console.log(`  end to end (webhook answered → job in BullMQ, the last warm-up + measured load and the drain after it): ${f0(rl.endToEnd)} jobs/s`);
  const rs = r.redisState;
  console.log(
    `  redis afterwards: ${f0(rs.usedMemoryMB)} MB used, AOF ${f0(rs.aofMB)} MB, ${rs.aofRewrites} AOF rewrite(s) during the run` +
      (rs.aofRewrites > 0 ? ` (last fork ${f2(rs.latestForkUs / 1000)} ms)` : ''),
  );
  for (const [name, m] of [['bare', b], ['Hangar', h], ...(r.fixed ? [[`Hangar at ${f0(cfg.rate)}/s`, r.fixed.measured]] : [])]) {
    const e = m.eventLoopDelay;
    const stalls = m.redisStalls.map((x) => `${x.event} max ${x.max} ms`).join(', ') || 'none';
    console.log(`  ${name}: server main thread ${f2(m.cpu.serverMain)} cores, other threads ${f2(m.cpu.server - m.cpu.serverMain)}; main-thread event-loop delay p50 ${f2(e.p50)} / p99 ${f2(e.p99)} / max ${f2(e.max)} ms; redis stalls ≥ 10 ms: ${stalls}`);
    console.log(
      `    main thread: event loop busy ${pct(m.mainThread.utilisation)} of the window; runnable but waiting for a core ${pct(m.mainThread.runQueueWait)} (both cores taken by redis, the load generator or other threads)`,
    );
    const marks = new Set(m.aofRewriteSeconds);
    console.log(
      `    p99 by second of the measured window (ms; * = an AOF rewrite ran in that second): ${m.p99BySecond.map((x, i) => `${x.toFixed(1)}${marks.has(i) ? '*' : ''}`).join(' ')}`,
    );
    if (m.outboxBySecond) console.log(`    relay backlog at the end of each second (outbox entries): ${m.outboxBySecond.map((x) => f0(x)).join(' ')}`);
  }
  const perDelivery = (us) => f2(us / Math.max(1, r.created));
  const total = r.commands.reduce((n, c) => n + c.usec, 0);
  console.log(
    `  redis command time per accepted delivery (INFO commandstats, load + relay; excludes networking and AOF): ${perDelivery(total)} µs — ` +
      r.commands.slice(0, 6).map((c) => `${c.command} ${perDelivery(c.usec)} (${f2(c.calls / Math.max(1, r.created))} calls)`).join(', '),
  );
  const noisy = [['bare', b], ['Hangar', h]].filter(([, m]) => m.noisy).map(([n, m]) => `${n} (${f2(m.cpu.others)} cores)`);
  if (noisy.length > 0) console.log(`  NOISY: other processes kept using ≥ ${NOISY} cores while measuring ${noisy.join(', ')}; those figures are pessimistic`);
  for (const c of r.checks) console.log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.text}`);
  console.log(`  ${verdict(h.rps, h.p99).line}`);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const m = await machine();
  console.log('Hangar webhook intake benchmark (bench/intake)');
  console.log(`machine: ${m.nproc} × ${m.cpu}, node ${m.node}, redis-server ${m.redis}`);
  console.log(
    `redis: our own redis-server (startLocalRedis), persistence ON: AOF appendonly=yes, appendfsync=everysec, maxmemory-policy=noeviction`,
  );
  console.log(
    `load: bench/lib/loadgen.mjs ${loadgenUrl ? `in the agent at ${loadgenUrl} (bench/loadgen-agent.mjs; its CPU is that machine's)` : 'in this process'} (requests signed before the clock starts), ${cfg.connections} connections, ${cfg.warmup} s warm-up + ${cfg.duration} s measured per target; ` +
      `each request a distinct signed workflow_job "queued" delivery (${template.bytes} bytes, unique X-GitHub-Delivery and workflow job id)`,
  );
  console.log(`servers: separate child processes; bare Fastify first, then the Hangar control (buildControl from ${dist}, log silent)`);

  let profDir;
  if (opt['cpu-prof']) {
    if (opt['prof-dir']) {
      profDir = resolve(opt['prof-dir']);
      mkdirSync(profDir, { recursive: true });
    } else {
      profDir = mkdtempSync(join(tmpdir(), 'hangar-bench-prof-'));
      cleanups.push(async () => rmSync(profDir, { recursive: true, force: true }));
    }
  }

  const runs = [];
  for (let i = 1; i <= cfg.runs; i++) {
    const mark = cleanups.length;
    try {
      const r = await oneRun(i, profDir);
      runs.push(r);
      report(r);
    } finally {
      // Undo this run's resources now (servers, redis, temp dir), not only at exit.
      while (cleanups.length > mark) {
        const undo = cleanups.pop();
        await undo().catch((err) => console.error(`cleanup: ${err?.message ?? err}`));
      }
    }
  }

  const med = (sel) => median(runs.map(sel));
  const summary = {
    bare: { rps: med((r) => r.bare.measured.rps), p50: med((r) => r.bare.measured.p50), p90: med((r) => r.bare.measured.p90), p99: med((r) => r.bare.measured.p99) },
    hangar: { rps: med((r) => r.hangar.measured.rps), p50: med((r) => r.hangar.measured.p50), p90: med((r) => r.hangar.measured.p90), p99: med((r) => r.hangar.measured.p99) },
    endToEnd: med((r) => r.relay.endToEnd),
    rpsRatio: med((r) => r.hangar.measured.rps / r.bare.measured.rps),
    p99Ratio: med((r) => r.hangar.measured.p99 / r.bare.measured.p99),
  };
  if (runs.length > 1) {
    console.log(`\nmedian of ${runs.length} runs (each figure its own median):`);
    console.log(table([
      ['bare Fastify (202)', f0(summary.bare.rps), f2(summary.bare.p50), f2(summary.bare.p90), f2(summary.bare.p99), '', '', '', '', ''],
      ['Hangar intake (202)', f0(summary.hangar.rps), f2(summary.hangar.p50), f2(summary.hangar.p90), f2(summary.hangar.p99), '', '', '', '', ''],
    ]));
    console.log(`${'Hangar / bare'.padEnd(22)} ${pad(`${f2(summary.rpsRatio)}×`, 13)}   p99 ${f2(summary.p99Ratio)}×`);
    console.log(`Hangar end to end (answered → in BullMQ, load and drain): ${f0(summary.endToEnd)} jobs/s`);
    console.log(`Hangar per run: ${runs.map((r) => `${f0(r.hangar.measured.rps)}/s p99 ${f2(r.hangar.measured.p99)} ms${r.hangar.measured.noisy ? ' (noisy)' : ''}`).join(' | ')}`);
    console.log(`bare per run:   ${runs.map((r) => `${f0(r.bare.measured.rps)}/s p99 ${f2(r.bare.measured.p99)} ms${r.bare.measured.noisy ? ' (noisy)' : ''}`).join(' | ')}`);
  }
  const v = verdict(summary.hangar.rps, summary.hangar.p99);
  const allChecks = runs.flatMap((r) => r.checks);
  const checksOk = allChecks.every((c) => c.ok);
  console.log(`\nchecks: ${checksOk ? 'all passed' : `${allChecks.filter((c) => !c.ok).length} FAILED`}`);
  console.log(runs.length > 1 ? `${v.line} (medians)` : v.line);

  if (profDir) {
    for (const file of readdirSync(profDir).filter((f) => f.endsWith(`-${process.pid}.cpuprofile`))) {
      const what = 'during the measured load (main thread only; the relay has a thread of its own); the profiler costs a few % of throughput';
      console.log(`\nCPU profile of the control child ${what} (${join(profDir, file)}):`);
      console.log(summarise(JSON.parse(readFileSync(join(profDir, file), 'utf8')), 20));
    }
    if (opt['prof-dir']) console.log(`\nprofiles kept in ${profDir} (open in Chrome DevTools → Performance, or speedscope)`);
  }

  if (opt.json) {
    writeFileSync(opt.json, JSON.stringify({ machine: m, config: cfg, target: TARGET, runs, summary, pass: v.pass, checksOk }, null, 2));
    console.log(`results written to ${opt.json}`);
  }
  if (!checksOk) return 1;
  if (opt.strict && !v.pass) return 3;
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  console.error(`\nbench/intake failed: ${err?.stack ?? err}`);
  code = 1;
} finally {
  await cleanup();
}
process.exit(code);
