import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { DriverError } from '../errors.js';
import { sourceAsset } from './assets.js';
import { writeCpio, type CpioEntry } from './cpio.js';
import { defaultCacheDir, exists, extractMembers, fetchDeb, kernelPackageOf } from './debs.js';
import { extractVmlinux } from './kernel.js';

/** Loaded by /init in this order: each needs the ones before it. */
export const GUEST_MODULES = [
  'virtio_ring', 'virtio', 'virtio_mmio', 'virtio_blk', 'failover', 'net_failover', 'virtio_net', 'qemu_fw_cfg',
] as const;

export const KERNEL_META = 'linux-image-cloud-amd64';
export const BUSYBOX = 'busybox-static';

export interface TestImageOptions {
  out: string;
  /** Where .debs and unpacked kernels are kept between builds (default: see defaultCacheDir). */
  cacheDir?: string;
  /** The runner script put at /hangar/runner.sh (default: src/sim/runner.sh). */
  runnerScript?: string;
  onStep?: (step: string, fields?: Record<string, unknown>) => void;
}

export interface FileDigest { sha256: string; bytes: number }

export interface ImageManifest {
  kind: 'test';
  kernel: { release: string; package: string; version: string };
  packages: Record<string, string>;
  modules: string[];
  /** The files in the output folder. */
  files: Record<'vmlinux' | 'initramfs.cpio', FileDigest>;
  /** Each regular file inside the initramfs. */
  initramfs: Record<string, FileDigest>;
}

/**
 * Builds the test image: Debian's cloud kernel (as vmlinux) and an initramfs with static
 * busybox, the virtio modules, /init and the sim runner. Same inputs, same bytes: cpio entries
 * carry no timestamps and every output is written to a temporary name and renamed into place.
 */
export async function buildTestImage(opts: TestImageOptions): Promise<ImageManifest> {
  const cache = opts.cacheDir ?? defaultCacheDir();
  const step = opts.onStep ?? (() => {});
  const { metaVersion, pkg } = await kernelPackageOf(KERNEL_META);
  const kdeb = await fetchDeb(pkg, cache);
  step('kernel', { package: pkg, version: kdeb.version });
  const kernel = await unpackKernel(kdeb.file, join(cache, 'kernel', `${pkg}_${kdeb.version}`));
  const bdeb = await fetchDeb(BUSYBOX, cache);
  step('busybox', { version: bdeb.version });
  const busybox = await unpackBusybox(bdeb.file, join(cache, 'busybox', bdeb.version));

  const runner = opts.runnerScript ?? sourceAsset('sim/runner.sh');
  if (!(await exists(runner))) {
    throw new DriverError('image-missing', 'image', `runner script ${runner} not found`);
  }
  const files: Array<[string, Buffer, number]> = [
    ['init', await readFile(sourceAsset('vm/image/init.sh')), 0o755],
    ['hangar/runner.sh', await readFile(runner), 0o755],
    ['hangar/net.sh', await readFile(sourceAsset('vm/image/guest-net.sh')), 0o644],
    ['hangar/job-started.sh', await readFile(sourceAsset('vm/image/job-started.sh')), 0o755],
    ['bin/busybox', busybox.binary, 0o755],
    ...GUEST_MODULES.map((m): [string, Buffer, number] => [`lib/modules/${m}.ko`, kernel.modules.get(m)!, 0o644]),
  ];
  const cpio = writeCpio(initramfsEntries(files, busybox.applets));

  await mkdir(opts.out, { recursive: true });
  const vmlinux = await readFile(kernel.vmlinux);
  await writeAtomic(join(opts.out, 'vmlinux'), vmlinux);
  await writeAtomic(join(opts.out, 'initramfs.cpio'), cpio);
  const manifest: ImageManifest = {
    kind: 'test',
    kernel: { release: kernel.release, package: pkg, version: kdeb.version },
    packages: { [KERNEL_META]: metaVersion, [pkg]: kdeb.version, [BUSYBOX]: bdeb.version },
    modules: [...GUEST_MODULES],
    files: { vmlinux: digest(vmlinux), 'initramfs.cpio': digest(cpio) },
    initramfs: Object.fromEntries(files.map(([p, data]) => [p, digest(data)])),
  };
  await writeAtomic(join(opts.out, 'manifest.json'), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
  step('done', { out: opts.out });
  return manifest;
}

export function initramfsEntries(files: Array<[string, Buffer, number]>, applets: string[]): CpioEntry[] {
  const dirs = ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'run', 'etc', 'root', 'lib',
    'lib/modules', 'hangar'];
  const entries: CpioEntry[] = dirs.map((path) => ({ kind: 'dir', path }));
  entries.push({ kind: 'dir', path: 'tmp', mode: 0o1777 });
  // /init's stdio is /dev/console, opened by the kernel before /init runs and before devtmpfs.
  entries.push({ kind: 'chardev', path: 'dev/console', major: 5, minor: 1 });
  for (const [path, data, mode] of files) entries.push({ kind: 'file', path, data, mode });
  for (const a of applets) if (a !== 'bin/busybox') entries.push({ kind: 'symlink', path: a, target: '/bin/busybox' });
  return entries;
}

