import { createPublicKey, generateKeyPair, randomBytes, verify, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { SimError, DOCS } from './errors.js';

/**
 * GitHub App authentication as api.github.com checks it: an RS256 JWT signed with the App's
 * private key (iss = app id, at most ten minutes long) buys an installation token that lasts an hour.
 */

/** GitHub hands out PKCS#1 PEM keys ("BEGIN RSA PRIVATE KEY"); the sim does the same. */
export async function generateAppKey(): Promise<string> {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  return privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
}

export function publicKeyOf(privateKeyPem: string): KeyObject {
  return createPublicKey(privateKeyPem);
}

const b64json = (part: string): unknown => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
const CLOCK_SKEW_S = 60;
const MAX_LIFETIME_S = 600;

/** Verifies an App JWT; throws SimError 401 with the message GitHub gives for that fault. */
export function verifyAppJwt(jwt: string, publicKey: KeyObject, appId: number, nowS = Math.floor(Date.now() / 1000)): void {
  const undecodable = new SimError(401, 'A JSON web token could not be decoded', DOCS);
  const parts = jwt.split('.');
  if (parts.length !== 3) throw undecodable;
  const [h, p, s] = parts as [string, string, string];
  let header: { alg?: unknown };
  let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
  try {
    header = b64json(h) as typeof header;
    claims = b64json(p) as typeof claims;
  } catch {
    throw undecodable;
  }
  if (header.alg !== 'RS256') throw undecodable;
  if (!verify('RSA-SHA256', Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url'))) throw undecodable;
  if (typeof claims.iat !== 'number' || !Number.isInteger(claims.iat) || claims.iat > nowS + CLOCK_SKEW_S) {
    throw new SimError(401, "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.", DOCS);
  }
  if (typeof claims.exp !== 'number' || claims.exp <= nowS || claims.exp > nowS + MAX_LIFETIME_S + CLOCK_SKEW_S || claims.exp - claims.iat > MAX_LIFETIME_S + CLOCK_SKEW_S) {
    throw new SimError(401, "'Expiration time' claim ('exp') is too far in the future", DOCS);
  }
  if (String(claims.iss) !== String(appId)) throw new SimError(401, 'Integration not found', DOCS);
}

export interface InstallationToken {
  token: string;
  expiresAt: Date;
}

/** Installation tokens the sim has issued; expired ones are refused like a wrong one. */
export class TokenBook {
  private readonly tokens = new Map<string, Date>();

  issue(ttlSeconds: number): InstallationToken {
    // ghs_ + 36 alphanumerics, the shape of a GitHub installation token.
    const token = `ghs_${randomBytes(27).toString('base64url').replace(/[-_]/g, 'A').slice(0, 36)}`;
    const expiresAt = new Date(Date.now() + ttlSeconds * 1000);
    this.tokens.set(token, expiresAt);
    return { token, expiresAt };
  }

  /** Every token issued: for tests that search logs and stores for leaked secrets. */
  all(): string[] {
    return [...this.tokens.keys()];
  }

  valid(token: string): boolean {
    const exp = this.tokens.get(token);
    return exp !== undefined && exp.getTime() > Date.now();
  }
}

/** `Authorization: token X` or `Bearer X`; anything else is no credential. */
export function credential(header: string | undefined): string | undefined {
  const m = /^(?:token|bearer)\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}
