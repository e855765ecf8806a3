import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, lstat, mkdir, mkdtemp, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { DriverError } from '../errors.js';
import { sourceAsset } from './assets.js';
import {
  BUSYBOX, GUEST_MODULES, KERNEL_META, digest, initramfsEntries, unpackBusybox, unpackKernel, writeAtomic,
  type FileDigest,
} from './build.js';
import { writeCpio } from './cpio.js';
import { aptShow, defaultCacheDir, exists, fetchDeb, kernelPackageOf } from './debs.js';
import { DEFAULT_MIRROR, baseKey, ensureDebianBase, removeTree, requireRoot, requireTool, run, unpackBase } from './debootstrap.js';

/**
 * What the root holds besides `--variant=minbase`: what actions/runner's
 * bin/installdependencies.sh installs on Debian 12 (.NET's ICU, OpenSSL, Kerberos, zlib, LTTng),
 * what jobs expect of a runner (git, curl, sudo, CA certificates), systemd as init, and the
 * tools the job script uses (iproute2 for the network, kmod for modprobe).
 */
export const RUNNER_PACKAGES = [
  'ca-certificates', 'curl', 'git', 'iproute2', 'kmod', 'libicu72', 'libkrb5-3', 'liblttng-ust1', 'libssl3', 'sudo',
  'systemd', 'systemd-sysv', 'zlib1g',
] as const;

/** Bump when what `customise` puts into the root changes: it is part of the inputs key. */
const IMAGE_FORMAT = 3;
export const RUNNER_USER = 'runner';
/** GitHub's hosted runners use 1001 for `runner`; jobs that assume it keep working. */
export const RUNNER_UID = 1001;
export const RUNNER_DIR = '/home/runner/actions-runner';
/** Members the operator's tarball must have: what hangar-runner runs and what it starts. */
export const REQUIRED_RUNNER_FILES = ['run.sh', 'bin/Runner.Listener'] as const;

/** Hangar's files in the root: [path in the guest, source asset, mode]. */
const GUEST_ASSETS: Array<[string, string, number]> = [
  ['usr/local/lib/hangar/hangar-runner', 'vm/image/runner/hangar-runner.sh', 0o755],
  ['usr/local/lib/hangar/net.sh', 'vm/image/guest-net.sh', 0o644],
  ['usr/local/lib/hangar/job-started.sh', 'vm/image/job-started.sh', 0o755],
  ['etc/systemd/system/hangar-runner.service', 'vm/image/runner/hangar-runner.service', 0o644],
];
const INIT_ASSET = 'vm/image/runner/initramfs-init.sh';

/** Timers and services a single-job VM has no use for; masked ones cannot be pulled in at all. */
const DISABLE = [
  'timers.target.wants', 'getty.target.wants', 'multi-user.target.wants/e2scrub_reap.service',
  'multi-user.target.wants/remote-fs.target', 'sysinit.target.wants/systemd-pstore.service',
];
const MASK = [
  // Debian's prompts for locale, timezone and root password on the console when machine-id is empty.
  'systemd-firstboot.service',
  // No logins on the console; logind needs D-Bus, which the image does not have.
  'getty.target', 'serial-getty@.service', 'getty@.service', 'systemd-logind.service',
];

export interface RunnerImageOptions {
  out: string;
  /** The operator's actions-runner-linux-x64-<version>.tar.gz (it is not downloaded here). */
  runnerTarball: string;
  cacheDir?: string;
  /** Debian mirror for debootstrap (default: deb.debian.org, or `$HANGAR_DEBIAN_MIRROR`). */
  mirror?: string;
  /** Free space in the root file system for the job's checkout and build, MiB (default 2048). */
  freeMiB?: number;
  /** Debootstrap again even when the base is cached. */
  refreshBase?: boolean;
  onStep?: (step: string, fields?: Record<string, unknown>) => void;
}

