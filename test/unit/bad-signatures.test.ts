import { pino } from 'pino';
import { describe, expect, test } from 'vitest';
import { BadSignatures } from '../../src/intake/bad-signatures.js';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { logger, lines };
}

describe('BadSignatures', () => {
  test('one line per interval, with the deliveries left unlogged since the previous line; all counted', () => {
    const { logger, lines } = capture();
    let now = 1_000_000;
    const bad = new BadSignatures(logger, 10_000, () => now);
    bad.record('mismatch', 'd-1');
    for (let i = 2; i <= 6; i++) {
      now += 1000;
      bad.record('mismatch', `d-${i}`);
    }
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, deliveryId: 'd-1', signature: 'mismatch', unloggedSinceLastLine: 0, badSignatures: 1 });
    expect(lines[0]!.msg).toContain('github.webhookSecretFile');
    expect(lines[0]!.msg).toContain('github.previousWebhookSecretFile');

    now += 5000; // 10 s after the first line
    bad.record('missing', null);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ deliveryId: null, signature: 'missing', unloggedSinceLastLine: 5, badSignatures: 7 });
    expect(bad.health()).toEqual({ badSignatures: 7, lastBadSignatureAt: new Date(now).toISOString() });
  });

  test('nothing refused yet: zero and no time', () => {
    expect(new BadSignatures(capture().logger).health()).toEqual({ badSignatures: 0, lastBadSignatureAt: null });
  });
});
