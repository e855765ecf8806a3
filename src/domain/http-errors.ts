import { GitHubError, HangarError, PayloadError, SignatureError, StoreError } from './errors.js';

/**
 * The one place Hangar's errors become HTTP answers. Known failures get a status and a message an
 * operator can act on; anything else is a 500 that says nothing about its insides (the caller
 * logs it). Never a secret: messages are the errors' own, and no error carries one.
 */
export interface HttpAnswer {
  status: number;
  /** Metrics label of the outcome. */
  label: string;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

export function toHttp(err: unknown): HttpAnswer {
  if (err instanceof SignatureError) return { status: 401, label: 'bad-signature', body: { error: err.code, message: err.message } };
  if (err instanceof PayloadError) return { status: 400, label: 'bad-payload', body: { error: err.code, field: err.field, message: err.message } };
  if (err instanceof StoreError) {
    return {
      status: 503,
      label: 'unavailable',
      body: { error: err.code, message: 'not stored: the queue is unavailable; GitHub can redeliver this delivery' },
      headers: { 'retry-after': '5' },
    };
  }
  // Redis away under any route (ioredis's own errors, not wrapped in a StoreError): a 503, so a
  // caller that may ask again (the agent's gate question, its reports) does, rather than a 500.
  if (isRedisUnavailable(err)) {
    return { status: 503, label: 'unavailable', body: { error: 'store-unavailable', message: 'Redis is unavailable; try again' }, headers: { 'retry-after': '2' } };
  }
  if (err instanceof GitHubError) {
    return { status: 502, label: 'github', body: { error: 'github', status: err.status, message: 'GitHub did not answer as expected; try again' } };
  }
  if (err instanceof HangarError) return { status: 400, label: err.code, body: { error: err.code, message: err.message } };
  // Fastify's own (a body too large, bad JSON, a bad content type) carry a 4xx statusCode.
  const e = err as { statusCode?: number; code?: string; message?: string };
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return { status: e.statusCode, label: 'bad-request', body: { error: e.code ?? 'bad-request', message: e.message ?? '' } };
  }
  return { status: 500, label: 'error', body: { error: 'internal', message: 'internal error' } };
}

/** ioredis's errors while its server is away: a closed connection, no offline queue, retries spent, a command timeout. */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  if (e?.name === 'MaxRetriesPerRequestError') return true;
  return typeof e?.message === 'string' && /^(Connection is closed\.?|Stream isn't writeable and enableOfflineQueue options is false|Command timed out)$/.test(e.message);
}
