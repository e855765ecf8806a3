import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { GUEST_MODULES, buildTestImage, type ImageManifest } from '../../src/vm/image/build.js';
import { defaultCacheDir } from '../../src/vm/image/debs.js';
import { runImageBuild } from '../../src/main/image.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.sequential('hangar image build test', () => {
  let out: string;
  let manifest: ImageManifest;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'hangar-image-'));
    manifest = await runImageBuild({ kind: 'test', out }); // the .debs come from the shared cache
  }, 600_000);
  afterAll(async () => {
    if (out) await rm(out, { recursive: true, force: true });
  });

  test('writes vmlinux, initramfs.cpio and a manifest whose sha256s match the files', async () => {
    const onDisk = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as ImageManifest;
    expect(onDisk).toEqual(manifest);
    for (const name of ['vmlinux', 'initramfs.cpio'] as const) {
      const data = await readFile(join(out, name));
      expect(manifest.files[name]).toEqual({ sha256: sha256(data), bytes: data.length });
    }
    expect(manifest.kernel.release).toMatch(/^\d+\.\d+\.\d+-\d+-cloud-amd64$/);
    expect(manifest.kernel.package).toBe(`linux-image-${manifest.kernel.release}`);
    expect(Object.keys(manifest.packages).sort()).toEqual(
      ['busybox-static', 'linux-image-cloud-amd64', manifest.kernel.package].sort(),
    );
    expect(manifest.modules).toEqual([...GUEST_MODULES]);
  });

  test('vmlinux is the uncompressed ELF kernel with a PVH note', async () => {
    const vmlinux = await readFile(join(out, 'vmlinux'));
    expect(vmlinux.subarray(0, 4)).toEqual(Buffer.from([0x7f, 0x45, 0x4c, 0x46]));
    // XEN_ELFNOTE_PHYS32_ENTRY (18) in a "Xen" note: what microvm's PVH boot looks for.
    const notes = await execa('readelf', ['-n', join(out, 'vmlinux')], { reject: false });
    if (notes.exitCode === 0) expect(String(notes.stdout)).toMatch(/Xen\s+0x[0-9a-f]+\s+Unknown note type: \(0x00000012\)/);
  });

  test('the initramfs holds busybox, the modules, /init, the runner and /dev/console', async () => {
    const busybox = join(defaultCacheDir(), 'busybox', manifest.packages['busybox-static']!, 'bin/busybox');
    const list = await execa(busybox, ['cpio', '-t', '-v', '-F', join(out, 'initramfs.cpio')]);
    const lines = String(list.stdout).split('\n');
    const names = lines.map((l) => l.split(/\s+/).slice(5).join(' ').replace(/ -> .*/, ''));
    for (const want of ['init', 'bin/busybox', 'hangar/runner.sh', 'hangar/net.sh', 'hangar/job-started.sh', 'dev/console', 'bin/sh', 'sbin/ip', 'usr/bin/wget',
      ...GUEST_MODULES.map((m) => `lib/modules/${m}.ko`)]) {
      expect(names, want).toContain(want);
    }
    expect(lines.find((l) => l.endsWith(' init'))).toMatch(/^-rwxr-xr-x/);
    for (const [path, d] of Object.entries(manifest.initramfs)) expect(d.sha256, path).toMatch(/^[0-9a-f]{64}$/);
    expect(manifest.initramfs.init!.sha256).toBe(sha256(await readFile('src/vm/image/init.sh')));
    expect(manifest.initramfs['hangar/runner.sh']!.sha256).toBe(sha256(await readFile('src/sim/runner.sh')));
    expect(manifest.initramfs['hangar/net.sh']!.sha256).toBe(sha256(await readFile('src/vm/image/guest-net.sh')));
    expect(manifest.initramfs['hangar/job-started.sh']!.sha256).toBe(sha256(await readFile('src/vm/image/job-started.sh')));
  });

  test('a rebuild is idempotent: same bytes, same manifest, and fast from the cache', async () => {
    const before = (await stat(join(out, 'vmlinux'))).size;
    const started = Date.now();
    const again = await buildTestImage({ out });
    expect(again).toEqual(manifest);
    expect((await stat(join(out, 'vmlinux'))).size).toBe(before);
    expect(Date.now() - started).toBeLessThan(30_000);
  }, 60_000);
});