export interface UnpackedKernel { release: string; vmlinux: string; modules: Map<string, Buffer> }

/** vmlinux and the modules, unpacked once per kernel package version into the cache. */
export async function unpackKernel(deb: string, dir: string): Promise<UnpackedKernel> {
  if (!(await exists(join(dir, 'release')))) {
    await mkdir(dirname(dir), { recursive: true });
    const scratch = await mkdtemp(`${dir}.tmp-`);
    try {
      const members = ['./boot/vmlinuz-*', ...GUEST_MODULES.map((m) => `./lib/modules/*/${m}.ko*`)];
      await extractMembers(deb, join(scratch, 'deb'), members);
      const release = (await readdir(join(scratch, 'deb/lib/modules')))[0]!;
      const bz = await readFile(join(scratch, 'deb/boot', `vmlinuz-${release}`));
      await writeFile(join(scratch, 'vmlinux'), await extractVmlinux(bz));
      await mkdir(join(scratch, 'modules'));
      const found = await listFiles(join(scratch, 'deb/lib/modules'));
      for (const m of GUEST_MODULES) {
        const file = found.find((f) => new RegExp(`/${m}\\.ko(\\.(xz|zst|gz))?$`).test(f));
        if (!file) throw new DriverError('image-missing', 'image', `kernel ${release} has no module ${m}`);
        await writeFile(join(scratch, 'modules', `${m}.ko`), await plainModule(file));
      }
      await rm(join(scratch, 'deb'), { recursive: true });
      await writeFile(join(scratch, 'release'), release);
      await rm(dir, { recursive: true, force: true });
      await rename(scratch, dir);
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  const modules = new Map<string, Buffer>();
  for (const m of GUEST_MODULES) modules.set(m, await readFile(join(dir, 'modules', `${m}.ko`)));
  return { release: (await readFile(join(dir, 'release'), 'utf8')).trim(), vmlinux: join(dir, 'vmlinux'), modules };
}

/** busybox's insmod may lack xz or zstd support: hand it plain .ko files. */
async function plainModule(file: string): Promise<Buffer> {
  const tool = file.endsWith('.xz') ? 'xz' : file.endsWith('.zst') ? 'zstd' : file.endsWith('.gz') ? 'gzip' : null;
  if (!tool) return readFile(file);
  return Buffer.from((await execa(tool, ['-dc', file], { encoding: 'buffer' })).stdout);
}

export async function unpackBusybox(deb: string, dir: string): Promise<{ binary: Buffer; applets: string[] }> {
  const bin = join(dir, 'bin/busybox');
  if (!(await exists(bin))) await extractMembers(deb, dir, ['./bin/busybox']);
  // The static binary runs on the build host too: it is the authority on its own applets.
  const list = await execa(bin, ['--list-full']);
  const applets = String(list.stdout).split('\n').map((s) => s.trim()).filter(Boolean).sort();
  return { binary: await readFile(bin), applets };
}

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
}

export function digest(data: Buffer): FileDigest {
  return { sha256: createHash('sha256').update(data).digest('hex'), bytes: data.length };
}

export async function writeAtomic(path: string, data: Buffer): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await chmod(tmp, 0o644);
  await rename(tmp, path);
}
