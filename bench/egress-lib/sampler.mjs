// CPU time of one process's threads, sampled from /proc/<pid>/task/*/stat, so the bench can
// say where a transfer's time went: QEMU busy for a whole core while the same path carries
// several times as much without it means the emulation, not the host's rules, sets the pace.
import { readdirSync, readFileSync } from 'node:fs';

/** { comm, ticks (utime + stime) } of every thread of `pid`; [] once it is gone. */
export function threadTimes(pid) {
  let tids;
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out = [];
  for (const tid of tids) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const close = s.lastIndexOf(')');
      const comm = s.slice(s.indexOf('(') + 1, close);
      const f = s.slice(close + 2).split(' '); // f[0] is field 3 (state): utime is field 14, stime 15
      out.push({ tid: Number(tid), comm, ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      /* the thread ended between readdir and read */
    }
  }
  return out;
}

/**
 * Samples `pid` every `everyMs` until stop(). window(t0, t1) gives CPU shares between two
 * Date.now() times. QEMU names no threads unless asked (`-name …,debug-threads=on`, which the
 * driver does not pass), so they are told apart by role: the main thread (tid = pid) runs the
 * I/O loop, tap and virtio-net backend included; with one vCPU the busiest other thread is the
 * TCG vCPU (the rest: the RCU thread, idle workers).
 */
export function startSampler(pid, { everyMs = 100, clkTck = 100 } = {}) {
  const samples = [];
  const take = () => {
    const threads = threadTimes(pid);
    if (threads.length) samples.push({ t: Date.now(), threads });
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
    },
    /** Shares of one core (1 = 100 %) over the samples that bracket [t0, t1]: main thread, busiest other, all. */
    window(t0, t1) {
      const a = [...samples].reverse().find((s) => s.t <= t0) ?? samples[0];
      const b = samples.find((s) => s.t >= t1) ?? samples.at(-1);
      if (!a || !b || b.t <= a.t) return null;
      const secs = (b.t - a.t) / 1000;
      // A thread that ended before b (the vCPU at power-off) counts with its last reading.
      const last = new Map();
      for (const s of samples) if (s.t <= b.t) for (const x of s.threads) last.set(x.tid, x.ticks);
      const start = new Map(a.threads.map((x) => [x.tid, x.ticks]));
      const used = [...last].map(([tid, ticks]) => ({ tid, secs: (ticks - (start.get(tid) ?? 0)) / clkTck }));
      const main = used.find((u) => u.tid === pid)?.secs ?? 0;
      const busiest = Math.max(0, ...used.filter((u) => u.tid !== pid).map((u) => u.secs));
      const all = used.reduce((n, u) => n + u.secs, 0);
      return { main: main / secs, vcpu: busiest / secs, all: all / secs, secs };
    },
  };
}
