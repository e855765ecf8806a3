import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { runImageBuild } from '../../src/main/image.js';
import { DriverError } from '../../src/vm/errors.js';
import { verifyRunnerTarball } from '../../src/vm/image/runner.js';

/** `hangar image build runner --runner-sha256`: the tarball checked against GitHub's published digest before any build. */
const dir = mkdtempSync(join(tmpdir(), 'hangar-runner-sha-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const tarball = join(dir, 'actions-runner-linux-x64-2.329.0.tar.gz');
writeFileSync(tarball, 'not really a runner, but bytes with a digest');
const right = createHash('sha256').update('not really a runner, but bytes with a digest').digest('hex');

test.each([
  ['the hex GitHub publishes', right],
  ['with the release API\'s sha256: prefix, upper case', `sha256:${right.toUpperCase()}`],
])('accepted: %s', async (_n, want) => {
  expect(await verifyRunnerTarball(tarball, want)).toEqual({ sha256: right, bytes: 44 });
});

test('a different digest is refused, naming both', async () => {
  const wrong = 'a'.repeat(64);
  const err = await verifyRunnerTarball(tarball, wrong).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  expect((err as DriverError).message).toContain(`has sha256 ${right}, not ${wrong}`);
});

test('not a digest, or no file: refused', async () => {
  await expect(verifyRunnerTarball(tarball, 'abc')).rejects.toThrow(/expected 64 hex digits/);
  await expect(verifyRunnerTarball(join(dir, 'nope.tar.gz'), right)).rejects.toThrow(/does not exist/);
});

test('runImageBuild stops on a mismatch before it builds anything (nothing in --out)', async () => {
  const out = join(dir, 'never');
  await expect(runImageBuild({ kind: 'runner', out, runnerTarball: tarball, runnerSha256: '0'.repeat(64) })).rejects.toThrow(/not the file GitHub published/);
  const { existsSync } = await import('node:fs');
  expect(existsSync(out)).toBe(false);
});
