import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tokenSha256 } from '../jit/host-auth.js';

/** `hangar host token FILE`: a new random token in FILE (0600, never overwritten); its sha256 on stdout. */
export async function hostToken(file: string): Promise<void> {
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  process.stdout.write(`${tokenSha256(token)}\n`);
}
