#!/usr/bin/env node
// bench/dashboard: latency of the dashboard's JSON API and of its SSE stream, against the real
// control, 100 hosts and 10,000 job records, with a same-run baseline (bare node:http answering
// the same bytes). Run with `npm run bench:dashboard` (builds first), or after a build:
// `node bench/dashboard.mjs [--duration 10] [--runs 3]`. See docs/benchmarks.md ("Dashboard").
//
// Layout (each its own process, so the load generator never shares the server's event loop):
//   this process     seeds Redis through the control's record code (dist/jobs/), sends the 100
//                    hosts' heartbeats through the agents' API every 5 s, drives the closed loops
//                    (bench/lib/loadgen.mjs), opens the SSE pages and drives job transitions
//   redis-server     startLocalRedis(): AOF on, appendfsync everysec, noeviction
//   child "hangar"   buildControl() from dist/: the agents' listener and the dashboard's, 127.0.0.1:0
//   child "bare"     node:http answering each endpoint's bytes as Hangar answered them, no work
import { fork } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { fleetHosts, heartbeats, seedJobs } from './dashboard-lib/seed.mjs';
import { sseRound } from './dashboard-lib/sse.mjs';
import { drive } from './lib/loadgen.mjs';
import { Samples } from './lib/stats.mjs';
import { numericOptions } from './lib/cli.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const TARGET_P99_MS = 50;

const USAGE = `usage: node bench/dashboard.mjs [options]   (npm run bench:dashboard -- [options] builds first)
  --duration S        measured seconds per endpoint and target (default 10)
  --warmup S          unmeasured warm-up seconds before each (default 2)
  --connections N     concurrent clients of the closed loop (default 4)
  --hosts N           hosts in the config (default 100; one in twenty sends no heartbeat)
  --jobs N            job records seeded (default 10000)
  --sse-clients N     open pages on /api/v1/stream (default 50)
  --sse-rate R        job transitions per second while they are open (default 50)
  --sse-seconds S     how long transitions are driven (default 10)
  --runs N            independent runs (fresh redis, seed and servers each); the median run is printed last (default 1)
  --json FILE         also write every run's results as JSON
  --dist DIR          the compiled Hangar to measure (default: dist/ of this checkout)
  --strict            exit 3 when a target is missed (default: report only)
exit status: 0 ok, 1 failed (a non-2xx answer, client errors, a missed SSE event), 3 target missed with --strict`;

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' }, warmup: { type: 'string', default: '2' }, connections: { type: 'string', default: '4' },
    hosts: { type: 'string', default: '100' }, jobs: { type: 'string', default: '10000' },
    'sse-clients': { type: 'string', default: '50' }, 'sse-rate': { type: 'string', default: '50' }, 'sse-seconds': { type: 'string', default: '10' },
    runs: { type: 'string', default: '1' }, json: { type: 'string' }, dist: { type: 'string' }, strict: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
const num = numericOptions(opt, USAGE);
const cfg = {
  duration: num('duration', 1), warmup: num('warmup', 0), connections: num('connections', 1), hosts: num('hosts', 20), jobs: num('jobs', 500),
  sseClients: num('sse-clients', 1), sseRate: num('sse-rate', 1), sseSeconds: num('sse-seconds', 1), runs: num('runs', 1),
};

const dist = resolve(opt.dist ?? join(here, '..', 'dist'));
for (const f of ['main/control-app.js', 'main/local-redis.js', 'jobs/intake-record.js', 'jobs/transition.js']) {
  if (!existsSync(join(dist, f))) {
    console.error(`${join(dist, f)} is missing: build first (npm run build), or use npm run bench:dashboard`);
    process.exit(1);
  }
}
const fromDist = (f) => import(pathToFileURL(join(dist, f)).href);
const { startLocalRedis } = await fromDist('main/local-redis.js');
const { JobStore } = await fromDist('jobs/intake-record.js');
const { jobMoves } = await fromDist('jobs/transition.js');
const { keys } = await fromDist('queue/keys.js');
const { CONTROL_NODE_FLAGS = [] } = await fromDist('config/runtime.js').catch(() => ({}));

