/**
 * How the page writes times, durations, sizes and money. Pure (no DOM), so it is unit-tested
 * from Node as well (test/unit/dashboard-format.test.ts). The page never ticks a clock: a time is
 * shown as a time of day, and a duration only between two times the data carries.
 */
import type { RefusalWhere } from '../api-types.js';
import type { StuckWhy } from '../../domain/stuck-jobs.js';

const pad = (n: number): string => String(n).padStart(2, '0');

/** `14:03:07` for today (in the browser's zone), `Dec 1 14:03` for another day; `—` for null. */
export function clock(ms: number | null, now = Date.now()): string {
  if (ms === null) return '—';
  const d = new Date(ms);
  const today = new Date(now);
  const hms = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  if (d.toDateString() === today.toDateString()) return hms;
  return `${MONTHS[d.getMonth()]} ${d.getDate()} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `850 ms`, `12 s`, `3 min 05 s`, `2 h 04 min`; `—` for null. */
export function duration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '—';
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${pad(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${pad(m % 60)} min`;
}

/** `+3 s` after a start, for a phase's time beside the job's queued time. */
export const after = (from: number | null, to: number | null): string => (from === null || to === null ? '' : `+${duration(to - from)}`);

export function bytes(n: number | null): string {
  if (n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v >= 10 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i]}`;
}

/** Dollars: `$1.23`; amounts under a cent keep three decimals (`$0.006`), negatives a minus sign. */
export function dollars(n: number): string {
  const abs = Math.abs(n);
  const text = abs !== 0 && abs < 0.01 ? abs.toFixed(3) : abs.toFixed(2);
  return `${n < 0 ? '−' : ''}$${text.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}`;
}

export const count = (n: number): string => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ',');

export const percent = (part: number, whole: number): string => (whole > 0 ? `${Math.round((part / whole) * 100)} %` : '—');

export const WHERE: Readonly<Record<RefusalWhere, string>> = {
  intake: 'at intake (policy)',
  mint: 'at mint (control)',
  vet: 'by the run vetter',
  start: 'at job start (gate)',
};

/** Why a waiting job waits, for a person (domain/stuck-jobs.ts). */
export const WAITS: Readonly<Record<StuckWhy, string>> = {
  'no-pool': 'no pool takes its labels',
  'no-host': 'no host serves its pool',
  'every-host-down': 'every host of its pool is down',
  'hosts-draining': 'every host of its pool is draining',
  'slots-full': 'every slot is busy',
  'refused-at-start': 'its runner was handed a job the gate refused; it is owed another',
  'minted-no-vm': 'runner minted, no VM up yet',
  'not-picked-up': 'no host has picked it up yet',
};

export const waits = (why: string): string => (WAITS as Record<string, string>)[why] ?? why;
