import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** pids of processes whose command line contains `needle` (NUL-separated argv joined by spaces). */
export async function processesWith(needle: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '');
    if (cmd.replace(/\0/g, ' ').includes(needle)) found.push(Number(name));
  }
  return found;
}

/** Every process's argv and environment that contains `needle` (for secrets: should be none). */
export async function processesExposing(needle: string): Promise<string[]> {
  const hits: string[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    for (const what of ['cmdline', 'environ']) {
      const text = await readFile(`/proc/${name}/${what}`, 'utf8').catch(() => '');
      if (text.includes(needle)) hits.push(`/proc/${name}/${what}`);
    }
  }
  return hits;
}

/** Resolves with the console text once it contains `marker`; throws after `ms`. */
export async function waitForConsole(file: string, marker: string, ms = 60_000): Promise<string> {
  const until = Date.now() + ms;
  let text = '';
  while (Date.now() < until) {
    text = await readFile(file, 'utf8').catch(() => '');
    if (text.includes(marker)) return text;
    await sleep(100);
  }
  throw new Error(`console ${file} did not show ${marker} within ${ms} ms; it ends with:\n${text.slice(-1500)}`);
}

export async function walkFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath ?? e.path, e.name));
}

export async function modeOf(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

/** The unprivileged user QEMU drops to; made here when this machine lacks it. */
export async function ensureUser(name: string): Promise<string> {
  const r = await execa('id', ['-u', name], { reject: false });
  if (r.exitCode !== 0) {
    await execa('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name]);
  }
  return name;
}
