import { HangarError } from '../domain/errors.js';

/**
 * A VM driver or image build step failed. `op` says which step (`create`, `destroy`, `accel`,
 * `image`, …) and `code` is stable, so callers branch on them, never on the message.
 * `stderrTail` is the end of the failing tool's stderr: QEMU and apt never see a secret
 * (guest files travel as fw_cfg file paths), so it is safe to show an operator.
 */
export type DriverErrorCode =
  | 'bad-spec'
  | 'image-missing'
  | 'qemu-missing'
  | 'accel-unusable'
  | 'spawn-failed'
  | 'tool-failed'
  | 'aborted';

export class DriverError extends HangarError {
  readonly op: string;
  readonly exitCode: number | null;
  readonly stderrTail: string;
  constructor(
    code: DriverErrorCode,
    op: string,
    message: string,
    detail: { exitCode?: number | null; stderrTail?: string } = {},
  ) {
    const tail = detail.stderrTail?.trim();
    super(code, tail ? `${op}: ${message}\n${tail}` : `${op}: ${message}`);
    this.op = op;
    this.exitCode = detail.exitCode ?? null;
    this.stderrTail = detail.stderrTail ?? '';
  }
}

/** The last `max` characters of a tool's output: enough to act on, never a flood. */
export function tail(text: string, max = 2000): string {
  return text.length <= max ? text : text.slice(text.length - max);
}
