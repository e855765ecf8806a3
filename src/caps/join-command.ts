/**
 * Starts a command already inside its VM cgroup. The process joins every cgroup.procs file
 * and only then execs the real command, so QEMU never allocates guest memory outside its
 * limits (writing the pid after spawn would race with that). Nothing secret goes through
 * here: the file names and QEMU's own arguments only.
 */

/** 125: the shell's own failure, distinct from any exit code of the command it would exec. */
export const JOIN_FAILED_EXIT = 125;

const SCRIPT = [
  'n=$1; shift',
  'while [ "$n" -gt 0 ]; do',
  `  echo $$ > "$1" || exit ${JOIN_FAILED_EXIT}`,
  '  shift; n=$((n - 1))',
  'done',
  'exec "$@"',
].join('\n');

/** `/bin/sh` arguments that join `procsFiles`, then exec `command args…` with the same pid. */
export function joinCgroupCommand(procsFiles: string[], command: string, args: string[] = []): { command: string; args: string[] } {
  return { command: '/bin/sh', args: ['-c', SCRIPT, 'hangar-join', String(procsFiles.length), ...procsFiles, command, ...args] };
}
