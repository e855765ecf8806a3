import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { buildTestImage, type ImageManifest } from '../vm/image/build.js';
import { sourceAsset } from '../vm/image/assets.js';
import { defaultCacheDir } from '../vm/image/debs.js';

/**
 * The test image for the demo, the tests and the benchmarks: built into the cache when missing,
 * or when /init or the sim runner changed since (a warm rebuild takes a few seconds; a cold one
 * downloads ~30 MB of .debs from Debian's archive). Checks QEMU first, so a machine without it
 * gets the fix in the message rather than an error deep inside.
 */
export interface TestImage {
  dir: string;
  kernel: string;
  initrd: string;
  manifest: ImageManifest;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

export async function ensureTestImage(dir = process.env.HANGAR_TEST_IMAGE_DIR ?? join(defaultCacheDir(), 'test-image')): Promise<TestImage> {
  for (const [tool, pkg] of [['qemu-system-x86_64', 'qemu-system-x86'], ['qemu-img', 'qemu-utils']] as const) {
    const r = await execa(tool, ['--version'], { reject: false });
    if (r.exitCode !== 0) throw new Error(`${tool} is not installed: microVMs need it (apt-get install -y ${pkg}; test/setup.sh does this)`);
  }
  let manifest = await readManifest(dir);
  if (!manifest || !(await upToDate(manifest))) manifest = await buildTestImage({ out: dir });
  return { dir, kernel: join(dir, 'vmlinux'), initrd: join(dir, 'initramfs.cpio'), manifest };
}

async function readManifest(dir: string): Promise<ImageManifest | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as ImageManifest;
    const cpio = await readFile(join(dir, 'initramfs.cpio'));
    return sha256(cpio) === m.files['initramfs.cpio'].sha256 ? m : null;
  } catch {
    return null;
  }
}

async function upToDate(m: ImageManifest): Promise<boolean> {
  // Every script of Hangar's in the initramfs: an edit to any of them rebuilds the image.
  const scripts: Array<[string, string]> = [['init', 'vm/image/init.sh'], ['hangar/runner.sh', 'sim/runner.sh'], ['hangar/net.sh', 'vm/image/guest-net.sh'], ['hangar/job-started.sh', 'vm/image/job-started.sh']];
  for (const [path, asset] of scripts) {
    if (m.initramfs[path]?.sha256 !== sha256(await readFile(sourceAsset(asset)))) return false;
  }
  return true;
}
