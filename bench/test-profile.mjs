#!/usr/bin/env node
// bench/test-profile: where a test run's time and CPU go — the figures of docs/benchmarks.md,
// "Where the CPU goes". Runs a command (default: `npm test`, with HANGAR_TEST_LANE_TIMES so
// test/run.sh records each lane's start and end), samples /proc/stat and the CPU time of every
// qemu-system process twice a second, and prints per window (the whole run, then each lane):
// wall time, how busy the machine's cores were, the CPU used, QEMU processes, QEMU's own CPU
// (TCG emulation of the guests) and VM-seconds.
//   node bench/test-profile.mjs                 # flock /tmp/hangar-agent.lock it: it boots VMs
//   node bench/test-profile.mjs -- npx vitest run --config test/vitest.config.ts --project e2e
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const sep = process.argv.indexOf('--');
const cmd = sep >= 0 ? process.argv.slice(sep + 1) : ['npm', 'test'];
const HZ = 100; // USER_HZ: the unit of /proc/stat and /proc/PID/stat on Linux
const dir = mkdtempSync(join(tmpdir(), 'hangar-test-profile-'));
const lanesFile = join(dir, 'lanes');

function cpuTicks() {
  const [, ...f] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
  const [u, n, s, idle, iow, irq, sirq, st] = f.map(Number);
  return { busy: u + n + s + irq + sirq + st, total: u + n + s + idle + iow + irq + sirq + st };
}
function qemuTicks() {
  let pids = [];
  try {
    pids = execFileSync('pgrep', ['-f', 'qemu-system'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  } catch { /* none */ }
  const out = new Map();
  for (const p of pids) {
    try {
      const rest = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      out.set(p, Number(rest[11]) + Number(rest[12])); // utime + stime (fields 14, 15)
    } catch { /* gone */ }
  }
  return out;
}

const samples = [];
const sample = () => samples.push({ at: Date.now() / 1000, ...cpuTicks(), qemu: qemuTicks() });
sample();
const timer = setInterval(sample, 500);
const child = spawn(cmd[0], cmd.slice(1), { stdio: 'inherit', env: { ...process.env, HANGAR_TEST_LANE_TIMES: lanesFile } });
const stop = (sig) => child.kill(sig);
process.on('SIGINT', stop).on('SIGTERM', stop);
const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? (s ? 1 : 0))));
clearInterval(timer);
sample();

function window(name, from, to) {
  const seg = samples.filter((s) => s.at >= from && s.at <= to);
  if (seg.length < 2) return;
  const a = seg[0], b = seg[seg.length - 1];
  const last = new Map();
  let vmSeconds = 0;
  for (let i = 0; i + 1 < seg.length; i++) {
    vmSeconds += seg[i].qemu.size * (seg[i + 1].at - seg[i].at);
    for (const [p, t] of seg[i].qemu) last.set(p, t);
  }
  const busy = b.busy - a.busy;
  const qemu = [...last.values()].reduce((x, y) => x + y, 0);
  console.log(`| ${name} | ${(b.at - a.at).toFixed(0)} s | ${((100 * busy) / Math.max(1, b.total - a.total)).toFixed(0)} % | ${(busy / HZ).toFixed(0)} core-s | ${last.size} | ≥ ${(qemu / HZ).toFixed(0)} core-s | ${vmSeconds.toFixed(0)} |`);
}

console.log(`\ntest-profile: \`${cmd.join(' ')}\` exited ${code}; ${cpus().length} cores`);
console.log('| window | wall | CPU busy | CPU used | QEMU processes | QEMU\'s own CPU | VM-seconds |\n|---|---|---|---|---|---|---|');
window('the whole run', samples[0].at, samples[samples.length - 1].at);
let lanes = [];
try {
  lanes = readFileSync(lanesFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' '));
} catch { /* not test/run.sh */ }
for (const [name, from, to] of lanes) window(`${name} lane`, Number(from), Number(to) + 0.999);
console.log('(QEMU\'s CPU misses a VM\'s last half second: it is read while the process lives.)');
rmSync(dir, { recursive: true, force: true });
process.exit(code);
