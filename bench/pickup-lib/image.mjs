// The test image, as test/vm/ensure-image.ts finds or builds it, over dist/: the cached one
// (HANGAR_TEST_IMAGE_DIR, else <cache>/test-image) when its /init and sim runner are current.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const sha256 = (b) => createHash('sha256').update(b).digest('hex');

export async function ensureTestImage(root) {
  const dist = (p) => pathToFileURL(join(root, 'dist', p)).href;
  const { buildTestImage } = await import(dist('vm/image/build.js'));
  const { sourceAsset } = await import(dist('vm/image/assets.js'));
  const { defaultCacheDir } = await import(dist('vm/image/debs.js'));
  const dir = process.env.HANGAR_TEST_IMAGE_DIR ?? join(defaultCacheDir(), 'test-image');
  let manifest = null;
  try {
    manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    if (sha256(await readFile(join(dir, 'initramfs.cpio'))) !== manifest.files['initramfs.cpio'].sha256) manifest = null;
  } catch {
    manifest = null;
  }
  const current = async (m) => {
    const init = await readFile(sourceAsset('vm/image/init.sh'));
    const runner = await readFile(sourceAsset('sim/runner.sh'));
    return m.initramfs.init?.sha256 === sha256(init) && m.initramfs['hangar/runner.sh']?.sha256 === sha256(runner);
  };
  let built = false;
  if (!manifest || !(await current(manifest))) {
    manifest = await buildTestImage({ out: dir });
    built = true;
  }
  return { dir, kernel: join(dir, 'vmlinux'), initrd: join(dir, 'initramfs.cpio'), manifest, built };
}