export interface RunnerImageManifest {
  kind: 'runner';
  kernel: { release: string; package: string; version: string };
  /** Packages the build took from apt on the host side: the kernel and busybox for the initramfs. */
  packages: Record<string, string>;
  root: {
    suite: string; variant: 'minbase'; mirror: string; include: string[]; baseKey: string;
    /** Every package installed in the root, from its dpkg database. */
    packages: Record<string, string>;
    sizeMiB: number; usedMiB: number;
  };
  runner: { tarball: string; sha256: string; bytes: number; version: string | null; user: string; uid: number; dir: string };
  /** Loaded by the initramfs, in order, before it mounts /dev/vda. */
  modules: string[];
  files: Record<'vmlinux' | 'initramfs.cpio' | 'rootfs.img', FileDigest>;
  initramfs: Record<string, FileDigest>;
  /** Hangar's own files in the root file system. */
  guest: Record<string, FileDigest>;
  /** sha256 of everything that went in (see runnerImageInputs): same inputs, same image. */
  inputs: string;
}

/**
 * The runner (production) image: Debian's cloud kernel as `vmlinux`, a small initramfs that
 * loads the virtio modules and switches to /dev/vda, and `rootfs.img`, an ext4 image (made with
 * `mkfs.ext4 -d`) of a debootstrapped bookworm with the operator's actions-runner unpacked in
 * /home/runner/actions-runner and `hangar-runner.service`, which runs one job and powers off.
 */
