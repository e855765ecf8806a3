#!/usr/bin/env node
// bench/egress: a guest downloading from an "internet" server with Hangar's isolation table on,
// against the same with only masquerade, in one run. Run with `npm run bench:egress` (builds
// first), or after a build: `node bench/egress.mjs [--rounds 6]`. Needs root (namespaces, taps,
// nftables, QEMU on a tap). See docs/benchmarks.md, "Egress (bench/egress)".
//
// Everything it makes lives in network namespaces it creates (`hangar-be-<random>-…`, see
// egress-lib/topology.mjs) and deletes at the end, on failure and on Ctrl-C: the host's own
// nftables, taps, routes and cgroups are never touched. This process makes the namespaces, then
// re-runs the measuring part (egress-lib/measure.mjs) under `nsenter --net=` into the `host`
// namespace, where QEMU and its tap must be; that part boots VMs with the driver directly (no
// agent, no cgroups).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { otherHangar } from './pickup-lib/proc.mjs';
import { figures, reportText, TARGET_RATIO } from './egress-lib/report.mjs';
import { createTopology, leftoverNamespaces, RANGE } from './egress-lib/topology.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const dist = (p) => pathToFileURL(join(root, 'dist', p)).href;

const USAGE = `usage: node bench/egress.mjs [options]   (npm run bench:egress -- [options] builds first; needs root)
  --rounds N          measured rounds; each boots one VM per mode, A B, B A, … (default 6)
  --mib N             size of the file the guest downloads, MiB (default 64)
  --downloads N       downloads per VM (default 5)
  --warmup N          unmeasured rounds first (default 1)
  --veth-downloads N  downloads per step by a guest without QEMU (a veth named like a tap), the
                      rules at kernel speed; 0 to skip (default 5)
  --memory MIB        guest memory (default 256)
  --vcpus N           guest vCPUs (default 1)
  --max-load L        wait for the 1-min load average to fall below L before starting (default 1.0)
  --quiet-wait S      how long to wait for that (default 120); then it measures anyway and says so
  --json FILE         also write every sample and the summary as JSON
  --keep              keep the temp dir (guest consoles, config, raw results) and print its path
  --strict            exit 3 when the ratio misses the target (default: report only)
exit status: 0 ok, 1 failed (a download lost, the isolation check wrong, setup failed), 2 usage, 3 target missed with --strict`;

