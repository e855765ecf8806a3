// Small helpers for the benchmarks: exact percentiles over every recorded latency, CPU shares.

/** Growable Float64Array of samples (ms). */
export class Samples {
  constructor(initial = 1 << 16) {
    this.buf = new Float64Array(initial);
    this.n = 0;
  }
  push(v) {
    if (this.n === this.buf.length) {
      const next = new Float64Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = v;
  }
  /** Nearest-rank percentiles (exact, no histogram bucketing) of everything recorded. */
  percentiles(ps) {
    const sorted = this.buf.slice(0, this.n).sort();
    const out = {};
    for (const p of ps) {
      out[p] = this.n === 0 ? NaN : sorted[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))];
    }
    out.max = this.n === 0 ? NaN : sorted[this.n - 1];
    out.mean = this.n === 0 ? NaN : sorted.reduce((a, b) => a + b, 0) / this.n;
    return out;
  }
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** CPU used between two process.cpuUsage() readings, as a share of one core over `seconds`. */
export const cpuShare = (a, b, seconds) => (b.user - a.user + b.system - a.system) / 1e6 / seconds;
