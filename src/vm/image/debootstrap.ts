import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { DriverError, tail } from '../errors.js';
import { exists } from './debs.js';

export const DEBIAN_SUITE = 'bookworm';
export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** Bump when `tidyBase` changes what goes into the cached tarball. */
const BASE_FORMAT = 1;

export interface DebianBaseOptions {
  cacheDir: string;
  /** Packages added to `--variant=minbase` (debootstrap follows their Depends, not Recommends). */
  include: readonly string[];
  mirror?: string;
  /** Debootstrap again even when a tarball with the same inputs is cached. */
  refresh?: boolean;
  onStep?: (step: string, fields?: Record<string, unknown>) => void;
}

export interface DebianBase {
  /** An uncompressed tar of the root (numeric owners, xattrs): unpack it with `unpackBase`. */
  tar: string;
  /** sha256 (first 16 hex digits) of what went in: suite, variant, mirror, packages, format. */
  key: string;
  suite: string;
  mirror: string;
  include: string[];
  /** Seconds debootstrap took; 0 when the tarball came from the cache. */
  seconds: number;
}

export function baseKey(include: readonly string[], mirror: string): string {
  const inputs = { suite: DEBIAN_SUITE, variant: 'minbase', mirror, include: [...include].sort(), format: BASE_FORMAT };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 16);
}

/**
 * `debootstrap --variant=minbase bookworm` with `include`, kept as a tarball in the cache keyed by
 * its inputs, so the next image build unpacks it in seconds instead of ~75 s of downloads and
 * dpkg. The archive moves on (point releases): pass `refresh` to make a new one.
 */
export async function ensureDebianBase(opts: DebianBaseOptions): Promise<DebianBase> {
  const mirror = opts.mirror ?? DEFAULT_MIRROR;
  const include = [...opts.include].sort();
  const key = baseKey(include, mirror);
  const dir = join(opts.cacheDir, 'runner-base');
  const tar = join(dir, `${DEBIAN_SUITE}-minbase-${key}.tar`);
  const base = { tar, key, suite: DEBIAN_SUITE, mirror, include };
  if (!opts.refresh && (await exists(tar))) return { ...base, seconds: 0 };

  await requireRoot('debootstrap');
  await requireTool('debootstrap', ['--version'], 'debootstrap');
  await mkdir(dir, { recursive: true });
  const scratch = await mkdtemp(join(dir, '.build-'));
  const root = join(scratch, 'root');
  const started = Date.now();
  try {
    opts.onStep?.('debootstrap', { suite: DEBIAN_SUITE, mirror, packages: include.length });
    const r = await execa('debootstrap', [
      '--variant=minbase', `--include=${include.join(',')}`, '--components=main', DEBIAN_SUITE, root, mirror,
    ], { reject: false, env: { DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' } });
    if (r.exitCode !== 0) {
      // debootstrap logs the real cause in the target's debootstrap/debootstrap.log.
      const log = await readFile(join(root, 'debootstrap/debootstrap.log'), 'utf8').catch(() => '');
      throw new DriverError('tool-failed', 'image', `debootstrap ${DEBIAN_SUITE} from ${mirror} failed`, {
        exitCode: r.exitCode ?? null,
        stderrTail: tail(`${String(r.stdout)}\n${String(r.stderr)}\n${log}`),
      });
    }
    await tidyBase(root);
    opts.onStep?.('debootstrap-done', { seconds: Math.round((Date.now() - started) / 1000) });
    await run('tar', ['-C', root, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-cpf', join(scratch, 'base.tar'), '.']);
    await rename(join(scratch, 'base.tar'), tar);
  } finally {
    await removeTree(scratch);
  }
  return { ...base, seconds: Math.round((Date.now() - started) / 1000) };
}

/**
 * What no single-job VM needs: apt's package lists and downloaded .debs (the image is rebuilt,
 * never upgraded in place), documentation, manual pages and translations. dpkg is told to keep
 * them out too, so a job's `apt-get install` stays small. Copyright files stay.
 */
async function tidyBase(root: string): Promise<void> {
  const script = `set -eu
cd "$1"
rm -rf var/cache/apt/archives/*.deb var/cache/apt/*.bin var/lib/apt/lists/* var/log/*.log var/log/apt/*
mkdir -p var/lib/apt/lists/partial etc/dpkg/dpkg.cfg.d
find usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete
find usr/share/doc -mindepth 1 -type d -empty -delete
rm -rf usr/share/man/* usr/share/info/* usr/share/lintian/* usr/share/linda/*
find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
cat > etc/dpkg/dpkg.cfg.d/hangar-slim <<'EOF'
# hangar image build runner: a single-job VM needs no documentation or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
`;
  await run('bash', ['-c', script, 'tidy', root]);
}

/** Unpacks a base tarball into `root` (which must not exist yet or be empty). */
export async function unpackBase(tar: string, root: string): Promise<void> {
  await mkdir(root, { recursive: true });
  await run('tar', ['-C', root, '--numeric-owner', '--xattrs', '--xattrs-include=*', '-xpf', tar]);
}

/**
 * Removes a folder that held a Debian root. debootstrap mounts /proc and /sys inside its target
 * and unmounts them when it ends; if it was killed, they may still be there, and a plain
 * recursive delete would walk into the host's /proc and /sys. So: unmount whatever is mounted
 * under the folder first, and delete with --one-file-system.
 */
export async function removeTree(dir: string): Promise<void> {
  await unmountUnder(dir);
  await execa('rm', ['-rf', '--one-file-system', dir], { reject: false });
}

export async function unmountUnder(dir: string): Promise<void> {
  const prefix = `${dir.replace(/\/+$/, '')}/`;
  const mounts = (await readFile('/proc/self/mounts', 'utf8').catch(() => ''))
    .split('\n')
    .map((l) => l.split(' ')[1])
    .filter((m): m is string => !!m)
    .map((m) => m.replace(/\\040/g, ' ').replace(/\\011/g, '\t').replace(/\\012/g, '\n').replace(/\\134/g, '\\'))
    .filter((m) => m.startsWith(prefix));
  for (const m of mounts.reverse()) await execa('umount', ['-l', m], { reject: false });
}

export async function run(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await execa(cmd, args, { reject: false, input, env: { DEBIAN_FRONTEND: 'noninteractive', LC_ALL: 'C' } });
  if (r.exitCode !== 0) {
    throw new DriverError('tool-failed', 'image', `${cmd} ${args.slice(0, 6).join(' ')} failed`, {
      exitCode: r.exitCode ?? null,
      stderrTail: tail(`${String(r.stderr)}`),
    });
  }
  return String(r.stdout);
}

export async function requireRoot(what: string): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new DriverError('tool-failed', 'image', `${what} needs root (the image's files belong to root and to the runner user)`);
  }
}

/** A clear refusal naming the Debian package, instead of ENOENT deep inside a build. */
export async function requireTool(tool: string, args: string[], pkg: string): Promise<void> {
  const r = await execa(tool, args, { reject: false });
  if (r.failed && (r.exitCode === undefined || r.code === 'ENOENT')) {
    throw new DriverError('tool-failed', 'image', `${tool} is not installed: apt-get install -y ${pkg}`);
  }
}
