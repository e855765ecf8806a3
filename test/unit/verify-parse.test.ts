import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { PayloadError } from '../../src/domain/errors.js';
import { parseWorkflowJob } from '../../src/intake/parse.js';
import { verifySignature } from '../../src/intake/verify.js';
import { examplePayloads } from '../helpers/payloads.js';

describe('verifySignature', () => {
  test("GitHub's documented test vector verifies", async () => {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    const sig = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    expect(await verifySignature(["It's a Secret to Everybody"], 'Hello, World!', sig)).toBe(true);
    expect(await verifySignature(["It's a Secret to Everybody"], 'Hello, World?', sig)).toBe(false);
  });

  test('the previous secret verifies during a rotation; a third does not', async () => {
    const body = '{"a":1}';
    const sig = (s: string) => `sha256=${createHmac('sha256', s).update(body).digest('hex')}`;
    expect(await verifySignature(['new', 'old'], body, sig('old'))).toBe(true);
    expect(await verifySignature(['new', 'old'], body, sig('new'))).toBe(true);
    expect(await verifySignature(['new', 'old'], body, sig('other'))).toBe(false);
    expect(await verifySignature(['new'], body, sig('old'))).toBe(false);
  });

  test.each([
    ['missing', undefined],
    ['empty', ''],
    ['sha1', 'sha1=0123456789abcdef0123456789abcdef01234567'],
    ['short', 'sha256=abc'],
    ['non-hex', `sha256=${'z'.repeat(64)}`],
    ['uppercase hex', `sha256=${'A'.repeat(64)}`],
    ['array', ['sha256=' + '0'.repeat(64)]],
  ])('%s signature fails', async (_n, header) => {
    expect(await verifySignature(['s'], 'body', header as string | undefined)).toBe(false);
  });
});

describe('parseWorkflowJob', () => {
  test('every real example parses', () => {
    const examples = examplePayloads();
    expect(examples.length).toBeGreaterThanOrEqual(3);
    for (const { payload } of examples) {
      const ev = parseWorkflowJob(payload);
      const p = payload as { action: string; workflow_job: { id: number } };
      if (['queued', 'in_progress', 'completed'].includes(p.action)) expect(ev?.workflowJobId).toBe(p.workflow_job.id);
      else expect(ev).toBeNull();
    }
  });

  test.each([
    ['workflow_job.id', (p: any) => delete p.workflow_job.id],
    ['workflow_job.labels', (p: any) => (p.workflow_job.labels = 'self-hosted')],
    ['workflow_job.run_attempt', (p: any) => (p.workflow_job.run_attempt = 0)],
    ['repository.private', (p: any) => (p.repository.private = 'yes')],
    ['repository.full_name', (p: any) => (p.repository.full_name = 'no slash')],
    ['repository', (p: any) => delete p.repository],
  ])('a bad %s is named', (field, mutate) => {
    const payload = structuredClone(examplePayloads()[0]!.payload) as any;
    mutate(payload);
    let err: unknown;
    try {
      parseWorkflowJob(payload);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PayloadError);
    expect((err as PayloadError).field).toBe(field);
  });
});
