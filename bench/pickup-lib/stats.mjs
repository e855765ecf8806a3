// Nearest-rank percentiles: with 20 samples p50 is the 10th smallest, p90 the 18th.
export function pct(xs, p) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function summary(xs) {
  const s = xs.filter((x) => Number.isFinite(x));
  return {
    n: s.length,
    p50: pct(s, 50),
    p90: pct(s, 90),
    min: s.length ? Math.min(...s) : NaN,
    max: s.length ? Math.max(...s) : NaN,
    mean: s.length ? s.reduce((a, b) => a + b, 0) / s.length : NaN,
  };
}

export const ms = (v) => (Number.isFinite(v) ? `${Math.round(v)}` : '-');
export const mib = (bytes) => (Number.isFinite(bytes) ? (bytes / 1024 / 1024).toFixed(1) : '-');
