import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { PayloadError } from '../../src/domain/errors.js';
import { parseWorkflowJob } from '../../src/intake/parse.js';
import { verifySignature } from '../../src/intake/verify.js';
import { examplePayloads } from '../helpers/payloads.js';

describe('verifySignature', () => {
  const bytes = (s: string) => Buffer.from(s);

  test("GitHub's documented test vector verifies", () => {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
    const sig = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17';
    expect(verifySignature(["It's a Secret to Everybody"], bytes('Hello, World!'), sig)).toBe('valid');
    expect(verifySignature(["It's a Secret to Everybody"], bytes('Hello, World?'), sig)).toBe('mismatch');
  });

  test('the previous secret verifies during a rotation; a third does not', () => {
    const body = bytes('{"a":1}');
    const sig = (s: string) => `sha256=${createHmac('sha256', s).update(body).digest('hex')}`;
    expect(verifySignature(['new', 'old'], body, sig('old'))).toBe('valid');
    expect(verifySignature(['new', 'old'], body, sig('new'))).toBe('valid');
    expect(verifySignature(['new', 'old'], body, sig('other'))).toBe('mismatch');
    expect(verifySignature(['new'], body, sig('old'))).toBe('mismatch');
  });

  test('the HMAC is over the bytes: a body that is not UTF-8 verifies over its bytes, not over a decoded text', () => {
    const body = Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]); // {"a":"<0xff>"}
    const overBytes = `sha256=${createHmac('sha256', 's').update(body).digest('hex')}`;
    const overText = `sha256=${createHmac('sha256', 's').update(body.toString('utf8')).digest('hex')}`;
    expect(verifySignature(['s'], body, overBytes)).toBe('valid');
    expect(verifySignature(['s'], body, overText)).toBe('mismatch');
  });

  test('an empty secret never verifies (anyone can compute its HMAC)', () => {
    const body = bytes('{}');
    expect(verifySignature([''], body, `sha256=${createHmac('sha256', '').update(body).digest('hex')}`)).toBe('mismatch');
  });

  test.each([
    ['missing', undefined, 'missing'],
    ['empty', '', 'malformed'],
    ['sha1', 'sha1=0123456789abcdef0123456789abcdef01234567', 'malformed'],
    ['short', 'sha256=abc', 'malformed'],
    ['non-hex', `sha256=${'z'.repeat(64)}`, 'malformed'],
    ['uppercase hex', `sha256=${'A'.repeat(64)}`, 'malformed'],
    ['array', ['sha256=' + '0'.repeat(64)], 'malformed'],
    ['well-formed but wrong', `sha256=${'0'.repeat(64)}`, 'mismatch'],
  ])('%s signature fails', (_n, header, want) => {
    expect(verifySignature(['s'], bytes('body'), header as string | undefined)).toBe(want);
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
