/**
 * What running jobs on Hangar saved this month, priced as GitHub bills hosted runners: each job
 * rounded up to a whole minute (in_progress → completed), times the per-minute price, less the
 * plan's included minutes (never below 0); beside it what GitHub's postponed self-hosted
 * platform charge would cost on the same minutes. Pure; tested from tables
 * (test/unit/savings.test.ts).
 */
export type Plan = 'free' | 'pro' | 'team' | 'enterprise' | 'none';

export interface SavingsPrices {
  plan: Plan;
  pricePerMinute: number;
  includedMinutes: number;
  platformChargePerMinute: number;
}

export interface Savings extends SavingsPrices {
  month: string;
  jobs: number;
  minutes: number;
  gross: number;
  included: number;
  saved: number;
  platformCharge: number;
  net: number;
}

/** GitHub rounds each job's time up to the next whole minute (a job of 61 s bills 2). */
export const billedMinutes = (ms: number): number => (ms <= 0 ? 0 : Math.ceil(ms / 60_000));

/** The calendar month (UTC) of a time, `YYYY-MM`. */
export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/** Dollars, without float dust (to a hundredth of a cent). */
const dollars = (x: number): number => Math.round(x * 10_000) / 10_000;

/** `jobMs`: how long each job of the month ran on a Hangar runner (ms). */
export function savings(month: string, jobMs: readonly number[], p: SavingsPrices): Savings {
  const minutes = jobMs.reduce((sum, ms) => sum + billedMinutes(ms), 0);
  const gross = minutes * p.pricePerMinute;
  const included = Math.min(minutes, p.includedMinutes) * p.pricePerMinute;
  const saved = Math.max(0, gross - included);
  const platformCharge = minutes * p.platformChargePerMinute;
  return {
    ...p,
    month,
    jobs: jobMs.length,
    minutes,
    gross: dollars(gross),
    included: dollars(included),
    saved: dollars(saved),
    platformCharge: dollars(platformCharge),
    net: dollars(saved - platformCharge),
  };
}
