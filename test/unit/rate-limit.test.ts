import { expect, test } from 'vitest';
import { MAX_PAUSE_MS, pauseFor, type LimitAnswer, type Pause } from '../../src/domain/rate-limit.js';

const NOW = 1_700_000_000_000;
const SECONDARY = 'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.';
const answer = (status: number, headers: LimitAnswer['headers'] = {}, message?: string): LimitAnswer => ({ status, headers, message });

test.each<[string, LimitAnswer, Pause | null]>([
  ['a plain success', answer(200, { 'x-ratelimit-remaining': '4999', 'x-ratelimit-reset': '1700003600' }), null],
  ['403 with retry-after', answer(403, { 'retry-after': '30' }, SECONDARY), { untilMs: NOW + 30_000, why: 'retry-after' }],
  ['429 with retry-after', answer(429, { 'retry-after': '2' }), { untilMs: NOW + 2_000, why: 'retry-after' }],
  ['retry-after wins over the primary reset', answer(403, { 'retry-after': '5', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1700000100' }), { untilMs: NOW + 5_000, why: 'retry-after' }],
  ['primary limit spent on a 403: the reset, and a second', answer(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1700000100' }), { untilMs: 1_700_000_101_000, why: 'primary' }],
  ['the last request of the hour succeeded', answer(200, { 'x-ratelimit-remaining': 0, 'x-ratelimit-reset': 1700000010 }), { untilMs: 1_700_000_011_000, why: 'primary' }],
  ['a reset already past: no wait beyond now', answer(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': '1600000000' }), { untilMs: NOW, why: 'primary' }],
  ['secondary limit without retry-after: the fallback minute', answer(403, {}, SECONDARY), { untilMs: NOW + 60_000, why: 'secondary' }],
  ['a 403 for a missing permission', answer(403, { 'x-ratelimit-remaining': '4000' }, 'Resource not accessible by integration'), null],
  ['retry-after on a 503 is not a rate limit', answer(503, { 'retry-after': '10' }), null],
  ['a malformed retry-after falls back to the message', answer(403, { 'retry-after': 'soon' }, SECONDARY), { untilMs: NOW + 60_000, why: 'secondary' }],
  ['a retry-after of days is capped at an hour', answer(429, { 'retry-after': '864000' }), { untilMs: NOW + MAX_PAUSE_MS, why: 'retry-after' }],
])('%s', (_name, a, want) => expect(pauseFor(a, NOW)).toEqual(want));

test('the fallback for a secondary limit is the caller\'s', () => {
  expect(pauseFor(answer(429, {}, SECONDARY), NOW, 5)).toEqual({ untilMs: NOW + 5_000, why: 'secondary' });
});
