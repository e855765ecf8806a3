import { mkdir, stat, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { execa } from 'execa';
import type { VmSpec } from '../driver.js';
import { DriverError, tail } from '../errors.js';
import type { VmPaths } from './args.js';
import { ID_PATTERN } from './state.js';
import { buildImageHint } from '../image/kinds.js';

const GUEST_FILE_NAME = /^[a-z0-9][a-z0-9_.-]{0,31}$/;
const TAP_NAME = /^[A-Za-z0-9_.-]{1,15}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i;
/** sun_path is 108 bytes with its NUL; QEMU refuses longer socket paths. */
const MAX_SOCKET_PATH = 107;

/** Refuses a spec that would make a bad command line or a path outside the VM's folder. */
export function validateSpec(spec: VmSpec, paths: VmPaths): void {
  const bad = (why: string) => new DriverError('bad-spec', 'create', why);
  if (!ID_PATTERN.test(spec.id)) throw bad(`VM id ${JSON.stringify(spec.id)} is not [A-Za-z0-9_.-]{1,63}`);
  if (!Number.isInteger(spec.memoryMiB) || spec.memoryMiB < 64) throw bad('memoryMiB must be a whole number ≥ 64');
  if (!Number.isInteger(spec.vcpus) || spec.vcpus < 1) throw bad('vcpus must be a whole number ≥ 1');
  if (!(spec.timeoutMs > 0)) throw bad('timeoutMs must be positive');
  if (spec.consoleLimitBytes !== undefined && !(spec.consoleLimitBytes >= 1024)) throw bad('consoleLimitBytes must be ≥ 1024');
  for (const name of Object.keys(spec.guestFiles ?? {})) {
    if (!GUEST_FILE_NAME.test(name)) throw bad(`guest file name ${JSON.stringify(name)} is not [a-z0-9_.-]{1,32}`);
  }
  if (spec.network && !TAP_NAME.test(spec.network.tap)) throw bad('network.tap is not a device name');
  if (spec.network && !MAC.test(spec.network.mac)) throw bad('network.mac is not a MAC address');
  if (Buffer.byteLength(paths.consoleSock) > MAX_SOCKET_PATH) {
    throw bad(`state dir too deep: ${paths.consoleSock} is longer than a unix socket path may be`);
  }
}

/** Refuses clearly, before anything is made, when the image the spec names is not there. */
export async function checkImage(spec: VmSpec): Promise<void> {
  const files: Array<[string, string | undefined]> = [['kernel', spec.kernel], ['initrd', spec.initrd], ['rootDisk', spec.rootDisk]];
  for (const [what, file] of files) {
    if (file === undefined) continue;
    const s = await stat(file).catch(() => null);
    if (!s?.isFile()) {
      throw new DriverError('image-missing', 'create', `${what} ${file} does not exist: ${buildImageHint()}`);
    }
  }
}

/**
 * Makes the VM's folder (0700): guest files (0600, handed to QEMU by path only) and the root
 * disk's copy-on-write overlay. Returns the guest files as [name, path] pairs.
 */
export async function prepareVmDir(spec: VmSpec, paths: VmPaths, qemuImg: string): Promise<Array<[string, string]>> {
  await mkdir(paths.dir, { recursive: true, mode: 0o700 });
  await mkdir(paths.guestDir, { mode: 0o700 });
  const files: Array<[string, string]> = [];
  for (const [name, content] of Object.entries(spec.guestFiles ?? {})) {
    const file = `${paths.guestDir}/${name}`;
    await writeFile(file, content, { mode: 0o600, flag: 'wx' });
    files.push([name, file]);
  }
  if (spec.rootDisk) await createOverlay(qemuImg, resolve(spec.rootDisk), paths.overlay);
  return files;
}

async function createOverlay(qemuImg: string, base: string, overlay: string): Promise<void> {
  const r = await execa(qemuImg, ['create', '-q', '-f', 'qcow2', '-b', base, '-F', 'raw', overlay], { reject: false });
  if (r.exitCode !== 0) {
    throw new DriverError('tool-failed', 'create', 'qemu-img could not make the root disk overlay', {
      exitCode: r.exitCode ?? null,
      stderrTail: tail(String(r.stderr)),
    });
  }
}
