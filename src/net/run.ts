/**
 * Runs ip(8), nft(8) and sysctl(8), optionally inside a network namespace (tests build their
 * hosts out of namespaces). Failures carry the command and the tail of stderr, never stdin:
 * a ruleset is not secret, but the habit is worth keeping.
 */
import { execa } from 'execa';
import { HangarError } from '../domain/errors.js';

export class NetError extends HangarError {
  constructor(
    readonly op: string,
    readonly exitCode: number | undefined,
    readonly stderrTail: string,
  ) {
    super('net-command', `${op} failed (exit ${exitCode ?? '?'}): ${stderrTail}`);
  }
}

export interface RunResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** `cmd args` in `netns` (if given). Resolves with ok=false on a non-zero exit; throws only if `check`. */
export async function run(netns: string | undefined, cmd: string, args: string[], opts: { input?: string; check?: boolean } = {}): Promise<RunResult> {
  const [file, argv] = netns ? ['ip', ['netns', 'exec', netns, cmd, ...args]] : [cmd, args];
  const r = await execa(file, argv, { reject: false, input: opts.input ?? '', stripFinalNewline: true });
  const out = { ok: r.exitCode === 0, stdout: String(r.stdout), stderr: String(r.stderr) };
  if (!out.ok && opts.check !== false) {
    throw new NetError(`${cmd} ${args.join(' ')}`, r.exitCode, out.stderr.slice(-400) || String(r.shortMessage));
  }
  return out;
}
