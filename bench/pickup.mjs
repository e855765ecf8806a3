#!/usr/bin/env node
// bench/pickup: from a workflow_job webhook's arrival at the control to the guest's runner
// starting, through a whole real installation, against a bare QEMU boot of the same image
// measured in the same run. Run with `npm run bench:pickup` (builds first), or after a build:
// `node bench/pickup.mjs [--jobs 20]`. Needs root (taps, cgroups, nftables). See
// docs/benchmarks.md, "Pickup (bench/pickup)".
//
// Layout, all real processes on this host:
//   redis-server      startLocalRedis(): AOF on, appendfsync everysec, noeviction
//   hangar sim        GitHub, on 10.213.255.254 (added to lo), sends the signed webhooks;
//                     its generate-jitconfig answers after --jit-latency-ms (GitHub's takes a few hundred)
//   hangar control    intake, outbox relay, JIT minting
//   hangar agent      2 slots (--slots), QEMU microVMs under TCG, 256 MiB (--memory), 1 vCPU
//   this process      posts runs to the sim, watches each VM's console.log (poll, 5 ms), boots
//                     the bare QEMU, samples memory, reports
// Jobs go one at a time (the next is posted once the previous VM is gone), alternating with
// the bare boots (H B B H H B …), so both see the same machine and neither queues.
// The agent mints the runner and boots the VM side by side: per job the bench prints the mint,
// the boot (job start → the guest asks for its JIT config) and the pickup from the job's start,
// which should be about max(mint, boot), not mint + boot.
import { closeSync, existsSync, fstatSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { execa } from 'execa';
import { Redis } from 'ioredis';
import { createBare } from './pickup-lib/bare.mjs';
import { logLines, SIM_IP, startFleet } from './pickup-lib/fleet.mjs';
import { ensureTestImage } from './pickup-lib/image.mjs';
import { loadavg1, otherHangar, procMem, readNumber, readText } from './pickup-lib/proc.mjs';
import { mib, ms, summary } from './pickup-lib/stats.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const dist = (p) => pathToFileURL(join(root, 'dist', p)).href;

/** The target: Hangar adds at most this much (percent) over a bare boot, at p50 and at p90. */
const TARGET_PCT = 15;
const SLICE = 'hangar-runners.slice';

const USAGE = `usage: node bench/pickup.mjs [options]   (npm run bench:pickup -- [options] builds first; needs root)
  --jobs N          measured Hangar jobs (default 20)
  --bare N          measured bare boots (default: as many as --jobs)
  --warmup N        unmeasured Hangar jobs and bare boots first (default 1 each)
  --slots N         agent slots (default 2; jobs still go one at a time)
  --memory MIB      guest memory (default 256)
  --vcpus N         guest vCPUs (default 1)
  --jit-latency-ms MS  the sim's generate-jitconfig answers after this long (default 300; GitHub's
                    takes a few hundred ms, the sim's none, which would hide the mint's cost)
  --poll-ms MS      console.log poll interval (default 5)
  --max-load L      wait for the 1-min load average to fall below L before starting (default 1.0)
  --quiet-wait S    how long to wait for that, and for other Hangar processes to end (default 300)
  --force           start even while other Hangar processes (agent, sim, hangar VMs) run on this host:
                    an agent's start-up removes every VM cgroup in ${SLICE}, other runs' too
  --json FILE       also write every sample and the summary as JSON
  --keep            keep the temp dir (logs, config) and print its path
  --strict          exit 3 when the target is missed (default: report only)
exit status: 0 ok, 1 failed (a job or boot did not reach the marker, setup failed), 2 usage, 3 target missed with --strict`;

const { values: opt } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20' },
    bare: { type: 'string' },
    warmup: { type: 'string', default: '1' },
    slots: { type: 'string', default: '2' },
    memory: { type: 'string', default: '256' },
    vcpus: { type: 'string', default: '1' },
    'jit-latency-ms': { type: 'string', default: '300' },
    'poll-ms': { type: 'string', default: '5' },
    'max-load': { type: 'string', default: '1.0' },
    'quiet-wait': { type: 'string', default: '300' },
    force: { type: 'boolean', default: false },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
    strict: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  console.log(USAGE);
  process.exit(0);
}
const num = (name, min, v = opt[name]) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) {
    console.error(`--${name} must be a number ≥ ${min}\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const cfg = {
  jobs: num('jobs', 1),
  bare: num('bare', 1, opt.bare ?? opt.jobs),
  warmup: num('warmup', 0),
  slots: num('slots', 1),
  memoryMiB: num('memory', 64),
  vcpus: num('vcpus', 1),
  jitLatencyMs: num('jit-latency-ms', 0),
  pollMs: num('poll-ms', 1),
  maxLoad: num('max-load', 0),
  quietWaitS: num('quiet-wait', 0),
};

if (process.getuid?.() !== 0) {
  console.error('bench:pickup needs root: the agent makes taps, cgroups and an nftables table, and the bench adds an address to lo.\n' +
    'Run it as root (sudo npm run bench:pickup).');
  process.exit(1);
}
if (!existsSync(join(root, 'dist/main/cli.js'))) {
  console.error('dist/ is missing: run `npm run build` first (npm run bench:pickup does).');
  process.exit(1);
}

const { tapName } = await import(dist('net/addressing.js'));

const sleep = (t) => new Promise((r) => setTimeout(r, t));
const log = (...a) => console.error(`[pickup ${new Date().toISOString().slice(11, 23)}]`, ...a);

// ---------------------------------------------------------------- state and cleanup
const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-pickup-'));
const st = {
  redis: null, client: null, queue: null, fleet: null, bare: null, sampler: null,
  vmIds: new Set(), sliceExisted: existsSync(`/sys/fs/cgroup/memory/${SLICE}`),
  nftExisted: false, simIpExisted: false,
};
let cleaning = null;

function cleanup() {
  cleaning ??= (async () => {
    const step = async (what, fn) => {
      try { await fn(); } catch (err) { log(`cleanup: ${what}: ${err.message}`); }
    };
    if (st.sampler) clearInterval(st.sampler);
    await step('bare qemu', () => st.bare?.close());
    await step('processes', () => st.fleet?.stop(20_000));
    // Whatever VM of ours survived (agent killed mid-job): its qemu, tap and cgroup.
    await step('vms', async () => {
      const vmsDir = join(dir, 'state', 'vms');
      const ids = new Set([...st.vmIds, ...(existsSync(vmsDir) ? readdirSync(vmsDir) : [])]);
      if (ids.size === 0) return;
      const { createQemuMicrovmDriver } = await import(dist('vm/qemu-microvm/driver.js'));
      const { createCaps } = await import(dist('caps/create-caps.js'));
      const { createHostNetwork } = await import(dist('net/host-network.js'));
      const { destroyVm } = await import(dist('agent/run-job.js'));
      const parts = {
        driver: createQemuMicrovmDriver({ stateDir: vmsDir, accel: 'tcg' }),
        caps: await createCaps({ mode: 'auto', cpuQuotaPercent: 100, memoryMaxBytes: 1 << 30, tasksMax: 100 }),
        net: createHostNetwork({}),
      };
      for (const id of ids) await step(`vm ${id}`, () => destroyVm(parts, id));
    });
    await step('redis clients', async () => {
      await st.queue?.close();
      st.client?.disconnect();
    });
    await step('redis', () => st.redis?.dispose());
    // Shared with other Hangar runs on this host: removed only when nobody else uses them.
    const others = otherHangar(new Set(), dir);
    await step('lo address', async () => {
      if (st.fleet?.addedSimIp && !others.some((p) => p.cmd.includes(SIM_IP))) {
        await execa('ip', ['addr', 'del', `${SIM_IP}/32`, 'dev', 'lo'], { reject: false });
      }
    });
    await step('nft', async () => {
      if (others.length === 0) await execa('nft', ['delete', 'table', 'inet', 'hangar'], { reject: false });
      else log(`cleanup: left nft table inet hangar and ${SLICE}: other Hangar processes run (${others.map((p) => p.pid).join(' ')})`);
    });
    await step('slice', async () => {
      if (st.sliceExisted || others.length > 0) return;
      for (const c of ['cpu', 'cpuacct', 'cpu,cpuacct', 'memory', 'pids']) {
        try { rmdirSync(`/sys/fs/cgroup/${c}/${SLICE}`); } catch { /* absent, or not empty */ }
      }
    });
    if (opt.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- machine facts
async function machine() {
  const qemu = await execa('qemu-system-x86_64', ['--version'], { reject: false });
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    qemu: String(qemu.stdout).split('\n')[0],
    kernel: (await execa('uname', ['-r'])).stdout,
  };
}

/** Waits until no other Hangar process runs and the 1-min load is below --max-load (up to --quiet-wait). */
async function waitQuiet() {
  const until = Date.now() + cfg.quietWaitS * 1000;
  let said = 0;
  for (;;) {
    const others = otherHangar(new Set(), dir);
    const load = loadavg1();
    if (others.length === 0 && load < cfg.maxLoad) return { waitedS: 0, load, others: [] };
    if (Date.now() >= until) return { load, others };
    if (Date.now() - said > 30_000) {
      said = Date.now();
      log(`waiting for a quiet machine: load ${load}` + (others.length ? `, other Hangar processes: ${others.map((p) => `${p.pid} ${p.cmd.slice(0, 80)}`).join('; ')}` : ''));
    }
    await sleep(2000);
  }
}

// ---------------------------------------------------------------- memory sampling
/** The host's aggregate CPU counters (jiffies) from /proc/stat. */
function cpuTimes() {
  const f = (readText('/proc/stat') ?? '').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  return { busy: user + nice + system + irq + softirq, idle: idle + iowait, steal, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}
const cpuShares = (a, b) => {
  const t = b.total - a.total;
  return { busyPct: ((b.busy - a.busy) / t) * 100, stealPct: ((b.steal - a.steal) / t) * 100, idlePct: ((b.idle - a.idle) / t) * 100 };
};

/** nr_throttled of a cgroup v1 cpu.stat: CFS periods in which the cgroup hit its quota. */
function throttled(file) {
  const m = /^nr_throttled (\d+)/m.exec(readText(file) ?? '');
  return m ? Number(m[1]) : null;
}

const mem = { agentRssMax: 0, agentRssSamples: [], perVm: new Map(), current: null };
function sampleMemory() {
  const a = st.fleet?.agentPid ? procMem(st.fleet.agentPid) : null;
  if (a && Number.isFinite(a.rss)) {
    mem.agentRssMax = Math.max(mem.agentRssMax, a.rss);
    mem.agentRssSamples.push(a.rss);
  }
  const vm = mem.current;
  if (!vm) return;
  const pid = readNumber(join(vm.dir, 'qemu.pid'));
  if (pid) {
    const q = procMem(pid);
    if (q) {
      vm.qemuRssMax = Math.max(vm.qemuRssMax, q.rss);
      vm.qemuHwm = Math.max(vm.qemuHwm, q.hwm);
    }
  }
  const cg = readNumber(`/sys/fs/cgroup/memory/${SLICE}/hangar-vm-${vm.id}/memory.max_usage_in_bytes`);
  if (cg !== null) vm.cgroupMaxUsage = Math.max(vm.cgroupMaxUsage, cg);
  const thr = throttled(`/sys/fs/cgroup/cpu/${SLICE}/hangar-vm-${vm.id}/cpu.stat`);
  if (thr !== null) vm.nrThrottled = Math.max(vm.nrThrottled, thr);
}

// ---------------------------------------------------------------- one Hangar job
/**
 * Polls (every --poll-ms) what the agent makes for one job, in the order it makes them: the VM
 * cgroup, the tap, the VM folder, vm.json (its startedAt: just before QEMU is spawned), the
 * console log; until the runner-start marker is on the console. Reads only new console bytes.
 */
async function watchVm(vmId, deadline) {
  const vmDir = join(st.fleet.stateDir, 'vms', vmId);
  const consoleLog = join(vmDir, 'console.log');
  const cgroupDir = `/sys/fs/cgroup/memory/${SLICE}/hangar-vm-${vmId}`;
  const tapDir = `/sys/class/net/${tapName(vmId)}`;
  const r = { tCgroup: null, tTap: null, tDir: null, startedAt: null, tConsole: null, tGuestInit: null, tRunnerStart: null };
  let text = '';
  let offset = 0;
  let fd = null;
  try {
    while (Date.now() < deadline) {
      const now = Date.now();
      if (r.tCgroup === null && existsSync(cgroupDir)) r.tCgroup = now;
      if (r.tTap === null && existsSync(tapDir)) r.tTap = now;
      if (r.tDir === null && existsSync(vmDir)) r.tDir = now;
      if (r.tDir !== null && r.startedAt === null) {
        try { r.startedAt = JSON.parse(readFileSync(join(vmDir, 'vm.json'), 'utf8')).startedAt; } catch { /* not yet */ }
      }
      if (fd === null && r.tDir !== null) {
        try { fd = openSync(consoleLog, 'r'); r.tConsole = now; } catch { /* not yet */ }
      }
      if (fd !== null) {
        const size = fstatSync(fd).size;
        if (size > offset) {
          const buf = Buffer.alloc(size - offset);
          const n = readSync(fd, buf, 0, buf.length, offset);
          offset += n;
          text = (text + buf.subarray(0, n).toString('latin1')).slice(-16384);
          if (r.tGuestInit === null && text.includes('HANGAR-GUEST-INIT')) r.tGuestInit = now;
          if (text.includes('HANGAR-RUNNER-START')) {
            r.tRunnerStart = now;
            return r;
          }
        }
      }
      await sleep(cfg.pollMs);
    }
  } finally {
    if (fd !== null) closeSync(fd);
  }
  throw new Error(`job VM ${vmId}: no HANGAR-RUNNER-START on its console before the deadline` +
    (text ? `; console ends: ${text.slice(-400)}` : `; ${r.tDir ? 'VM folder made' : 'no VM folder'}`));
}

async function hangarJob(label) {
  const tPost = Date.now();
  const { jobs } = await st.fleet.api('POST', '/_sim/runs', {
    repo: 'acme/app', jobs: [{ name: `pickup ${label}`, labels: ['self-hosted', 'build'], steps: ['true'] }],
  });
  const id = jobs[0].id;
  const vmId = `wj-${id}-1`;
  st.vmIds.add(vmId);
  const vmMem = { id: vmId, dir: join(st.fleet.stateDir, 'vms', vmId), qemuRssMax: 0, qemuHwm: 0, cgroupMaxUsage: 0, nrThrottled: 0 };
  mem.current = vmMem;
  const w = await watchVm(vmId, Date.now() + 180_000);
  const q = procMem(readNumber(join(vmMem.dir, 'qemu.pid')) ?? 0);
  const hwmAtMarker = q?.hwm ?? NaN;
  // The job runs `true`, the runner reports, the guest powers off, the agent reports the VM's end
  // (the control writes vmOutcome) and removes the VM.
  const key = `${PREFIX}:job:${id}`;
  const until = Date.now() + 120_000;
  let outcome = null;
  while (Date.now() < until && !(outcome = await st.client.hget(key, 'vmOutcome'))) await sleep(50);
  while (Date.now() < until && existsSync(vmMem.dir)) await sleep(20);
  mem.current = null;
  mem.perVm.set(vmId, vmMem);
  const h = await st.client.hgetall(key);
  const bj = await st.queue.getJob(`wj-${id}`);
  const simJob = await st.fleet.api('GET', `/_sim/jobs/${id}`).catch(() => null);
  return {
    label, id, vmId, tPost, ...w,
    t0: Number(h.createdAt), mintedAt: Number(h.mintedAt), tEnqueued: bj?.timestamp ?? NaN, tProcessed: bj?.processedOn ?? NaN,
    outcome, conclusion: simJob?.conclusion ?? null, vmMs: Number(h.vmMs),
    pickupMs: w.tRunnerStart - Number(h.createdAt),
    qemuHwmAtMarker: hwmAtMarker,
  };
}

// ---------------------------------------------------------------- main
const PREFIX = `pickup${process.pid}`;
let exitCode = 0;
try {
  const m = await machine();
  log(`machine: ${m.nproc} × ${m.cpu}, node ${m.node}, ${m.qemu}`);
  const image = await ensureTestImage(root);
  log(`image: ${image.dir} (kernel ${image.manifest.kernel.release})${image.built ? ' — built now' : ''}`);

  const quiet = await waitQuiet();
  if (quiet.others.length > 0 && !opt.force) {
    throw new Error(`other Hangar processes run on this host (${quiet.others.map((p) => `${p.pid}: ${p.cmd.slice(0, 100)}`).join('; ')}).\n` +
      `Starting an agent now would remove their VMs' cgroups (and theirs ours). Wait for them, or pass --force.`);
  }
  if (quiet.load >= cfg.maxLoad) log(`the 1-min load is still ${quiet.load} after ${cfg.quietWaitS} s: measuring anyway (noted in the results)`);
  const loadAtStart = (readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3)).join(' ');

  const { startLocalRedis } = await import(dist('main/local-redis.js'));
  st.redis = await startLocalRedis({ dir: join(dir, 'redis') });
  st.client = new Redis(st.redis.url);
  st.queue = new Queue('pool-build', { connection: { url: st.redis.url }, prefix: PREFIX });
  st.fleet = await startFleet({
    root, dir, redisUrl: st.redis.url, prefix: PREFIX, imageDir: image.dir,
    slots: cfg.slots, memoryMiB: cfg.memoryMiB, vcpus: cfg.vcpus, timeoutMinutes: 3,
  });
  log(`fleet up: sim ${st.fleet.simUrl}, control ${st.fleet.controlUrl}, agent pid ${st.fleet.agentPid}`);
  await st.fleet.api('PUT', '/_sim/knobs', { jitLatencyMs: cfg.jitLatencyMs });
  st.bare = await createBare({ root, dir, image, memoryMiB: cfg.memoryMiB, vcpus: cfg.vcpus });
  st.sampler = setInterval(sampleMemory, 100);

  for (let i = 0; i < cfg.warmup; i++) {
    const h = await hangarJob(`warmup ${i}`);
    const b = await st.bare.boot();
    log(`warm-up ${i}: hangar ${ms(h.pickupMs)} ms, bare ${ms(b.ms)} ms`);
  }

  const cpuBefore = cpuTimes();
  const sliceThrottledBefore = throttled(`/sys/fs/cgroup/cpu/${SLICE}/cpu.stat`);
  const H = [];
  const B = [];
  const loads = [];
  const failures = [];
  const rounds = Math.max(cfg.jobs, cfg.bare);
  for (let i = 0; i < rounds; i++) {
    // Alternate which goes first: H B, B H, H B, …
    const order = i % 2 === 0 ? ['h', 'b'] : ['b', 'h'];
    for (const what of order) {
      loads.push(loadavg1());
      try {
        if (what === 'h' && H.length < cfg.jobs) {
          const h = await hangarJob(String(i));
          h.round = i;
          H.push(h);
          if (h.outcome !== 'ran' || h.conclusion !== 'success') failures.push(`job ${h.id}: agent ${h.outcome}, sim ${h.conclusion}`);
        } else if (what === 'b' && B.length < cfg.bare) {
          B.push({ ...(await st.bare.boot()), round: i });
        }
      } catch (err) {
        failures.push(err.message);
        log(`round ${i} ${what}: ${err.message}`);
        if (failures.length > 3) throw new Error(`too many failures:\n${failures.join('\n')}`);
      }
      await sleep(300);
    }
    log(`round ${i + 1}/${rounds}: hangar ${ms(H.at(-1)?.pickupMs)} ms, bare ${ms(B.at(-1)?.ms)} ms, load ${loads.at(-1)}`);
  }
  const cpu = cpuShares(cpuBefore, cpuTimes());
  const sliceThrottled = (throttled(`/sys/fs/cgroup/cpu/${SLICE}/cpu.stat`) ?? NaN) - (sliceThrottledBefore ?? NaN);
  const loadAtEnd = (readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3)).join(' ');

  // Log timestamps: the driver's 'vm started' (QEMU wrote its pid file) per VM.
  const agentLog = logLines(st.fleet.log('agent'));
  const pidfileAt = new Map();
  // The agent's 'jit config handed to the guest': from its job start (startedAt), when the mint
  // settled, QEMU was asked for, the guest asked for its config, and got it (ms after startedAt).
  const handed = new Map();
  for (const l of agentLog) {
    if (l.msg === 'vm started' && l.driver === 'qemu-microvm') pidfileAt.set(l.vmId, Date.parse(l.time));
    if (l.msg === 'jit config handed to the guest') handed.set(l.vmId, l);
  }
  for (const h of H) {
    const j = handed.get(h.vmId);
    if (!j) { failures.push(`job ${h.id}: no 'jit config handed to the guest' in the agent's log`); continue; }
    Object.assign(h, {
      jobStartedAt: j.startedAt, mintMs: j.mintMs, createMs: j.createMs, bootMs: j.askedMs, handedMs: j.handedMs,
      startPickupMs: h.tRunnerStart - j.startedAt,
    });
  }

  // The gate at job start comes after HANGAR-RUNNER-START (the runner has to be handed its job
  // first), so it is not part of the pickup: the sim hands the job to the runner ('job assigned'),
  // its job-started hook asks the agent's metadata endpoint, the agent asks the control, and the
  // job's first step starts once the hook has the answer ('gate: job allowed at start').
  const when = (t) => (typeof t === 'number' ? t : Date.parse(t));
  const assignedAt = new Map();
  const gateAt = new Map();
  const decideMs = new Map();
  for (const l of logLines(st.fleet.log('sim'))) if (l.msg === 'job assigned') assignedAt.set(l.workflowJobId, when(l.time));
  for (const l of agentLog) if (l.msg === 'gate: job allowed at start') gateAt.set(l.startedJob, when(l.time));
  for (const l of logLines(st.fleet.log('control'))) if (l.msg === 'job allowed at start') decideMs.set(l.workflowJobId, l.decideMs);
  for (const h of H) if (!gateAt.has(h.id)) failures.push(`job ${h.id}: the gate did not allow it at start`);

  // ------------------------------------------------------------ figures
  const hs = summary(H.map((h) => h.pickupMs));
  const bs = summary(B.map((b) => b.ms));
  const over50 = (hs.p50 / bs.p50 - 1) * 100;
  const over90 = (hs.p90 / bs.p90 - 1) * 100;
  const pass = over50 <= TARGET_PCT && over90 <= TARGET_PCT;
  // Paired: each round's Hangar job against the bare boot right next to it (same load).
  const paired = summary(H.map((h) => {
    const b = B.find((x) => x.round === h.round);
    return b ? (h.pickupMs / b.ms - 1) * 100 : NaN;
  }));
  const preSpawn = summary(H.map((h) => h.startedAt - h.t0));
  const seg = (f) => summary(H.map(f));
  const breakdown = [
    ['post → webhook stored (sim sends, intake verifies + stores; not in pickup)', seg((h) => h.t0 - h.tPost)],
    ['webhook stored → enqueued (outbox relay → BullMQ add)', seg((h) => h.tEnqueued - h.t0)],
    ['enqueued → taken by a worker (BullMQ fetch)', seg((h) => h.tProcessed - h.tEnqueued)],
    ['taken → VM cgroup made (leftover check; the mint starts beside it)', seg((h) => h.tCgroup - h.tProcessed)],
    ['VM cgroup made → tap made (rest of the cgroup, `ip tuntap add`)', seg((h) => h.tTap - h.tCgroup)],
    ['tap made → VM folder (tap up + addressed, metadata endpoint opened)', seg((h) => h.tDir - h.tTap)],
    ['VM folder → qemu spawn (guest files, image check)', seg((h) => h.startedAt - h.tDir)],
    ['qemu spawn → pid file (driver \'vm started\')', seg((h) => (pidfileAt.get(h.vmId) ?? NaN) - h.startedAt)],
    ['qemu spawn → HANGAR-GUEST-INIT (kernel boot)', seg((h) => h.tGuestInit - h.startedAt)],
    ['HANGAR-GUEST-INIT → guest asks for its JIT config (/init: modules, NIC)', seg((h) => h.jobStartedAt + h.bootMs - h.tGuestInit)],
    ['guest asks → config handed (the wait for the mint: 0 if it came first)', seg((h) => h.handedMs - h.bootMs)],
    ['config handed → HANGAR-RUNNER-START', seg((h) => h.tRunnerStart - (h.jobStartedAt + h.handedMs))],
    ['total: webhook stored → HANGAR-RUNNER-START', hs],
    ['  of which before qemu spawn', seg((h) => h.startedAt - h.t0)],
    ['  of which qemu spawn → HANGAR-RUNNER-START', seg((h) => h.tRunnerStart - h.startedAt)],
  ];
  // Mint and boot side by side, both from the agent's job start.
  const side = [
    [`mint: job start → runner minted (control, GitHub; sim JIT latency ${cfg.jitLatencyMs} ms)`, seg((h) => h.mintMs)],
    ['boot: job start → the guest asks for its JIT config', seg((h) => h.bootMs)],
    ['  of which VM create → the guest asks', seg((h) => h.bootMs - h.createMs)],
    ['pickup: job start → HANGAR-RUNNER-START', seg((h) => h.startPickupMs)],
  ];
  const ratios = {
    sum: summary(H.map((h) => h.startPickupMs / (h.mintMs + h.bootMs))),
    max: summary(H.map((h) => h.startPickupMs / Math.max(h.mintMs, h.bootMs))),
  };
  const gate = [
    ['gate: job handed to the runner → the hook has its answer (job start → first step)', seg((h) => (gateAt.get(h.id) ?? NaN) - (assignedAt.get(h.id) ?? NaN))],
    ['  of which the control deciding (GitHub: the attempt\'s jobs, the run, the repository)', seg((h) => decideMs.get(h.id) ?? NaN)],
    ['pickup + gate: webhook stored → first step may run', seg((h) => (gateAt.get(h.id) ?? NaN) - h.t0)],
  ];
  const bareBreak = [
    ['bare: spawn → HANGAR-GUEST-INIT', summary(B.map((b) => b.guestInitMs))],
    ['bare: HANGAR-GUEST-INIT → HANGAR-RUNNER-START', summary(B.map((b) => b.ms - b.guestInitMs))],
    ['bare: spawn → HANGAR-RUNNER-START', bs],
  ];
  const vms = [...mem.perVm.values()].filter((v) => H.some((h) => h.vmId === v.id));
  const perVm = {
    qemuRssMax: Math.max(0, ...vms.map((v) => v.qemuRssMax)),
    qemuHwmMax: Math.max(0, ...vms.map((v) => v.qemuHwm)),
    cgroupMaxUsage: Math.max(0, ...vms.map((v) => v.cgroupMaxUsage)),
    qemuHwmAtMarkerP50: summary(H.map((h) => h.qemuHwmAtMarker)).p50,
    bareHwmAtMarkerP50: summary(B.map((b) => b.hwmAtMarker)).p50,
  };
  const pad = (s, n) => String(s).padEnd(n);
  const lpad = (s, n) => String(s).padStart(n);
  const row = (name, s) => `  ${pad(name, 74)} ${lpad(ms(s.p50), 6)} ${lpad(ms(s.p90), 6)} ${lpad(ms(s.min), 6)} ${lpad(ms(s.max), 6)}`;

  const out = [];
  out.push('');
  out.push(`bench:pickup — ${m.nproc} × ${m.cpu}, node ${m.node}, ${m.qemu}`);
  out.push(`  ${H.length} Hangar jobs (one at a time, agent slots ${cfg.slots}), ${B.length} bare boots, interleaved; guest ${cfg.memoryMiB} MiB, ${cfg.vcpus} vCPU, TCG; ${cfg.warmup} warm-up each`);
  out.push(`  load (1/5/15 min) at start ${loadAtStart}, at end ${loadAtEnd}; 1-min load while measuring: ${summary(loads).min}–${summary(loads).max}`);
  out.push(`  host CPU over the measured part (both cores): busy ${cpu.busyPct.toFixed(0)} %, steal ${cpu.stealPct.toFixed(0)} %, idle ${cpu.idlePct.toFixed(0)} %`);
  out.push('');
  out.push(`  ${pad('ms', 74)} ${lpad('p50', 6)} ${lpad('p90', 6)} ${lpad('min', 6)} ${lpad('max', 6)}`);
  out.push(row('Hangar pickup: webhook stored (createdAt) → HANGAR-RUNNER-START', hs));
  out.push(row('bare qemu: spawn → HANGAR-RUNNER-START (same image, same options)', bs));
  out.push(`  overhead p50 ${over50.toFixed(1)} %, p90 ${over90.toFixed(1)} %  (target ≤ ${TARGET_PCT} %): ${pass ? 'PASS' : 'FAIL'}`);
  out.push(`  paired (each job / the bare boot of its round − 1): median ${paired.p50.toFixed(1)} %, p90 ${paired.p90.toFixed(1)} %, min ${paired.min.toFixed(1)} %, max ${paired.max.toFixed(1)} %`);
  out.push(`  Hangar's own work before QEMU starts (webhook stored → spawn): p50 ${ms(preSpawn.p50)} ms = ${(preSpawn.p50 / bs.p50 * 100).toFixed(1)} % of the bare p50`);
  out.push('');
  out.push('  breakdown of the Hangar pickup (per-job segments; p50/p90 of each, they do not add up exactly):');
  for (const [name, s] of breakdown) out.push(row(name, s));
  for (const [name, s] of bareBreak) out.push(row(name, s));
  out.push('');
  out.push('  mint and boot side by side, from the agent\'s job start (overlapping: pickup ≈ max(mint, boot); in turn: mint + boot):');
  for (const [name, s] of side) out.push(row(name, s));
  const r2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  out.push(`  pickup / (mint + boot): p50 ${r2(ratios.sum.p50)}, min ${r2(ratios.sum.min)}, max ${r2(ratios.sum.max)};  ` +
    `pickup / max(mint, boot): p50 ${r2(ratios.max.p50)}, min ${r2(ratios.max.min)}, max ${r2(ratios.max.max)}`);
  out.push('  per job (ms):   mint   boot pickup  pickup/(mint+boot)  pickup/max');
  for (const h of H) {
    out.push(`    ${pad(h.id, 10)} ${lpad(ms(h.mintMs), 6)} ${lpad(ms(h.bootMs), 6)} ${lpad(ms(h.startPickupMs), 6)}  ` +
      `${lpad(r2(h.startPickupMs / (h.mintMs + h.bootMs)), 18)}  ${lpad(r2(h.startPickupMs / Math.max(h.mintMs, h.bootMs)), 10)}`);
  }
  out.push('');
  out.push('  the gate at job start (after the pickup: the runner must be handed its job first):');
  for (const [name, s] of gate) out.push(row(name, s));
  out.push('');
  out.push(`  agent RSS (hangar agent, VmRSS sampled every 100 ms): max ${mib(mem.agentRssMax)} MiB, median ${mib(summary(mem.agentRssSamples).p50)} MiB`);
  out.push(`  per VM (${vms.length} VMs): qemu VmRSS max ${mib(perVm.qemuRssMax)} MiB, VmHWM max ${mib(perVm.qemuHwmMax)} MiB; ` +
    `cgroup memory.max_usage_in_bytes max ${mib(perVm.cgroupMaxUsage)} MiB`);
  out.push(`  qemu VmHWM at HANGAR-RUNNER-START, p50: Hangar ${mib(perVm.qemuHwmAtMarkerP50)} MiB, bare ${mib(perVm.bareHwmAtMarkerP50)} MiB`);
  out.push(`  CPU quota throttling: ${SLICE} nr_throttled +${sliceThrottled} during the run; VM cgroups: max ${Math.max(0, ...vms.map((v) => v.nrThrottled))}`);
  if (failures.length) out.push(`  FAILURES: ${failures.join('; ')}`);
  console.log(out.join('\n'));

  if (opt.json) {
    writeFileSync(opt.json, JSON.stringify({
      machine: m, config: cfg, loadAtStart, loadAtEnd, loads, hangar: hs, bare: bs, overheadPct: { p50: over50, p90: over90 }, pairedOverheadPct: paired, preSpawn, pass,
      breakdown: Object.fromEntries(breakdown), sideBySide: Object.fromEntries(side), ratios, bareBreakdown: Object.fromEntries(bareBreak), gate: Object.fromEntries(gate),
      agentRssMax: mem.agentRssMax, perVm, sliceThrottled, cpu, failures, jobs: H.map((h) => ({ ...h, pidfileAt: pidfileAt.get(h.vmId) ?? null })), bareBoots: B,
      bareArgs: st.bare.args,
    }, null, 2));
    log(`wrote ${opt.json}`);
  }
  if (failures.length) exitCode = 1;
  else if (!pass && opt.strict) exitCode = 3;
} catch (err) {
  console.error(`bench:pickup failed: ${err.stack ?? err}`);
  if (st.fleet) {
    for (const name of ['control', 'agent']) console.error(`--- ${name} log (tail) ---\n${st.fleet.log(name).slice(-3000)}`);
  }
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
