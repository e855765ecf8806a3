import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { Keys } from '../queue/keys.js';

/**
 * Who may look: the operator, by the token in `dashboard.tokenFile`. Either as
 * `Authorization: Bearer <token>` (scripts, `hangar status`), or through a login that sets the
 * `hangar_session` cookie: a random id (HttpOnly, SameSite=Strict, Path=/, Secure over TLS)
 * whose sha256 alone is kept in Redis with the session's TTL, so every control replica knows
 * it and a Redis dump holds nothing a browser could use. A cookie session's actions carry its
 * CSRF token (from /api/v1/session) in `x-csrf-token`. Failed tries are limited per address.
 */
export const SESSION_COOKIE = 'hangar_session';

export type Caller =
  | { via: 'bearer' }
  | { via: 'cookie'; idHash: string; csrf: string; expiresAt: number }
  /** A credential was sent and is wrong (counted as a failure). */
  | { via: 'refused' }
  | { via: 'none' };

interface StoredSession {
  csrf: string;
  expiresAt: number;
  /**
   * sha256 of the operator token and the session's id hash: a session holds only while the
   * token it logged in with is the one in force, so replacing the token file (and restarting
   * the control) ends every session at once. Not the token, and different for every session.
   */
  bound: string;
}

const binding = (token: string, idHash: string): string => sha256(`${token}\0${idHash}`).toString('hex');

const sha256 = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Constant time whatever the lengths: both sides are hashed to 32 bytes first. */
export function sameSecret(given: string, want: string): boolean {
  return timingSafeEqual(sha256(given), sha256(want));
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    try {
      out[name] = decodeURIComponent(part.slice(i + 1).trim());
    } catch {
      // A cookie that is not ours (or is mangled) is not a session.
    }
  }
  return out;
}

export interface AuthDeps {
  redis: Redis;
  keys: Keys;
  token: string;
  sessionSeconds: number;
  /** Failed tries per address before 429, per window. */
  maxFailures?: number;
  failureWindowMs?: number;
  now?: () => number;
}

export class DashboardAuth {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();
  private readonly now: () => number;

  constructor(private readonly d: AuthDeps) {
    this.now = d.now ?? Date.now;
  }

  async caller(req: FastifyRequest): Promise<Caller> {
    const auth = req.headers.authorization;
    if (auth !== undefined) {
      const m = /^Bearer (.+)$/i.exec(auth.trim());
      return m && sameSecret(m[1]!, this.d.token) ? { via: 'bearer' } : { via: 'refused' };
    }
    const id = parseCookies(req.headers.cookie)[SESSION_COOKIE];
    if (!id) return { via: 'none' };
    const idHash = sha256(id).toString('hex');
    const raw = await this.d.redis.get(this.d.keys.dashboardSession(idHash));
    if (!raw) return { via: 'none' };
    const s = JSON.parse(raw) as Partial<StoredSession>;
    // A session of another token (rotated since) is no session: the login page again.
    if (typeof s.bound !== 'string' || !sameSecret(s.bound, binding(this.d.token, idHash)) || typeof s.csrf !== 'string') return { via: 'none' };
    return { via: 'cookie', idHash, csrf: s.csrf, expiresAt: Number(s.expiresAt) };
  }

  /** A new session for a correct token: the cookie's value (never stored) and its CSRF token. */
  async login(token: string): Promise<{ id: string; csrf: string; expiresAt: number } | null> {
    if (!sameSecret(token, this.d.token)) return null;
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const expiresAt = this.now() + this.d.sessionSeconds * 1000;
    const idHash = sha256(id).toString('hex');
    const stored: StoredSession = { csrf, expiresAt, bound: binding(this.d.token, idHash) };
    await this.d.redis.set(this.d.keys.dashboardSession(idHash), JSON.stringify(stored), 'EX', this.d.sessionSeconds);
    return { id, csrf, expiresAt };
  }

  async logout(idHash: string): Promise<void> {
    await this.d.redis.del(this.d.keys.dashboardSession(idHash));
  }

  /** The cookie to set (or, with `id` null, to clear). */
  cookie(id: string | null, secure: boolean): string {
    const attrs = ['HttpOnly', 'SameSite=Strict', 'Path=/', ...(secure ? ['Secure'] : [])];
    return id === null ? `${SESSION_COOKIE}=; Max-Age=0; ${attrs.join('; ')}` : `${SESSION_COOKIE}=${id}; Max-Age=${this.d.sessionSeconds}; ${attrs.join('; ')}`;
  }

  /** True while this address may try again. */
  allowed(address: string): boolean {
    const f = this.failures.get(address);
    return !f || f.resetAt <= this.now() || f.count < (this.d.maxFailures ?? 10);
  }

  failed(address: string): void {
    const now = this.now();
    const f = this.failures.get(address);
    if (!f || f.resetAt <= now) this.failures.set(address, { count: 1, resetAt: now + (this.d.failureWindowMs ?? 60_000) });
    else f.count++;
    // Bounded: the oldest entries go when an address flood fills it.
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  /** Seconds until this address may try again. */
  retryAfter(address: string): number {
    const f = this.failures.get(address);
    return f ? Math.max(1, Math.ceil((f.resetAt - this.now()) / 1000)) : 1;
  }
}

/** A cookie session's action without its CSRF token is refused (a bearer caller needs none). */
export function csrfHolds(caller: Caller, req: FastifyRequest, formValue?: string): boolean {
  if (caller.via === 'bearer') return true;
  if (caller.via !== 'cookie') return false;
  const given = req.headers['x-csrf-token'];
  const value = typeof given === 'string' ? given : formValue;
  return typeof value === 'string' && value !== '' && sameSecret(value, caller.csrf);
}

/** Headers on every answer of the dashboard listener. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export function setSecurityHeaders(reply: FastifyReply, api: boolean): void {
  void reply.headers(SECURITY_HEADERS);
  if (api) void reply.header('cache-control', 'no-store');
}
