import { describe, expect, test } from 'vitest';
import { after, bytes, clock, dollars, duration, percent, waits, WAITS } from '../../src/dashboard/page/format.js';

/** How the dashboard page writes numbers (src/dashboard/page/format.ts: pure, shared with nothing else). */
describe('dashboard page formats', () => {
  test.each([
    [null, '—'],
    [850, '850 ms'],
    [12_400, '12 s'],
    [185_000, '3 min 05 s'],
    [2 * 3600_000 + 4 * 60_000, '2 h 04 min'],
    [-5, '0 ms'],
  ])('duration(%s) = %s', (ms, want) => expect(duration(ms)).toBe(want));

  test.each([
    [0, '$0.00'],
    [0.006, '$0.006'],
    [18.738, '$18.74'],
    [1234.5, '$1,234.50'],
    [-2.5, '−$2.50'],
  ])('dollars(%s) = %s', (n, want) => expect(dollars(n)).toBe(want));

  test.each([
    [null, '—'],
    [512, '512 B'],
    [1536, '1.5 KiB'],
    [8 * 1024 ** 3, '8.0 GiB'],
    [20 * 1024 ** 3, '20 GiB'],
  ])('bytes(%s) = %s', (n, want) => expect(bytes(n)).toBe(want));

  test('clock: a time of day today, a date for another day, a dash for none', () => {
    const now = new Date(2026, 11, 2, 14, 3, 7).getTime();
    expect(clock(now, now)).toBe('14:03:07');
    expect(clock(new Date(2026, 11, 1, 9, 5, 0).getTime(), now)).toBe('Dec 1 09:05');
    expect(clock(null, now)).toBe('—');
  });

  test('after, percent', () => {
    expect(after(1000, 4000)).toBe('+3 s');
    expect(after(null, 4000)).toBe('');
    expect(percent(1, 4)).toBe('25 %');
    expect(percent(1, 0)).toBe('—');
  });

  test('every reason a job waits has words, and an unknown one shows as it came', () => {
    for (const [why, text] of Object.entries(WAITS)) expect(text.length, why).toBeGreaterThan(5);
    expect(waits('slots-full')).toBe('every slot is busy');
    expect(waits('something-new')).toBe('something-new');
  });
});
