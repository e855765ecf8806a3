/**
 * The few file operations cgroupfs needs, shared by the v1 and v2 backends. cgroupfs is not
 * a normal filesystem: a directory is removed with rmdir even though it "contains" files, and
 * rmdir fails with EBUSY while a task is still inside (or still exiting).
 */
import { readFile, readdir, rmdir, stat, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { HangarError } from '../domain/errors.js';

/** A cgroup operation that failed in a way a retry will not fix (bad id, missing controller). */
export class CapsError extends HangarError {
  constructor(code: 'caps-invalid' | 'caps-unavailable' | 'caps-busy', message: string) {
    super(code, message);
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/** The file's text, or null when it does not exist (a controller not enabled, a cgroup gone). */
export async function readText(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  }
}

/**
 * A number from a single-value file. `max` (v2) and v1's "unlimited" (a page-rounded
 * LONG_MAX, ~2^63) both mean no limit and read as null.
 */
export async function readNumber(file: string): Promise<number | null> {
  const text = (await readText(file))?.trim();
  if (text === undefined || text === '' || text === 'max') return null;
  const n = Number(text);
  if (!Number.isFinite(n) || n >= 2 ** 62) return null;
  return n;
}

/** `key value` lines (cpu.stat, memory.events, memory.oom_control) as a map; empty if missing. */
export async function readKeyed(file: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of ((await readText(file)) ?? '').split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^-?\d+$/.test(value)) out.set(key, Number(value));
  }
  return out;
}

export async function writeValue(file: string, value: string | number): Promise<void> {
  await writeFile(file, String(value));
}

/** Writes only when the kernel offers the file (memsw without swap accounting, swap.max without swap). */
export async function writeIfPresent(file: string, value: string | number): Promise<boolean> {
  if (!(await exists(file))) return false;
  await writeValue(file, value);
  return true;
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
}

/** Names of the child cgroups of `dir` (its subdirectories); empty when `dir` is gone. */
export async function childCgroups(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}

export async function readPids(dir: string): Promise<number[]> {
  const text = await readText(join(dir, 'cgroup.procs'));
  return (text ?? '').split('\n').filter((l) => l.trim() !== '').map(Number);
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (err) {
    // Already gone between reading cgroup.procs and the kill: that is the goal anyway.
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

async function tryRmdir(dir: string): Promise<'gone' | 'busy'> {
  try {
    await rmdir(dir);
    return 'gone';
  } catch (err) {
    if (isMissing(err)) return 'gone';
    if ((err as NodeJS.ErrnoException).code === 'EBUSY') return 'busy';
    throw err;
  }
}

/**
 * Kills every task in `dir` (and its children) and removes the directories, deepest first.
 * A task that forks while we kill shows up on the next pass; SIGKILLed tasks cannot fork,
 * so with pids.max bounding the cgroup the loop converges. On v2, cgroup.kill does it in one
 * write. Missing `dir` is success: removal must be idempotent for crash cleanup.
 */
export async function killAndRemove(dir: string, timeoutMs = 10_000): Promise<void> {
  if (!(await exists(dir))) return;
  for (const child of await childCgroups(dir)) await killAndRemove(join(dir, child), timeoutMs);
  const deadline = Date.now() + timeoutMs;
  await writeIfPresent(join(dir, 'cgroup.kill'), 1);
  for (;;) {
    const pids = await readPids(dir);
    pids.forEach(killQuietly);
    if (pids.length === 0 && (await tryRmdir(dir)) === 'gone') return;
    if (Date.now() > deadline) {
      throw new CapsError('caps-busy', `cgroup ${dir} still busy after ${timeoutMs} ms (tasks: ${pids.join(' ') || 'exiting'})`);
    }
    await sleep(pids.length > 0 ? 10 : 25);
  }
}
