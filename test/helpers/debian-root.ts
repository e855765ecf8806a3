import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The Debian release and mirror this machine's apt uses (deb822 .sources or one-line lists). */
export function aptMirror(): { suite: string; mirror: string } {
  const release = readFileSync('/etc/os-release', 'utf8');
  const suite = /^VERSION_CODENAME=(\S+)$/m.exec(release)?.[1];
  if (!suite) throw new Error('/etc/os-release names no VERSION_CODENAME: not a Debian release this test knows');
  const dir = '/etc/apt/sources.list.d';
  const files = [...(existsSync('/etc/apt/sources.list') ? ['/etc/apt/sources.list'] : []), ...(existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [])];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    if (file.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'mi').exec(stanza)?.[1]?.trim().split(/\s+/) ?? [];
        if (field('Suites').includes(suite) && field('Components').includes('main') && field('URIs')[0]) return { suite, mirror: field('URIs')[0]! };
      }
    } else {
      const line = text.split('\n').map((l) => l.trim().split(/\s+/)).find((w) => w[0] === 'deb' && w.includes(suite) && w.includes('main'));
      const uri = line?.find((w) => /^https?:\/\//.test(w));
      if (uri) return { suite, mirror: uri };
    }
  }
  throw new Error(`no apt source for ${suite} main in /etc/apt/sources.list{,.d/}: debootstrap would not know where Debian's archive is`);
}

/**
 * A fresh Debian root (debootstrap minbase, with what a host has: python3 for Ansible, systemd)
 * in a new temp dir. The first call of a run debootstraps and keeps a tarball of the result
 * under $HANGAR_TEST_RUN_DIR (test/run.sh: removed when the run ends) or the system's tmp dir,
 * keyed by suite, mirror and packages; each call unpacks it anew (about a second).
 */
export async function freshDebianRoot(include: readonly string[] = ['python3', 'systemd']): Promise<{ dir: string; root: string; remove: () => void }> {
  const { suite, mirror } = aptMirror();
  const key = createHash('sha256').update(JSON.stringify({ suite, mirror, include, variant: 'minbase' })).digest('hex').slice(0, 16);
  const cacheDir = process.env.HANGAR_TEST_RUN_DIR ?? tmpdir();
  const tarball = join(cacheDir, `hangar-debian-root-${key}.tar`);
  if (!existsSync(tarball)) {
    const build = mkdtempSync(join(cacheDir, 'hangar-debootstrap-'));
    try {
      await run('debootstrap', ['--variant=minbase', `--include=${include.join(',')}`, suite, join(build, 'root'), mirror], { maxBuffer: 64 * 1024 * 1024 });
      await run('tar', ['-C', join(build, 'root'), '-cf', `${tarball}.tmp`, '.']);
      renameSync(`${tarball}.tmp`, tarball);
    } finally {
      rmSync(build, { recursive: true, force: true });
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'hangar-root-'));
  const root = join(dir, 'root');
  mkdirSync(root);
  await run('tar', ['-C', root, '-xf', tarball]);
  // No package installed into the root may start its service: the root shares this machine's
  // kernel and network, so an init script run there (redis-server's) would listen on this machine.
  writeFileSync(join(root, 'usr/sbin/policy-rc.d'), '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  return { dir, root, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
