import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DriverError, tail } from '../errors.js';
import type { VmPaths } from './args.js';
import { sleep } from './state.js';

/**
 * The VM's process joins its cgroups *before* QEMU runs: a tiny sh writes its own pid ($$) to
 * each cgroup.procs file and then execs QEMU, which keeps that pid. Writing the child's pid
 * from the agent after spawn() would leave a window in which QEMU allocates guest memory and
 * starts vCPUs outside its cap; here there is none, and a failed write (exit 125) means the VM
 * never starts at all rather than starting uncapped.
 */
const JOIN_THEN_EXEC =
  'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"';
const CGROUP_JOIN_FAILED = 125;

export interface ExitInfo { code: number | null; signal: string | null }

export interface Launched {
  child: ChildProcess;
  pid: number;
  exited: Promise<ExitInfo>;
}

/** Starts QEMU and resolves once QEMU itself has written its pid file (it is running). */
export async function launchQemu(
  qemu: string,
  args: string[],
  paths: VmPaths,
  cgroupProcsFiles: string[],
  signal?: AbortSignal,
): Promise<Launched> {
  // stderr goes to a file, not a pipe: QEMU outlives an agent that is kill -9ed, and a pipe
  // with no reader would fail its writes. Detached: a Ctrl-C to the agent is not the VM's.
  const errFd = openSync(paths.stderr, 'a', 0o600);
  let child: ChildProcess;
  try {
    child = spawn('/bin/sh', ['-c', JOIN_THEN_EXEC, 'hangar-vm', String(cgroupProcsFiles.length),
      ...cgroupProcsFiles, qemu, ...args], { detached: true, stdio: ['ignore', 'ignore', errFd] });
  } finally {
    closeSync(errFd);
  }
  let exit: ExitInfo | null = null;
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, sig) => { exit = { code, signal: sig }; resolve(exit); });
    child.once('error', () => { exit = { code: null, signal: null }; resolve(exit); });
  });
  const until = Date.now() + 15_000;
  while (Date.now() < until && !exit && !signal?.aborted) {
    const pid = Number((await readFile(paths.pidFile, 'utf8').catch(() => '')).trim());
    if (pid === child.pid) return { child, pid, exited };
    await sleep(10);
  }
  if (!exit) {
    child.kill('SIGKILL');
    await exited;
  }
  const stderrTail = tail(await readFile(paths.stderr, 'utf8').catch(() => ''));
  if (signal?.aborted) throw new DriverError('aborted', 'create', 'aborted while QEMU was starting');
  const x = exit as ExitInfo | null;
  if (x?.code === CGROUP_JOIN_FAILED) {
    throw new DriverError('spawn-failed', 'create', 'could not join the VM cgroup; QEMU was not started', {
      exitCode: x.code, stderrTail,
    });
  }
  throw new DriverError('spawn-failed', 'create', x ? `QEMU exited (${x.code ?? x.signal}) while starting` :
    'QEMU did not write its pid file within 15 s', { exitCode: x?.code ?? null, stderrTail });
}