export async function buildRunnerImage(opts: RunnerImageOptions): Promise<RunnerImageManifest> {
  const cache = opts.cacheDir ?? defaultCacheDir();
  const step = opts.onStep ?? (() => {});
  const mirror = opts.mirror ?? process.env.HANGAR_DEBIAN_MIRROR ?? DEFAULT_MIRROR;
  const freeMiB = opts.freeMiB ?? 2048;
  if (!Number.isInteger(freeMiB) || freeMiB < 64) throw new DriverError('bad-spec', 'image', 'freeMiB must be a whole number ≥ 64');
  await requireRoot('hangar image build runner');
  await requireTool('mkfs.ext4', ['-V'], 'e2fsprogs');

  const tarball = await inspectRunnerTarball(opts.runnerTarball);
  step('runner-tarball', { file: opts.runnerTarball, version: tarball.version, members: tarball.members.length });

  const { metaVersion, pkg } = await kernelPackageOf(KERNEL_META);
  const kdeb = await fetchDeb(pkg, cache);
  const kernel = await unpackKernel(kdeb.file, join(cache, 'kernel', `${pkg}_${kdeb.version}`));
  const bdeb = await fetchDeb(BUSYBOX, cache);
  const busybox = await unpackBusybox(bdeb.file, join(cache, 'busybox', bdeb.version));
  step('kernel', { package: pkg, version: kdeb.version, release: kernel.release });

  const base = await ensureDebianBase({ cacheDir: cache, include: RUNNER_PACKAGES, mirror, refresh: opts.refreshBase, onStep: step });
  step('base', { tar: base.tar, key: base.key, debootstrapSeconds: base.seconds });

  const assets = await readAssets();
  const inputs = inputsKey({
    baseKey: base.key, kernel: kdeb.version, busybox: bdeb.version, runner: tarball.sha256, freeMiB, assets,
  });

  await mkdir(opts.out, { recursive: true });
  const work = await mkdtemp(join(opts.out, '.build-'));
  const root = join(work, 'root');
  const tmpImg = join(opts.out, `rootfs.img.tmp-${process.pid}`);
  try {
    await unpackBase(base.tar, root);
    step('unpacked-base', { root });
    await customise(root, { tarball: opts.runnerTarball, kernelDeb: kdeb.file, release: kernel.release, assets });
    const rootPackages = await dpkgList(root);
    step('customised', { packages: Object.keys(rootPackages).length });

    const usedMiB = Math.ceil(Number((await run('du', ['-s', '--block-size=1M', '-x', root])).split(/\s/)[0]));
    // ext4's own metadata (inode tables, journal) takes ~5 % + 64 MiB; round to 64 MiB.
    const sizeMiB = Math.ceil((usedMiB * 1.1 + 128 + freeMiB) / 64) * 64;
    const img = join(opts.out, 'rootfs.img');
    await rm(tmpImg, { force: true });
    await run('truncate', ['-s', `${sizeMiB}M`, tmpImg]);
    // lazy init off: otherwise the guest kernel zeroes the inode tables in the background on
    // every boot, into its overlay, under TCG. -m 0: no blocks reserved for root in a job VM.
    await run('mkfs.ext4', ['-q', '-F', '-L', 'hangar-root', '-m', '0', '-E', 'lazy_itable_init=0,lazy_journal_init=0',
      '-d', root, tmpImg]);
    await chmod(tmpImg, 0o644); // a VM's QEMU may run as an unprivileged user: it reads the base through its overlay
    step('mkfs', { sizeMiB, usedMiB });
    const rootDigest = await digestFile(tmpImg);
    await rename(tmpImg, img);
    step('rootfs', { sizeMiB, usedMiB });

    const initFiles: Array<[string, Buffer, number]> = [
      ['init', assets.init, 0o755],
      ['bin/busybox', busybox.binary, 0o755],
      ...GUEST_MODULES.map((m): [string, Buffer, number] => [`lib/modules/${m}.ko`, kernel.modules.get(m)!, 0o644]),
    ];
    const cpio = writeCpio(initramfsEntries(initFiles, busybox.applets));
    const vmlinux = await readFile(kernel.vmlinux);
    await writeAtomic(join(opts.out, 'vmlinux'), vmlinux);
    await writeAtomic(join(opts.out, 'initramfs.cpio'), cpio);

    const manifest: RunnerImageManifest = {
      kind: 'runner',
      kernel: { release: kernel.release, package: pkg, version: kdeb.version },
      packages: { [KERNEL_META]: metaVersion, [pkg]: kdeb.version, [BUSYBOX]: bdeb.version },
      root: {
        suite: base.suite, variant: 'minbase', mirror, include: base.include, baseKey: base.key, packages: rootPackages,
        sizeMiB, usedMiB,
      },
      runner: {
        tarball: basename(opts.runnerTarball), sha256: tarball.sha256, bytes: tarball.bytes, version: tarball.version,
        user: RUNNER_USER, uid: RUNNER_UID, dir: RUNNER_DIR,
      },
      modules: [...GUEST_MODULES],
      files: { vmlinux: digest(vmlinux), 'initramfs.cpio': digest(cpio), 'rootfs.img': rootDigest },
      initramfs: Object.fromEntries(initFiles.map(([p, data]) => [p, digest(data)])),
      guest: Object.fromEntries(GUEST_ASSETS.map(([p], i) => [`/${p}`, digest(assets.guest[i]!)])),
      inputs,
    };
    await writeAtomic(join(opts.out, 'manifest.json'), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    step('done', { out: opts.out });
    return manifest;
  } finally {
    await removeTree(work);
    await rm(tmpImg, { force: true });
  }
}

interface Assets { init: Buffer; guest: Buffer[] }

async function readAssets(): Promise<Assets> {
  return {
    init: await readFile(sourceAsset(INIT_ASSET)),
    guest: await Promise.all(GUEST_ASSETS.map(([, src]) => readFile(sourceAsset(src)))),
  };
}

function inputsKey(i: { baseKey: string; kernel: string; busybox: string; runner: string; freeMiB: number; assets: Assets }): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({
    format: IMAGE_FORMAT, base: i.baseKey, kernel: i.kernel, busybox: i.busybox, runner: i.runner, freeMiB: i.freeMiB,
    packages: [...RUNNER_PACKAGES], disable: DISABLE, mask: MASK, modules: GUEST_MODULES,
  }));
  for (const b of [i.assets.init, ...i.assets.guest]) h.update(createHash('sha256').update(b).digest('hex'));
  return h.digest('hex');
}