// ---------------------------------------------------------------------------------------------
// Cleanup: everything started registers its undo here; run on success, failure and signals.
const cleanups = [];
async function cleanup() {
  while (cleanups.length > 0) {
    const undo = cleanups.pop();
    try {
      await undo();
    } catch (err) {
      console.error(`cleanup: ${err?.message ?? err}`);
    }
  }
}
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.on(sig, () => {
    console.error(`\n${sig}: stopping servers and redis…`);
    void cleanup().finally(() => process.exit(code));
  });
}

async function startServer(mode, args = []) {
  const child = fork(join(here, 'dashboard-server.mjs'), [mode, ...args], {
    env: { ...process.env, HANGAR_BENCH_DIST: dist },
    // The control's node flags, as its unit starts it; HANGAR_BENCH_SERVER_ARGS replaces them (e.g. "--cpu-prof").
    execArgv: process.env.HANGAR_BENCH_SERVER_ARGS !== undefined ? process.env.HANGAR_BENCH_SERVER_ARGS.split(' ').filter(Boolean) : [...CONTROL_NODE_FLAGS],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (child.connected) child.send({ type: 'stop' });
    else child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  };
  cleanups.push(stop);
  const ready = await new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error(`${mode} server did not start within 60 s`)), 60_000);
    child.on('message', (m) => {
      if (m?.type === 'ready') ok(m);
      else if (m?.type === 'failed') fail(new Error(`${mode} server failed to start: ${m.message}`));
      if (m?.type === 'ready' || m?.type === 'failed') clearTimeout(t);
    });
    void exited.then(({ code, signal }) => fail(new Error(`${mode} server exited during start (code ${code}, signal ${signal})`)));
  });
  let seq = 0;
  const ask = (type, extra = {}) => new Promise((ok, fail) => {
    const id = ++seq;
    const on = (m) => {
      if (m?.type !== type || m.id !== id) return;
      child.off('message', on);
      ok(m);
    };
    child.on('message', on);
    void exited.then(() => fail(new Error(`${mode} server exited`)));
    child.send({ type, id, ...extra });
  });
  return { mode, url: ready.url, dashboard: ready.dashboard, pid: child.pid, ask, stop };
}

// ---------------------------------------------------------------------------------------------
// The closed loop against one endpoint.

function requestsFor(base, path, token, ids) {
  const { host } = new URL(base);
  const auth = token ? `authorization: Bearer ${token}\r\n` : '';
  const heads = (ids ?? [null]).map((id) => Buffer.from(`GET ${id === null ? path : path.replace(':id', String(id))} HTTP/1.1\r\nhost: ${host}\r\n${auth}accept: application/json\r\n\r\n`));
  let i = 0;
  return () => heads[i++ % heads.length];
}

async function measure(target, ep, token) {
  const next = requestsFor(target.dashboard, ep.path, ep.auth ? token : null, ep.ids);
  const statuses = {};
  if (cfg.warmup > 0) await drive({ url: target.dashboard, connections: cfg.connections, seconds: cfg.warmup, next, onAnswer: () => undefined });
  const lat = new Samples();
  const cpu0 = (await target.ask('cpu')).usage;
  const r = await drive({
    url: target.dashboard, connections: cfg.connections, seconds: cfg.duration, next,
    onAnswer: (status, ms) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      lat.push(ms);
    },
  });
  const cpu1 = (await target.ask('cpu')).usage;
  const cpuMs = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / 1000;
  return { ...lat.percentiles([50, 95, 99]), rps: r.answered / r.seconds, answered: r.answered, errors: r.errors, statuses, cpuMsPerRequest: cpuMs / Math.max(1, r.answered) };
}

