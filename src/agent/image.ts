import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError } from '../domain/errors.js';
import { buildImageHint } from '../vm/image/kinds.js';
import type { GuestImage } from './host-parts.js';

/**
 * The files of a folder made by `hangar image build`: the test image boots an initramfs, the
 * runner image a root disk. A folder with neither is refused at start, naming what is missing.
 */
export function resolveImage(dir: string): GuestImage {
  const kernel = join(dir, 'vmlinux');
  const initrd = join(dir, 'initramfs.cpio');
  const rootDisk = join(dir, 'rootfs.img');
  const problems: string[] = [];
  if (!existsSync(kernel)) problems.push(`${kernel} is missing`);
  const hasInitrd = existsSync(initrd);
  const hasDisk = existsSync(rootDisk);
  if (!hasInitrd && !hasDisk) problems.push(`neither ${initrd} nor ${rootDisk} exists`);
  if (problems.length > 0) {
    throw new ConfigError('agent', [{ path: 'agent.vm.image', message: `${problems.join('; ')}: ${buildImageHint(dir)}` }]);
  }
  return hasDisk ? { kernel, rootDisk, ...(hasInitrd ? { initrd } : {}) } : { kernel, initrd };
}
