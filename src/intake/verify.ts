import { verifyWithFallback } from '@octokit/webhooks-methods';

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

/**
 * Checks `X-Hub-Signature-256` over the raw body: HMAC SHA-256, constant-time compare
 * (`@octokit/webhooks-methods`), current secret first, then the previous one while a
 * rotation is under way. A header that is not `sha256=` + 64 lowercase hex digits fails
 * before any HMAC is computed; its shape is public, so that leaks nothing.
 */
export async function verifySignature(
  secrets: readonly string[],
  rawBody: string,
  header: string | string[] | undefined,
): Promise<boolean> {
  if (typeof header !== 'string' || !SIGNATURE.test(header) || rawBody.length === 0) return false;
  const [current, ...previous] = secrets;
  if (!current) return false;
  return verifyWithFallback(current, rawBody, header, previous);
}