const { values: opt } = parseArgs({
  options: {
    rounds: { type: 'string', default: '6' },
    mib: { type: 'string', default: '64' },
    downloads: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    'veth-downloads': { type: 'string', default: '5' },
    memory: { type: 'string', default: '256' },
    vcpus: { type: 'string', default: '1' },
    'max-load': { type: 'string', default: '1.0' },
    'quiet-wait': { type: 'string', default: '120' },
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
const num = (name, min, { max = Infinity, whole = true } = {}) => {
  const n = Number(opt[name]);
  if (!Number.isFinite(n) || n < min || n > max || (whole && !Number.isInteger(n))) {
    console.error(`--${name} must be a ${whole ? 'whole ' : ''}number from ${min}${Number.isFinite(max) ? ` to ${max}` : ''}\n${USAGE}`);
    process.exit(2);
  }
  return n;
};
const cfg = {
  rounds: num('rounds', 1),
  mib: num('mib', 1, { max: 1024 }),
  downloads: num('downloads', 1, { max: 100 }),
  warmup: num('warmup', 0),
  memoryMiB: num('memory', 64),
  vcpus: num('vcpus', 1),
  maxLoad: num('max-load', 0, { whole: false }),
  quietWaitS: num('quiet-wait', 0),
};
const vethDownloadsN = num('veth-downloads', 0, { max: 100 });

if (process.getuid?.() !== 0) {
  console.error('bench:egress needs root: it makes network namespaces, taps and nftables tables (inside its namespaces only) and runs QEMU on a tap.\n' +
    'Run it as root (sudo npm run bench:egress).');
  process.exit(1);
}
if (!existsSync(join(root, 'dist/net/isolation-apply.js'))) {
  console.error('dist/ is missing: run `npm run build` first (npm run bench:egress does).');
  process.exit(1);
}
for (const [tool, pkg, flag] of [['nsenter', 'util-linux', '--version'], ['nft', 'nftables', '--version'], ['ip', 'iproute2', '-V']]) {
  if ((await execa(tool, [flag], { reject: false })).exitCode !== 0) {
    console.error(`${tool} does not run: apt-get install -y ${pkg}`);
    process.exit(1);
  }
}

const sleep = (t) => new Promise((r) => setTimeout(r, t));
const log = (...a) => console.error(`[egress ${new Date().toISOString().slice(11, 23)}]`, ...a);
const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

// ---------------------------------------------------------------- state and cleanup
const dir = mkdtempSync(join(tmpdir(), 'hangar-bench-egress-'));
const st = { topo: null, child: null };
let cleaning = null;
let signalled = null;
function cleanup() {
  cleaning ??= (async () => {
    const child = st.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      // It destroys its VM and stops its server on SIGTERM; what is left after 20 s is killed below.
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(20_000)]);
    }
    if (st.topo) {
      // Every process in our namespaces is one we started (the child, QEMU, the servers).
      for (let i = 0; i < 3; i++) {
        const pids = st.topo.pids();
        if (pids.length === 0) break;
        for (const pid of pids) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        }
        await sleep(300);
      }
      const left = st.topo.dispose();
      if (left.length) log(`cleanup: could not delete namespaces ${left.join(' ')} (ip netns del NAME)`);
    }
    if (opt.keep) log(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    signalled = sig;
    void cleanup().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------- machine facts
async function machine() {
  const first = async (cmd, args) => String((await execa(cmd, args, { reject: false })).stdout).split('\n')[0];
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    qemu: await first('qemu-system-x86_64', ['--version']),
    kernel: await first('uname', ['-r']),
    nft: await first('nft', ['--version']),
  };
}

function cpuShares(a, b) {
  const f = (line) => line.trim().split(/\s+/).slice(1).map(Number);
  const [x, y] = [f(a), f(b)];
  const d = y.map((v, i) => v - x[i]);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = d;
  const total = d.slice(0, 8).reduce((s, v) => s + v, 0);
  return { busyPct: ((user + nice + system + irq + softirq) / total) * 100, stealPct: (steal / total) * 100, idlePct: ((idle + iowait) / total) * 100 };
}

async function waitQuiet() {
  const until = Date.now() + cfg.quietWaitS * 1000;
  let said = 0;
  for (;;) {
    const load = Number(loadavg().split(' ')[0]);
    if (load < cfg.maxLoad || Date.now() >= until) return load;
    if (Date.now() - said > 30_000) {
      said = Date.now();
      log(`waiting for a quiet machine: 1-min load ${load} (--max-load ${cfg.maxLoad})`);
    }
    await sleep(2000);
  }
}

// ---------------------------------------------------------------- main
let exitCode = 0;
try {
  const m = await machine();
  log(`machine: ${m.nproc} × ${m.cpu}, node ${m.node}, ${m.qemu}`);
  const old = leftoverNamespaces();
  if (old.length) log(`namespaces of an earlier run are still here (not ours, left alone): ${old.join(' ')}`);
  const { ensureTestImage } = await import(dist('main/test-image.js'));
  const image = await ensureTestImage();
  log(`image: ${image.dir} (kernel ${image.manifest.kernel?.release ?? '?'})`);
  const load = await waitQuiet();
  if (load >= cfg.maxLoad) log(`the 1-min load is still ${load} after ${cfg.quietWaitS} s: measuring anyway (noted in the results)`);
  const loadAtStart = loadavg();
  const others = otherHangar(new Set(), dir);

  const { guestLink, tapName } = await import(dist('net/addressing.js'));
  const vl = guestLink(RANGE, 1);
  const veth = vethDownloadsN > 0 ? { dev: tapName('egress-veth-guest'), hostIp: vl.hostIp, guestIp: vl.guestIp, prefixLen: vl.prefixLen, downloads: vethDownloadsN } : null;
  st.topo = createTopology({ veth });
  log(`namespaces: ${st.topo.made.join(' ')}`);
  const clkTck = Number((await execa('getconf', ['CLK_TCK'])).stdout) || 100;
  const childCfg = { ...cfg, root, dir, clkTck, veth, image: { kernel: image.kernel, initrd: image.initrd },
    ns: { host: st.topo.host, inet: st.topo.inet, vguest: st.topo.vguest } };
  const cfgFile = join(dir, 'config.json');
  writeFileSync(cfgFile, JSON.stringify(childCfg, null, 2));

  st.child = spawn('nsenter', [`--net=/run/netns/${st.topo.host}`, process.execPath, join(here, 'egress-lib/measure.mjs'), cfgFile],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise((r) => st.child.once('exit', (c, s) => r(c ?? s)));
  if (code !== 0) throw new Error(`the measuring part (in ${st.topo.host}) ended with ${code}`);
  const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8'));
  const env = { machine: m, loadAtStart, loadAtEnd: loadavg(), loads: result.loads, cpu: cpuShares(result.cpu0, result.cpu1), others };

  const f = figures(result, { ...cfg, veth });
  console.log(reportText(f, { ...cfg, veth }, env));
  if (opt.json) {
    writeFileSync(opt.json, JSON.stringify({ config: { ...cfg, veth }, env, target: TARGET_RATIO, figures: f, steps: result.steps }, null, 2));
    log(`wrote ${opt.json}`);
  }
  if (f.failures.length || !f.isoOk) exitCode = 1;
  else if (!f.pass && opt.strict) exitCode = 3;
} catch (err) {
  if (!signalled) console.error(`bench:egress failed: ${err.stack ?? err}`);
  exitCode = 1;
} finally {
  await cleanup();
}
process.exit(exitCode);
