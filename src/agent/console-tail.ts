import { open } from 'node:fs/promises';

/**
 * The end of a failed VM's serial console, kept with its outcome so an operator can see why it
 * ended. The guest is hostile and its console may hold anything it was given: the tail is
 * bounded and secrets are cut out before it leaves this module.
 */
export const CONSOLE_TAIL_BYTES = 8 * 1024;

const REDACTED = '[redacted]';

/**
 * Cuts out what could be a secret: the given strings (the VM's own JIT config), bearer and
 * runner tokens after their scheme, JWTs, GitHub tokens (`ghp_`, `ghs_`, … and fine-grained
 * `github_pat_`), and any base64 run longer than 100 characters (a JIT config, or a piece of
 * one, whatever the guest did to it). Pure; errs on the side of cutting.
 */
export function redactSecrets(text: string, secrets: readonly string[] = []): string {
  let out = text;
  for (const s of secrets) if (s.length >= 8) out = out.split(s).join(REDACTED);
  return out
    .replace(/\b(Bearer|RunnerToken|token)(\s+)[A-Za-z0-9._~+/=-]{8,}/gi, `$1$2${REDACTED}`)
    .replace(/\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*/g, REDACTED)
    .replace(/\bgh[pousr]_[A-Za-z0-9]{16,}/g, REDACTED)
    .replace(/\bgithub_pat_[A-Za-z0-9_]{16,}/g, REDACTED)
    .replace(/[A-Za-z0-9+/_-]{101,}={0,2}/g, REDACTED);
}

/**
 * The last `bytes` of a console log, redacted; '' when there is none. Twice as much is read and
 * redacted first, so a secret cut in two by the read's start cannot leave a piece in the tail
 * (a piece longer than the margin is a long base64 run, cut out anyway); the first partial line
 * is dropped.
 */
export async function readConsoleTail(file: string, secrets: readonly string[] = [], bytes = CONSOLE_TAIL_BYTES): Promise<string> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch {
    return '';
  }
  try {
    const size = (await fh.stat()).size;
    const len = Math.min(size, bytes * 2);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const clean = redactSecrets(buf.toString('utf8'), secrets);
    if (len < size || clean.length > bytes) {
      const tail = clean.slice(-bytes);
      const nl = tail.indexOf('\n');
      return nl >= 0 && nl < tail.length - 1 ? tail.slice(nl + 1) : tail;
    }
    return clean;
  } finally {
    await fh.close();
  }
}
