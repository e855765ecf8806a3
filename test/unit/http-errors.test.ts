import { expect, test } from 'vitest';
import { StoreError } from '../../src/domain/errors.js';
import { toHttp } from '../../src/domain/http-errors.js';

class MaxRetriesPerRequestError extends Error {
  override get name() {
    return 'MaxRetriesPerRequestError';
  }
}

test.each<[string, unknown, number]>([
  ['Redis away: connection closed', new Error('Connection is closed.'), 503],
  ['Redis away: no offline queue', new Error("Stream isn't writeable and enableOfflineQueue options is false"), 503],
  ['Redis away: a command timed out', new Error('Command timed out'), 503],
  ['Redis away: retries spent', new MaxRetriesPerRequestError('Reached the max retries per request limit (which is 1).'), 503],
  ['the intake\'s own store error', new StoreError('store-unavailable', 'redis: down'), 503],
  ['anything else stays a 500 that says nothing', new Error('Connection is closed by a bug'), 500],
])('%s → %i', (_name, err, status) => {
  const a = toHttp(err);
  expect(a.status).toBe(status);
  if (status === 500) expect(a.body).toEqual({ error: 'internal', message: 'internal error' });
});
