import type { Logger } from 'pino';
import type { SignatureCheck } from './verify.js';

/** What each kind of refused signature most likely means, and what the operator can do about it. */
const FIX: Record<Exclude<SignatureCheck, 'valid'>, string> = {
  mismatch:
    "webhook signature does not match: the webhook secret in github.webhookSecretFile does not match the GitHub App's webhook secret: " +
    'set the same value in both; during a rotation put the old one in github.previousWebhookSecretFile',
  missing:
    "webhook has no X-Hub-Signature-256: the GitHub App has no webhook secret: set one, and the same value in github.webhookSecretFile",
  malformed: 'webhook signature is not sha256= and 64 lowercase hex digits: not a delivery from GitHub, or from a proxy that rewrites it',
};

export interface BadSignatureHealth {
  /** Deliveries refused for their signature since the control started. */
  badSignatures: number;
  lastBadSignatureAt: string | null;
}

/**
 * Counts deliveries refused for their signature (for /healthz; Prometheus counts them as
 * `hangar_webhook_deliveries_total{result="bad-signature"}`) and warns about them, at most one
 * line per `intervalMs` with how many were left unlogged since the last line, so a flood of
 * them cannot flood the log. The line names the delivery, never the secret or the signature.
 */
export class BadSignatures {
  private count = 0;
  private lastAt: number | null = null;
  private lastLoggedAt = -Infinity;
  private unlogged = 0;

  constructor(
    private readonly logger: Logger,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** `deliveryId` is the header as received, checked for shape by the caller (null when it is not a delivery id). */
  record(check: Exclude<SignatureCheck, 'valid'>, deliveryId: string | null): void {
    const at = this.now();
    this.count++;
    this.lastAt = at;
    if (at - this.lastLoggedAt < this.intervalMs) {
      this.unlogged++;
      return;
    }
    this.logger.warn({ deliveryId, signature: check, unloggedSinceLastLine: this.unlogged, badSignatures: this.count }, FIX[check]);
    this.lastLoggedAt = at;
    this.unlogged = 0;
  }

  health(): BadSignatureHealth {
    return { badSignatures: this.count, lastBadSignatureAt: this.lastAt === null ? null : new Date(this.lastAt).toISOString() };
  }
}