/**
 * The inputs key a build with these options would have, without building: compare it with
 * `manifest.inputs` to know whether an image on disk is current. Needs apt's lists (versions).
 */
export async function runnerImageInputs(opts: Pick<RunnerImageOptions, 'runnerTarball' | 'mirror' | 'freeMiB'>): Promise<string> {
  const mirror = opts.mirror ?? process.env.HANGAR_DEBIAN_MIRROR ?? DEFAULT_MIRROR;
  const { pkg } = await kernelPackageOf(KERNEL_META);
  return inputsKey({
    baseKey: baseKey(RUNNER_PACKAGES, mirror),
    kernel: (await aptShow(pkg)).Version ?? '',
    busybox: (await aptShow(BUSYBOX)).Version ?? '',
    runner: (await digestFile(opts.runnerTarball)).sha256,
    freeMiB: opts.freeMiB ?? 2048,
    assets: await readAssets(),
  });
}

export interface RunnerTarball extends FileDigest { members: string[]; version: string | null }

/**
 * Refuses, before anything is built, a file that is not the actions runner: it must be a tar
 * archive (gzip or not) holding `run.sh` and `bin/Runner.Listener`, with no absolute paths or
 * `..` in its member names.
 */
export async function inspectRunnerTarball(file: string): Promise<RunnerTarball> {
  const s = await stat(file).catch(() => null);
  if (!s?.isFile()) throw new DriverError('image-missing', 'image', `runner tarball ${file} does not exist`);
  let listing: string;
  try {
    listing = await run('tar', ['-tf', file]);
  } catch {
    throw new DriverError('bad-spec', 'image', `runner tarball ${file} is not a tar archive (want actions-runner-linux-x64-<version>.tar.gz)`);
  }
  const members = listing.split('\n').filter(Boolean).map((m) => m.replace(/^(\.\/)+/, ''));
  const unsafe = members.find((m) => m.startsWith('/') || m.split('/').includes('..'));
  if (unsafe) throw new DriverError('bad-spec', 'image', `runner tarball ${file} has an unsafe member name: ${unsafe}`);
  const missing = REQUIRED_RUNNER_FILES.filter((f) => !members.includes(f));
  if (missing.length > 0) {
    throw new DriverError('bad-spec', 'image',
      `runner tarball ${file} is not the GitHub Actions runner: it has no ${missing.join(' and no ')} ` +
      '(want actions-runner-linux-x64-<version>.tar.gz from github.com/actions/runner/releases)');
  }
  const version = /actions-runner-linux-[a-z0-9]+-(\d+\.\d+\.\d+)\.tar(\.gz)?$/.exec(basename(file))?.[1] ?? null;
  return { ...(await digestFile(file)), members, version };
}

/**
 * The operator's tarball against the SHA-256 GitHub publishes for it (the release notes of
 * github.com/actions/runner list one per asset; the release API gives `digest: "sha256:…"`).
 * `sha256:` before the hex is accepted. A mismatch is refused before anything is built.
 */
export async function verifyRunnerTarball(file: string, want: string): Promise<FileDigest> {
  const hex = want.trim().toLowerCase().replace(/^sha256:/, '');
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new DriverError('bad-spec', 'image', `--runner-sha256: expected 64 hex digits (optionally after sha256:), not "${want}"`);
  const s = await stat(file).catch(() => null);
  if (!s?.isFile()) throw new DriverError('image-missing', 'image', `runner tarball ${file} does not exist`);
  const got = await digestFile(file);
  if (got.sha256 !== hex) {
    throw new DriverError('bad-spec', 'image',
      `runner tarball ${file} has sha256 ${got.sha256}, not ${hex}: not the file GitHub published (download it again from github.com/actions/runner/releases)`);
  }
  return got;
}

interface CustomiseInput { tarball: string; kernelDeb: string; release: string; assets: Assets }

