import { mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { DriverError, tail } from '../errors.js';

/** A Debian package fetched into the cache: `file` is the .deb, named for its exact version. */
export interface Deb {
  name: string;
  version: string;
  file: string;
}

/** `$HANGAR_CACHE`, else `$XDG_CACHE_HOME/hangar`, else `~/.cache/hangar`. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HANGAR_CACHE) return env.HANGAR_CACHE;
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'hangar');
}

async function run(cmd: string, args: string[], cwd?: string): Promise<string> {
  const r = await execa(cmd, args, { cwd, reject: false, env: { DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.exitCode !== 0) {
    throw new DriverError('tool-failed', 'image', `${cmd} ${args.join(' ')} failed`, {
      exitCode: r.exitCode ?? null,
      stderrTail: tail(String(r.stderr)),
    });
  }
  return String(r.stdout);
}

let listsRefreshed = false;

/** The candidate version's control fields. A fresh machine has no apt lists yet: update once. */
export async function aptShow(name: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await run('apt-cache', ['show', '--no-all-versions', name]);
  } catch (err) {
    if (listsRefreshed) throw err;
    listsRefreshed = true;
    await run('apt-get', ['update', '-qq']);
    text = await run('apt-cache', ['show', '--no-all-versions', name]);
  }
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z-]+): (.*)$/.exec(line);
    if (m && !(m[1]! in fields)) fields[m[1]!] = m[2]!;
  }
  return fields;
}

/**
 * The .deb of `name` at apt's candidate version, from the cache when it is already there.
 * Downloaded into a scratch folder and renamed in, so a killed build never leaves half a file.
 */
export async function fetchDeb(name: string, cacheDir: string): Promise<Deb> {
  const version = (await aptShow(name)).Version;
  if (!version) throw new DriverError('tool-failed', 'image', `apt knows no version of ${name}`);
  const dir = join(cacheDir, 'debs');
  const file = join(dir, `${name}_${version.replace(/:/g, '%3a')}_amd64.deb`);
  if (await exists(file)) return { name, version, file };
  await mkdir(dir, { recursive: true });
  const scratch = await mkdtemp(join(dir, '.download-'));
  try {
    await run('apt-get', ['download', '-qq', `${name}=${version}`], scratch);
    const got = (await readdir(scratch)).filter((f) => f.endsWith('.deb'));
    if (got.length !== 1) throw new DriverError('tool-failed', 'image', `apt-get download ${name} gave ${got.length} files`);
    await rename(join(scratch, got[0]!), file);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return { name, version, file };
}

/** The metapackage (`linux-image-cloud-amd64`) names the versioned kernel package it pulls in. */
export async function kernelPackageOf(meta: string): Promise<{ metaVersion: string; pkg: string }> {
  const f = await aptShow(meta);
  const pkg = /(linux-image-[^\s,(]+)/.exec(f.Depends ?? '')?.[1];
  if (!pkg || !f.Version) throw new DriverError('tool-failed', 'image', `${meta} depends on no linux-image package`);
  return { metaVersion: f.Version, pkg };
}

/** Unpacks only `members` (GNU tar wildcards, matching `/` too) of a .deb into `dir`. */
export async function extractMembers(deb: string, dir: string, members: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const script = 'set -o pipefail; deb=$1 dir=$2; shift 2; dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir" --wildcards "$@"';
  await run('bash', ['-c', script, 'bash', deb, dir, ...members]);
}

export async function exists(path: string): Promise<boolean> {
  return stat(path).then(() => true, () => false);
}
