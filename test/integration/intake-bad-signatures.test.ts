import { pino } from 'pino';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startTestControl, TEST_SECRET, type TestControl } from '../helpers/control.js';
import { jobPayload, sign } from '../helpers/payloads.js';
import { dropPrefix, redisUrl, testPrefix } from '../helpers/redis.js';

/** The interval BadSignatures logs at most one line in (its default, as buildControl uses it). */
const LOG_INTERVAL_MS = 10_000;
const WRONG_SECRET = 'the-secret-the-app-does-not-have-42';

let control: TestControl;
let prefix: string;
const lines: string[] = [];

beforeAll(async () => {
  prefix = testPrefix();
  const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(s) });
  control = await startTestControl({ redisUrl: redisUrl(), prefix, logger });
});
afterAll(async () => {
  await control.close();
  await dropPrefix(redisUrl(), prefix);
});

const post = (deliveryId: string, body: string, signature: string) =>
  fetch(`${control.webhookUrl}/webhooks/github`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-github-event': 'workflow_job', 'x-github-delivery': deliveryId, 'x-hub-signature-256': signature },
    body,
  }).then((r) => r.status);

test('a burst signed with the wrong secret: each 401, one warning naming the first delivery and the fix, never a secret; /healthz counts them and stays 200', async () => {
  const body = JSON.stringify(jobPayload({ id: 881 }));
  const signature = sign(WRONG_SECRET, body);
  const started = Date.now();
  const statuses = [await post('wrong-secret-first', body, signature)];
  for (let batch = 0; batch < 200; batch += 50) {
    statuses.push(...(await Promise.all(Array.from({ length: 50 }, (_, j) => post(`wrong-secret-${batch + j}`, body, signature)))));
  }
  const elapsedMs = Date.now() - started;
  expect(statuses).toEqual(Array(201).fill(401));

  const warnings = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.unit === 'intake' && l.signature);
  // One line per interval: exactly one whenever the burst took less than one (it takes well under a second).
  expect(warnings.length).toBeGreaterThanOrEqual(1);
  expect(warnings.length).toBeLessThanOrEqual(1 + Math.floor(elapsedMs / LOG_INTERVAL_MS));
  expect(warnings[0]).toMatchObject({ level: 40, deliveryId: 'wrong-secret-first', signature: 'mismatch', badSignatures: 1 });
  expect(warnings[0]!.msg).toContain('github.webhookSecretFile');
  expect(warnings[0]!.msg).toContain('github.previousWebhookSecretFile');
  const all = lines.join('\n');
  for (const secret of [WRONG_SECRET, TEST_SECRET, signature, signature.slice(7)]) expect(all).not.toContain(secret);

  const health = await fetch(`${control.url}/healthz`);
  expect(health.status).toBe(200);
  const h = (await health.json()) as { ok: boolean; badSignatures: number; lastBadSignatureAt: string };
  expect(h).toMatchObject({ ok: true, redis: 'up', badSignatures: 201 });
  expect(Date.parse(h.lastBadSignatureAt)).toBeGreaterThanOrEqual(started - 1000);
  const metrics = await (await fetch(`${control.url}/metrics`)).text();
  expect(metrics).toMatch(/hangar_webhook_deliveries_total\{result="bad-signature"\} 201\n/);
});