// ---------------------------------------------------------------------------------------------
// One run.

async function oneRun(index) {
  const tmp = mkdtempSync(join(tmpdir(), 'hangar-bench-dash-'));
  cleanups.push(async () => rmSync(tmp, { recursive: true, force: true }));
  const lr = await startLocalRedis({ appendfsync: 'everysec', persistence: true });
  cleanups.push(() => lr.dispose());
  const redis = new Redis(lr.url, { maxRetriesPerRequest: null });
  cleanups.push(async () => redis.disconnect());

  const prefix = `benchdash${randomBytes(3).toString('hex')}`;
  const token = randomBytes(24).toString('base64url');
  writeFileSync(join(tmp, 'operator-token'), `${token}\n`, { mode: 0o600 });
  writeFileSync(join(tmp, 'secret'), randomBytes(24).toString('hex'), { mode: 0o600 });
  writeFileSync(join(tmp, 'app.pem'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const hosts = fleetHosts(cfg.hosts);
  const sha = (s) => createHash('sha256').update(s).digest('hex');
  const configFile = join(tmp, 'hangar.yaml');
  writeFileSync(configFile, `github:
  apiUrl: http://127.0.0.1:1
  appId: 1
  privateKeyFile: ${tmp}/app.pem
  webhookSecretFile: ${tmp}/secret
redis: {url: "${lr.url}", prefix: ${prefix}}
control: {host: 127.0.0.1, port: 0, bodyLimitBytes: 65536, private: {listen: "127.0.0.1:0"}}
policy: {repositories: ["acme/*"], cancelRefusedRuns: false}
reconcile: {enabled: false}
dashboard: {listen: "127.0.0.1:0", tokenFile: ${tmp}/operator-token}
pools:
  - {name: build, labels: [self-hosted, linux, x64, build]}
  - {name: large, labels: [self-hosted, linux, x64, large]}
  - {name: deploy, labels: [self-hosted, linux, x64, deploy], deploy: {repositories: [acme/site], branches: [main]}}
hosts:
${hosts.map((h) => `  - {name: ${h.name}, role: ${h.role}, pools: [${h.pools.join(', ')}], tokenSha256: ${sha(h.token)}}`).join('\n')}
log: {level: silent}
`);

  console.log(`\nrun ${index}/${cfg.runs}: redis ${lr.url}, prefix ${prefix}, ${cfg.hosts} hosts, ${cfg.jobs} jobs`);
  const k = keys(prefix);
  const t0 = performance.now();
  const seeded = await seedJobs({ store: new JobStore(redis, k, { deliveryTtlSeconds: 72 * 3600 }), moves: jobMoves(redis, k), hosts, total: cfg.jobs });
  const kinds = Object.entries(seeded.byKind).map(([kind, ids]) => `${kind} ${ids.length}`).join(', ');
  console.log(`  seeded in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${kinds}; events stream ${await redis.xlen(k.events)} entries`);

  const hangar = await startServer('hangar', [configFile]);
  console.log(`  hangar ${hangar.url}, dashboard ${hangar.dashboard} (pid ${hangar.pid})`);
  const beat = () => heartbeats(hangar.url, hosts, seeded);
  const up = await beat();
  // Agents beat every 5 s (agent.ts); so do these, all through the run.
  const beating = setInterval(() => void beat().catch((err) => console.error(`heartbeat: ${err.message}`)), 5000);
  cleanups.push(async () => clearInterval(beating));
  // Three hosts drained by the operator, through the dashboard's own action.
  for (const h of hosts.filter((_, i) => i % 33 === 3)) {
    const r = await fetch(`${hangar.dashboard}/api/v1/hosts/${h.name}/drain`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ why: 'bench' }) });
    if (r.status !== 200) throw new Error(`drain ${h.name}: ${r.status} ${await r.text()}`);
  }

  const details = seeded.details.slice(0, 200);
  const endpoints = [
    { name: 'GET /healthz', path: '/healthz', auth: false },
    { name: 'GET /api/v1/session', path: '/api/v1/session', auth: true },
    { name: 'GET /api/v1/overview', path: '/api/v1/overview', auth: true },
    { name: 'GET /api/v1/jobs/:id', path: '/api/v1/jobs/:id', auth: true, ids: details },
  ];
  // Each endpoint's answer as Hangar gives it now: the bare server's bodies, and the sizes.
  const bodies = {};
  for (const ep of endpoints) {
    const path = ep.ids ? ep.path.replace(':id', String(ep.ids[0])) : ep.path;
    const r = await fetch(`${hangar.dashboard}${path}`, { headers: ep.auth ? { authorization: `Bearer ${token}` } : {} });
    const text = await r.text();
    if (r.status !== 200) throw new Error(`${ep.name}: ${r.status} ${text.slice(0, 200)}`);
    bodies[ep.path] = text;
    ep.bytes = Buffer.byteLength(text);
  }
  const overview = JSON.parse(bodies['/api/v1/overview']);
  console.log(`  overview: ${overview.hosts.length} hosts (${overview.hosts.filter((h) => h.up).length} up, ${overview.hosts.filter((h) => h.drained).length} drained), ${overview.pools.length} pools, ${overview.jobs.length} jobs, ${overview.refusals.length} refusals, batch of ${overview.batch?.total ?? 0}, savings ${overview.savings.jobs} jobs; ${up} heartbeats every 5 s`);

  const bare = await startServer('bare');
  await bare.ask('bodies', { bodies });
  const results = { index, endpoints: [], sse: null, sections: null };
  for (const ep of endpoints) {
    process.stdout.write(`  ${ep.name}: bare…`);
    const b = await measure(bare, ep, token);
    process.stdout.write(' hangar…');
    const h = await measure(hangar, ep, token);
    console.log(` p99 ${h[99].toFixed(1)} ms`);
    results.endpoints.push({ name: ep.name, bytes: ep.bytes, hangar: h, bare: b });
  }
  await bare.stop();
  results.sections = (await hangar.ask('sections', { n: 50 })).ms;

  process.stdout.write(`  SSE: ${cfg.sseClients} pages, ${cfg.sseRate} transitions/s for ${cfg.sseSeconds} s…`);
  const byPool = (pool) => hosts.filter((h) => h.pools.includes(pool) && seeded.upHosts.has(h.name));
  results.sse = await sseRound({
    streamUrl: `${hangar.dashboard}/api/v1/stream`, token, clients: cfg.sseClients, rate: cfg.sseRate, seconds: cfg.sseSeconds,
    moves: jobMoves(redis, k), jobs: seeded.waiting, hosts,
    hostOf: (id, _all, n) => { const hs = byPool(seeded.poolOf.get(id) ?? 'build'); return hs[n % hs.length]; },
  });
  console.log(' done');

  // In reverse: the heartbeats, the control, the connection, redis and its data, the config's dir.
  await cleanup();
  return results;
}