async function customise(root: string, i: CustomiseInput): Promise<void> {
  const at = (p: string) => join(root, p);
  // The runner user, as on GitHub's hosted runners: uid 1001, passwordless sudo (jobs install
  // packages). The VM is thrown away after its one job; sudo gives the job the whole VM.
  await run('chroot', [root, 'useradd', '--uid', String(RUNNER_UID), '--user-group', '--create-home', '--shell', '/bin/bash', RUNNER_USER]);
  await writeFile(at('etc/sudoers.d/runner'), `${RUNNER_USER} ALL=(ALL:ALL) NOPASSWD:ALL\n`);
  await chmod(at('etc/sudoers.d/runner'), 0o440);

  const dir = at(RUNNER_DIR);
  await mkdir(dir, { recursive: true });
  await run('tar', ['-xf', i.tarball, '-C', dir, '--no-same-owner']);
  for (const f of REQUIRED_RUNNER_FILES) {
    const s = await lstat(join(dir, f));
    if (!s.isFile()) throw new DriverError('bad-spec', 'image', `runner tarball: ${f} is not a regular file`);
    await chmod(join(dir, f), s.mode | 0o755);
  }
  await run('chown', ['-hR', `${RUNNER_UID}:${RUNNER_UID}`, at('home/runner')]);

  // The kernel's modules, for modprobe in jobs (overlay, netfilter, …): the same kernel as vmlinux.
  await run('bash', ['-c', 'set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2/usr" --wildcards "./lib/modules/*"',
    'modules', i.kernelDeb, root]);
  await run('chroot', [root, 'depmod', '-a', i.release]);

  for (const [idx, [path, , mode]] of GUEST_ASSETS.entries()) {
    await mkdir(join(at(path), '..'), { recursive: true });
    await writeFile(at(path), i.assets.guest[idx]!, { mode });
    await chmod(at(path), mode);
  }
  await linkUnit(root, 'multi-user.target.wants/hangar-runner.service', '/etc/systemd/system/hangar-runner.service');
  await linkUnit(root, 'default.target', '/lib/systemd/system/multi-user.target');
  for (const d of DISABLE) await rm(at(`etc/systemd/system/${d}`), { recursive: true, force: true });
  for (const m of MASK) await linkUnit(root, m, '/dev/null');
  await mkdir(at('etc/systemd/system.conf.d'), { recursive: true });
  await writeFile(at('etc/systemd/system.conf.d/hangar.conf'),
    '# A job VM: do not wait long for anything to stop when it powers off.\n[Manager]\nDefaultTimeoutStopSec=10s\n');

  await writeFile(at('etc/hostname'), 'hangar\n');
  await writeFile(at('etc/hosts'), '127.0.0.1\tlocalhost\n127.0.1.1\thangar\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  // hangar-runner writes it from opt/hangar/net; nothing of the build host's may leak in.
  await writeFile(at('etc/resolv.conf'), '');
  // Empty: each VM makes its own at boot (debootstrap left one, which every VM would share).
  await writeFile(at('etc/machine-id'), '');
  await rm(at('var/lib/dbus/machine-id'), { force: true });
  await writeFile(at('etc/fstab'), '# / is /dev/vda, mounted read-write by the initramfs (the VM\'s own overlay).\n');
}

async function linkUnit(root: string, name: string, target: string): Promise<void> {
  const link = join(root, 'etc/systemd/system', name);
  await mkdir(join(link, '..'), { recursive: true });
  if ((await readlink(link).catch(() => null)) !== null || (await exists(link))) await unlink(link);
  await symlink(target, link);
}

async function dpkgList(root: string): Promise<Record<string, string>> {
  const text = await run('dpkg-query', [`--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f', '${Package} ${Version}\\n']);
  const out: Record<string, string> = {};
  for (const line of text.split('\n').filter(Boolean).sort()) {
    const [name, version] = line.split(' ');
    if (name && version) out[name] = version;
  }
  return out;
}

/** sha256 of a file of any size (rootfs.img is gigabytes: no Buffer). */
export async function digestFile(file: string): Promise<FileDigest> {
  const h = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) {
    h.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: h.digest('hex'), bytes };
}
