import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'vitest';
import { freshDebianRoot } from './debian-root.js';

/**
 * What the tests of ansible/ against a debootstrapped root share: running a command, the
 * tarball ansible/pack.sh makes from this checkout's dist/, a stand-in image folder and a
 * certificate, and ansible-playbook on one host of the example inventory with a second
 * inventory (written by the test) pointing it at the root and the test's files.
 */
const execFileP = promisify(execFile);
export const REPO = new URL('../..', import.meta.url).pathname;
export const ANSIBLE = join(REPO, 'ansible');

/** `out`: stdout then stderr, for messages; `stdout` alone, for what a command prints as its answer. */
export async function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; out: string; stdout: string }> {
  try {
    const r = await execFileP(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, out: `${r.stdout}${r.stderr}`, stdout: r.stdout };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}`, stdout: e.stdout ?? '' };
  }
}

/** ansible/pack.sh into `work/files` (dist/ as built); its path. */
export async function packTarball(work: string): Promise<string> {
  const pack = await run('bash', [join(ANSIBLE, 'pack.sh'), join(work, 'files')], { env: { HANGAR_PACK_NO_BUILD: '1' } });
  expect(pack.code, pack.out).toBe(0);
  const tarball = pack.stdout.trim().split('\n').pop()!;
  expect(tarball).toMatch(/hangar-[\d.]+\.tgz$/);
  return tarball;
}

/** Three small files in `work/image`: what is checked is the copy, not a boot. */
export function standInImage(work: string): string {
  const dir = join(work, 'image');
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of [['vmlinux', 'kernel'], ['initramfs.cpio', 'initrd'], ['manifest.json', '{"kind":"test"}\n']] as const) writeFileSync(join(dir, f), text);
  return dir;
}

/** A self-signed certificate (and its key) at `work/NAME.pem`, `work/NAME.key`. */
export async function certificate(work: string, name: string, cn: string): Promise<{ cert: string; key: string }> {
  const [cert, key] = [join(work, `${name}.pem`), join(work, `${name}.key`)];
  const r = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-subj', `/CN=${cn}`, '-days', '2']);
  expect(r.code, r.out).toBe(0);
  return { cert, key };
}

/** site.yml on `host` only, with `vars` (the host's target and files) over the example inventory. */
export function playbook(host: string, work: string, vars: Record<string, unknown>): () => ReturnType<typeof run> {
  const inventory = join(work, `${host}.inventory.yml`);
  writeFileSync(inventory, JSON.stringify({ all: { children: { hangar: { hosts: { [host]: vars } } } } }));
  return () =>
    run('ansible-playbook', ['-i', 'inventory.example.yml', '-i', inventory, 'site.yml', '--limit', host], {
      cwd: ANSIBLE,
      env: { ANSIBLE_NOCOLOR: '1', ANSIBLE_FORCE_COLOR: '0', ANSIBLE_LOCAL_TEMP: join(work, 'ansible-tmp'), ANSIBLE_RETRY_FILES_ENABLED: '0' },
    });
}

/** The play recap's ok, changed, unreachable and failed for `host`. */
export function recap(host: string, out: string): number[] | undefined {
  return new RegExp(`${host}\\s+: ok=(\\d+)\\s+changed=(\\d+)\\s+unreachable=(\\d+)\\s+failed=(\\d+)`).exec(out)?.slice(1).map(Number);
}

/** A fresh debootstrapped root to apply roles to, with the npm-pack tarball and a stand-in image in its work folder. */
export async function chrootTarget(): Promise<{ target: Awaited<ReturnType<typeof freshDebianRoot>>; root: string; work: string; tarball: string; image: string }> {
  expect(process.getuid?.(), 'debootstrap and chroot need root: run the system lane as root').toBe(0);
  expect(existsSync(join(REPO, 'dist/main/cli.js')), 'needs a built dist/: npm run build').toBe(true);
  const target = await freshDebianRoot();
  const work = join(target.dir, 'work');
  const tarball = await packTarball(work);
  return { target, root: target.root, work, tarball, image: standInImage(work) };
}
