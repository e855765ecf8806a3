// /proc and cgroup readings; every reader answers null when the thing is gone.
import { readFileSync, readdirSync } from 'node:fs';

/** VmRSS / VmHWM of a process, in bytes. */
export function procMem(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return null;
  }
}

export function readNumber(file) {
  try {
    const n = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

export function readText(file) {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** Every process as { pid, cmd } (argv joined by spaces). */
export function processes() {
  const out = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const raw = readText(`/proc/${name}/cmdline`);
    if (raw) out.push({ pid: Number(name), cmd: raw.split('\0').filter(Boolean).join(' ') });
  }
  return out;
}

/** Hangar processes (agents, sims, qemu of hangar VMs) that are not ours. */
export function otherHangar(ourPids = new Set(), ourDir = '\0') {
  return processes().filter(({ pid, cmd }) =>
    !ourPids.has(pid) && pid !== process.pid && !cmd.includes(ourDir) &&
    (/cli\.js (agent|sim|control|demo|up)\b|hangar (agent|sim|control|demo|up)\b|vitest/.test(cmd) || /qemu-system.*-name hangar-/.test(cmd)));
}

export const loadavg1 = () => Number((readText('/proc/loadavg') ?? 'NaN').split(' ')[0]);
