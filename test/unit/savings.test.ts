import { expect, test } from 'vitest';
import { billedMinutes, monthOf, savings, type SavingsPrices } from '../../src/domain/savings.js';

const free: SavingsPrices = { plan: 'free', pricePerMinute: 0.006, includedMinutes: 2000, platformChargePerMinute: 0.002 };
const none: SavingsPrices = { ...free, plan: 'none', includedMinutes: 0 };
const min = 60_000;

test.each([
  ['no time', 0, 0],
  ['a millisecond bills a minute', 1, 1],
  ['exactly a minute', min, 1],
  ['61 s bills 2', min + 1000, 2],
  ['59 min 59 s bills 60', 60 * min - 1000, 60],
])('billed minutes: %s', (_n, ms, want) => expect(billedMinutes(ms)).toBe(want));

test.each([
  ['2026-03-31T23:59:59.999Z', '2026-03'],
  ['2026-04-01T00:00:00.000Z', '2026-04'],
])('month of %s is %s (UTC)', (iso, want) => expect(monthOf(Date.parse(iso))).toBe(want));

test.each([
  // name, jobs (ms), prices, want
  ['nothing ran', [], free, { jobs: 0, minutes: 0, gross: 0, included: 0, saved: 0, platformCharge: 0, net: 0 }],
  ['each job rounded up on its own: 3 × 61 s is 6 minutes, not 4', [61_000, 61_000, 61_000], none,
    { jobs: 3, minutes: 6, gross: 0.036, included: 0, saved: 0.036, platformCharge: 0.012, net: 0.024 }],
  ['within the free plan: nothing saved, the platform charge would still cost', [100 * min], free,
    { jobs: 1, minutes: 100, gross: 0.6, included: 0.6, saved: 0, platformCharge: 0.2, net: -0.2 }],
  ['past the free plan: the minutes beyond 2000 are saved', [1500 * min, 1500 * min], free,
    { jobs: 2, minutes: 3000, gross: 18, included: 12, saved: 6, platformCharge: 6, net: 0 }],
  ['a team plan with many minutes', Array.from({ length: 1000 }, () => 10 * min - 1), { ...free, plan: 'team' as const, includedMinutes: 3000 },
    { jobs: 1000, minutes: 10_000, gross: 60, included: 18, saved: 42, platformCharge: 20, net: 22 }],
  ['a price of its own', [10 * min], { ...none, pricePerMinute: 0.016 },
    { jobs: 1, minutes: 10, gross: 0.16, included: 0, saved: 0.16, platformCharge: 0.02, net: 0.14 }],
])('%s', (_n, jobs, prices, want) => {
  expect(savings('2026-04', jobs, prices)).toEqual({ ...prices, month: '2026-04', ...want });
});
