import { readFile, readdir, writeFile, rename } from 'node:fs/promises';
import { vmPaths, type VmPaths } from './args.js';

/**
 * What the driver knows about a VM lives on disk, in `<stateDir>/<id>/`, so an agent that was
 * `kill -9`ed finds its VMs again. `vm.json` is written once QEMU has written its pid file: a
 * folder without it is a create that never finished.
 */
export interface VmRecord {
  id: string;
  startedAt: number;
  /** Epoch ms past which the VM is killed (the spec's wall-clock cap). */
  deadline: number;
  consoleLimitBytes: number;
}

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

export function pathsFor(stateDir: string, id: string): VmPaths {
  return vmPaths(`${stateDir}/${id}`);
}

export async function readRecord(p: VmPaths): Promise<VmRecord | null> {
  try {
    return JSON.parse(await readFile(p.vmJson, 'utf8')) as VmRecord;
  } catch {
    return null;
  }
}

export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFile(`${file}.tmp`, JSON.stringify(value), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** Every VM folder under the state dir (names that could be ids; nothing else is ours). */
export async function listIds(stateDir: string): Promise<string[]> {
  const entries = await readdir(stateDir, { withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isDirectory() && ID_PATTERN.test(e.name)).map((e) => e.name).sort();
}

/**
 * The pid of this VM's QEMU if it is running: the pid file says which process, and its
 * /proc/<pid>/cmdline must carry `-pidfile <this VM's pid file>`, so a pid the kernel has since
 * given to another process (after a reboot of the agent, or a long time) is never mistaken
 * for the VM. A zombie counts as gone.
 */
export async function livePid(p: VmPaths): Promise<number | null> {
  const pid = Number((await readFile(p.pidFile, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 1) return null;
  return (await isVmProcess(pid, p.pidFile)) ? pid : null;
}

export async function isVmProcess(pid: number, pidFile: string): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (/^\d+ \(.*\) Z /s.test(stat)) return false;
    const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
    const at = argv.indexOf('-pidfile');
    return at > 0 && argv[at + 1] === pidFile;
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls until the VM's process is gone (or `ms` passed); true when it is gone. */
export async function waitGone(p: VmPaths, pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!(await isVmProcess(pid, p.pidFile))) return true;
    await sleep(50);
  }
  return !(await isVmProcess(pid, p.pidFile));
}
