import { createHash, timingSafeEqual } from 'node:crypto';
import type { MintHost } from '../domain/mint-policy.js';

export interface KnownHost extends MintHost {
  tokenSha256: string;
}

/**
 * Finds the host whose token this is. The control keeps only sha256 of each token; every
 * host's hash is compared in constant time, so the answer's timing says nothing about which
 * host (if any) came close.
 */
export function authenticateHost(hosts: readonly KnownHost[], authorization: string | undefined): KnownHost | null {
  const m = /^Bearer ([A-Za-z0-9_.~+/=-]{16,512})$/.exec(authorization ?? '');
  if (!m) return null;
  const digest = createHash('sha256').update(m[1]!).digest();
  let found: KnownHost | null = null;
  for (const h of hosts) {
    if (timingSafeEqual(digest, Buffer.from(h.tokenSha256, 'hex')) && !found) found = h;
  }
  return found;
}

export const tokenSha256 = (token: string): string => createHash('sha256').update(token).digest('hex');
