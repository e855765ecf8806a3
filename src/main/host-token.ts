import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { HangarError } from '../domain/errors.js';
import { tokenSha256 } from '../jit/host-auth.js';

/** `hangar host token FILE`: a new random token in FILE (0600, never overwritten); its sha256 on stdout. */
export async function hostToken(file: string): Promise<void> {
  const token = randomBytes(32).toString('base64url');
  try {
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    throw new HangarError('token-file-exists', `${file} already exists: hangar host token never overwrites one (a host may be using it); remove it first, or write the new token elsewhere`);
  }
  process.stdout.write(`${tokenSha256(token)}\n`);
}
