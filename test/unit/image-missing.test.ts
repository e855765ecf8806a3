import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { resolveImage } from '../../src/agent/image.js';
import { ConfigError } from '../../src/domain/errors.js';
import { DriverError } from '../../src/vm/errors.js';
import type { VmSpec } from '../../src/vm/driver.js';
import { checkImage } from '../../src/vm/qemu-microvm/prepare.js';

/**
 * A missing image names both kinds, and says the runner image is the one for real GitHub: the
 * test image alone would put the sim's runner in front of github.com (issue 14).
 */
const dir = mkdtempSync(join(tmpdir(), 'hangar-image-missing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const bothKinds = (msg: string, at: string) => {
  expect(msg).toContain(`hangar image build runner --out ${at} --runner-tarball actions-runner-linux-x64-<version>.tar.gz`);
  expect(msg).toMatch(/production image, with GitHub's actions\/runner: the one for real GitHub/);
  expect(msg).toContain(`hangar image build test --out ${at}`);
  expect(msg).toMatch(/test image, whose runner speaks only to `hangar sim`/);
  // The runner image is offered first: the test image is not the answer for a real install.
  expect(msg.indexOf('build runner')).toBeLessThan(msg.indexOf('build test'));
};

test('the agent at start: an empty image folder', () => {
  let err: unknown;
  try {
    resolveImage(dir);
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ConfigError);
  const problem = (err as ConfigError).problems[0]!;
  expect(problem.path).toBe('agent.vm.image');
  expect(problem.message).toContain(`${join(dir, 'vmlinux')} is missing`);
  bothKinds(problem.message, dir);
});

test('the VM driver at create: a kernel that is not there', async () => {
  writeFileSync(join(dir, 'rootfs.img'), '');
  const spec = { id: 'wj-1-1', kernel: join(dir, 'vmlinux'), rootDisk: join(dir, 'rootfs.img'), memoryMiB: 256, vcpus: 1 } as VmSpec;
  const err = await checkImage(spec).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(DriverError);
  expect((err as DriverError).code).toBe('image-missing');
  expect((err as DriverError).message).toContain(`kernel ${join(dir, 'vmlinux')} does not exist`);
  bothKinds((err as DriverError).message, 'DIR');
});
