import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { readConsoleTail, redactSecrets } from '../../src/agent/console-tail.js';

const jit = Buffer.from(JSON.stringify({ '.runner': 'a'.repeat(30), '.credentials': 'b'.repeat(30) })).toString('base64');
const b64 = (n: number) => Buffer.from('x'.repeat(n)).toString('base64');

describe('redactSecrets', () => {
  test.each([
    ['plain console text stays', 'HANGAR-RUNNER-START\nrunner.sh: sim unreachable\n', [], 'HANGAR-RUNNER-START\nrunner.sh: sim unreachable\n'],
    ['the VM\'s own JIT config, wherever it is', `cfg=${jit.slice(0, 90)} and ${jit.slice(0, 90)}!`, [jit.slice(0, 90)], 'cfg=[redacted] and [redacted]!'],
    ['a bearer token after its scheme', 'Authorization: Bearer abcdef0123456789', [], 'Authorization: Bearer [redacted]'],
    ['a sim runner token', 'wget --header RunnerToken 3f9a1c2d-77aa-4bb1', [], 'wget --header RunnerToken [redacted]'],
    ['"token <value>" in any case', 'using TOKEN s3cr3t-v4lue-here', [], 'using TOKEN [redacted]'],
    ['a JWT', 'jwt=eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiIxIn0.c2lnbmF0dXJl done', [], 'jwt=[redacted] done'],
    ['an installation token', 'x ghs_16C7e42F292c6912E7710c838347Ae178B4a y', [], 'x [redacted] y'],
    ['a personal access token', 'ghp_ABCDEFGHIJKLMNOPQRSTuvwx0123', [], '[redacted]'],
    ['a fine-grained token', 'github_pat_11ABCDEFG0123456789_abcdefXYZ', [], '[redacted]'],
    ['a base64 run longer than 100', `before ${b64(90)} after`, [], 'before [redacted] after'],
    ['a base64 run of 100 or fewer stays', `sha ${'a1'.repeat(32)} ok`, [], `sha ${'a1'.repeat(32)} ok`],
    ['a secret shorter than 8 is not searched for (it would cut words)', 'the cat sat', ['cat'], 'the cat sat'],
  ])('%s', (_name, text, secrets, want) => expect(redactSecrets(text, secrets)).toBe(want));

  test('a JIT config split by the guest still leaves no long piece', () => {
    const big = b64(3000);
    const out = redactSecrets(`${big.slice(0, 1500)}\r\n${big.slice(1500)}`);
    expect(out).toBe('[redacted]\r\n[redacted]');
  });
});

describe('readConsoleTail', () => {
  test('keeps about the last 8 KiB, starting at a whole line, with secrets cut out; missing file: empty', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hangar-tail-'));
    try {
      const file = join(dir, 'console.log');
      const lines = Array.from({ length: 400 }, (_, i) => `line ${i} ${'.'.repeat(60)}`);
      await writeFile(file, `${lines.join('\n')}\nthe config: ${jit}\nHANGAR-RUNNER-EXIT 70\n`);
      const tail = await readConsoleTail(file, [jit]);
      expect(tail.length).toBeLessThanOrEqual(8 * 1024);
      expect(tail.length).toBeGreaterThan(7 * 1024);
      expect(tail).toMatch(/^line \d+ /);
      expect(tail).not.toContain('line 0 ');
      expect(tail).toContain('the config: [redacted]\nHANGAR-RUNNER-EXIT 70\n');
      expect(tail).not.toContain(jit);
      await writeFile(file, 'short\n');
      expect(await readConsoleTail(file)).toBe('short\n');
      expect(await readConsoleTail(join(dir, 'nope.log'))).toBe('');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