// ---------------------------------------------------------------------------------------------
// Report.

const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-').padStart(6);
function report(r) {
  console.log(`\nrun ${r.index}: closed loop, ${cfg.connections} clients, ${cfg.warmup} s warm-up + ${cfg.duration} s per endpoint; latency in ms as the client saw it`);
  console.log(`  ${'endpoint'.padEnd(22)} ${'bytes'.padStart(7)} ${'req/s'.padStart(7)} ${'p50'.padStart(6)} ${'p95'.padStart(6)} ${'p99'.padStart(6)} ${'max'.padStart(6)} | ${'bare p50'.padStart(8)} ${'p99'.padStart(6)} ${'×p99'.padStart(6)} | cpu ms/req | target p99 ≤ ${TARGET_P99_MS} ms`);
  let ok = true;
  let missed = false;
  for (const e of r.endpoints) {
    const h = e.hangar;
    const pass = h[99] <= TARGET_P99_MS;
    const bad = h.errors > 0 || Object.keys(h.statuses).some((s) => !s.startsWith('2'));
    if (bad) ok = false;
    if (!pass) missed = true;
    console.log(`  ${e.name.padEnd(22)} ${String(e.bytes).padStart(7)} ${h.rps.toFixed(0).padStart(7)} ${f1(h[50])} ${f1(h[95])} ${f1(h[99])} ${f1(h.max)} | ${f1(e.bare[50]).padStart(8)} ${f1(e.bare[99])} ${f1(h[99] / e.bare[99])} | ${h.cpuMsPerRequest.toFixed(2).padStart(10)} | ${pass ? 'PASS' : 'FAIL'}${bad ? ` (answers ${JSON.stringify(h.statuses)}, ${h.errors} errors)` : ''}`);
  }
  console.log(`  the read model's sections, in process (ms per call): ${Object.entries(r.sections).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}`);
  const s = r.sse;
  const all = s.delivered === s.expected && s.failures.length === 0;
  if (!all) ok = false;
  console.log(`  SSE: ${s.clients} pages, ${s.moves} transitions in ${s.driveSeconds.toFixed(1)} s (${(s.moves / s.driveSeconds).toFixed(0)}/s): delivered ${s.delivered} of ${s.expected} ${all ? 'PASS' : `FAIL${s.failures.length ? ` (${s.failures.length} moves refused: ${s.failures.slice(0, 3).join('; ')})` : ''}`}`);
  console.log(`       transition called → frame parsed at a page: p50 ${s.latency[50].toFixed(1)} ms, p99 ${s.latency[99].toFixed(1)} ms, max ${s.latency.max.toFixed(1)} ms (the script's own round trip: p50 ${s.write[50].toFixed(1)}, p99 ${s.write[99].toFixed(1)} ms)`);
  console.log(`       frames: ${Object.entries(s.frames).map(([e, n]) => `${e} ${n}`).join(', ')}; ${(s.bytes / 2 ** 20).toFixed(1)} MiB to the pages`);
  return { ok, missed };
}

