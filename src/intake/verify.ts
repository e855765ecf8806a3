import { createHmac, timingSafeEqual } from 'node:crypto';

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/** What a delivery's `X-Hub-Signature-256` turned out to be; anything but `valid` is refused. */
export type SignatureCheck = 'valid' | 'missing' | 'malformed' | 'mismatch';

/**
 * Checks `X-Hub-Signature-256` over the body's bytes as received (not a decoded and re-encoded
 * text, which would differ from them wherever the bytes are not valid UTF-8): HMAC SHA-256,
 * constant-time compare, current secret first, then the previous ones while a rotation is
 * under way. A header that is not `sha256=` + 64 lowercase hex digits fails before any HMAC is
 * computed; its shape is public, so that leaks nothing.
 */
export function verifySignature(secrets: readonly string[], body: Uint8Array, header: string | string[] | undefined): SignatureCheck {
  if (header === undefined) return 'missing';
  if (typeof header !== 'string' || !SIGNATURE.test(header)) return 'malformed';
  const given = Buffer.from(header.slice('sha256='.length), 'hex');
  for (const secret of secrets) {
    // An empty key would let anyone sign (config refuses empty secret files; this is the backstop).
    if (secret !== '' && timingSafeEqual(createHmac('sha256', secret).update(body).digest(), given)) return 'valid';
  }
  return 'mismatch';
}
