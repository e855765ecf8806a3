/**
 * The page's requests to the dashboard API (src/dashboard/api-types.ts). The session cookie goes
 * by itself (same origin); every POST carries the session's CSRF token, fetched once from
 * /api/v1/session and again when the server says it no longer holds. A 401 means the session
 * ended: the page goes to the login.
 */
import type { ApiError, HostActionResult, JobActionResult, JobDetail, SessionView } from '../api-types.js';

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiError,
  ) {
    super(body.message);
  }
}

let csrf: Promise<string> | null = null;

export function toLogin(): void {
  window.location.assign('/login');
}

async function session(): Promise<string> {
  const r = await fetch('/api/v1/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' });
  if (r.status === 401) toLogin();
  if (!r.ok) throw await failure(r);
  return ((await r.json()) as SessionView).csrf;
}

/** Is the session still there? (asked when the stream closes) */
export async function sessionHolds(): Promise<boolean> {
  const r = await fetch('/api/v1/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' }).catch(() => null);
  return r === null || r.status !== 401;
}

async function failure(r: Response): Promise<ApiFailure> {
  const body = (await r.json().catch(() => null)) as ApiError | null;
  return new ApiFailure(r.status, body && typeof body.message === 'string' ? body : { error: `http-${r.status}`, message: `${r.status} ${r.statusText}` });
}

export async function getJob(id: number): Promise<JobDetail> {
  const r = await fetch(`/api/v1/jobs/${encodeURIComponent(String(id))}`, { headers: { accept: 'application/json' }, credentials: 'same-origin' });
  if (r.status === 401) toLogin();
  if (!r.ok) throw await failure(r);
  return (await r.json()) as JobDetail;
}

async function post<T>(path: string, body: unknown, again = true): Promise<T> {
  csrf ??= session();
  const token = await csrf.catch((err: unknown) => {
    csrf = null;
    throw err;
  });
  const r = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json', accept: 'application/json', 'x-csrf-token': token },
    body: JSON.stringify(body),
  });
  if (r.status === 401) toLogin();
  if (r.status === 403 && again) {
    // The session was renewed (a new login in another tab): its token changed.
    csrf = null;
    return post<T>(path, body, false);
  }
  if (!r.ok) throw await failure(r);
  return (await r.json()) as T;
}

const why = (reason: string): { why?: string } => (reason.trim() ? { why: reason.trim().slice(0, 200) } : {});

export const drainHost = (name: string, reason: string, drain: boolean): Promise<HostActionResult> =>
  post(`/api/v1/hosts/${encodeURIComponent(name)}/${drain ? 'drain' : 'undrain'}`, why(reason));

export const jobAction = (id: number, action: 'cancel' | 'retry', reason: string): Promise<JobActionResult> =>
  post(`/api/v1/jobs/${encodeURIComponent(String(id))}/${action}`, why(reason));

export async function logout(): Promise<void> {
  csrf ??= session();
  const token = await csrf.catch(() => '');
  await fetch('/logout', { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': token }, redirect: 'manual' }).catch(() => undefined);
  toLogin();
}