async function machine() {
  const model = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpus()[0]?.model ?? '?';
  return `${cpus().length} cores (${model.trim()}), node ${process.version}`;
}

let exit = 0;
try {
  console.log(`bench/dashboard on ${await machine()}; dist ${dist}`);
  const runs = [];
  for (let i = 1; i <= cfg.runs; i++) runs.push(await oneRun(i));
  const verdicts = runs.map(report);
  if (runs.length > 1) {
    // The median run by the overview's p99: its table is the one above with that run's number.
    const p99 = (r) => r.endpoints.find((e) => e.name === 'GET /api/v1/overview').hangar[99];
    const sorted = [...runs].sort((a, b) => p99(a) - p99(b));
    const med = sorted[(sorted.length - 1) >> 1];
    console.log(`\n${runs.length} runs; p99 per run (ms): ${runs[0].endpoints.map((e, j) => `${e.name} ${runs.map((r) => r.endpoints[j].hangar[99].toFixed(1)).join(' / ')}`).join('; ')}; SSE p99 ${runs.map((r) => r.sse.latency[99].toFixed(1)).join(' / ')}`);
    console.log(`median run (by the overview's p99): run ${med.index}`);
    report(med);
  }
  if (opt.json) writeFileSync(opt.json, JSON.stringify({ cfg, runs }, null, 2));
  if (verdicts.some((v) => !v.ok)) exit = 1;
  else if (opt.strict && verdicts.some((v) => v.missed)) exit = 3;
} catch (err) {
  console.error(`\nbench/dashboard failed: ${err?.stack ?? err}`);
  exit = 1;
} finally {
  await cleanup();
}
process.exit(exit);
