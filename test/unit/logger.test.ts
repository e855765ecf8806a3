import { describe, expect, test } from 'vitest';
import { createLogger } from '../../src/main/logger.js';

describe('logger', () => {
  test('redacts secret-bearing fields wherever a careless caller puts them', () => {
    const lines: string[] = [];
    const log = createLogger('t', 'info', { write: (s: string) => void lines.push(s) });
    log.info({ secret: 's1', token: 't1', jitConfig: 'j1', encoded_jit_config: 'e1', privateKey: 'k1' }, 'top level');
    log.info({ req: { headers: { authorization: 'Bearer a1', 'x-hub-signature-256': 'sha256=h1' } } }, 'request');
    log.child({ workflowJobId: 1 }).info({ runner: { token: 't2', encoded_jit_config: 'e2' } }, 'nested');
    const out = lines.join('');
    for (const s of ['s1', 't1', 'j1', 'e1', 'k1', 'a1', 'h1', 't2', 'e2']) expect(out).not.toContain(`"${s}"`);
    expect(out).not.toContain('sha256=h1');
    expect(out.match(/\[redacted\]/g)?.length).toBe(9);
    expect(out).toContain('"workflowJobId":1');
  });
});
