/**
 * A newc ("070701") cpio archive writer: what the kernel unpacks as an initramfs. Entries are
 * written in the order given with mtime 0 and inode numbers from their position, so the same
 * inputs always give the same bytes (and the same sha256 in the manifest). Uncompressed on
 * purpose: the kernel unpacks it faster than it would inflate it under TCG.
 */
export type CpioEntry =
  | { kind: 'dir'; path: string; mode?: number }
  | { kind: 'file'; path: string; data: Buffer; mode?: number }
  | { kind: 'symlink'; path: string; target: string }
  | { kind: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;

export function writeCpio(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  entries.forEach((e, i) => parts.push(...record(i + 1, e)));
  parts.push(...header(0, 'TRAILER!!!', 0, Buffer.alloc(0), 1, [0, 0]));
  return Buffer.concat(parts);
}

function record(ino: number, e: CpioEntry): Buffer[] {
  const name = e.path.replace(/^\/+/, '');
  switch (e.kind) {
    case 'dir':
      return header(ino, name, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0), 2);
    case 'file':
      return header(ino, name, S_IFREG | (e.mode ?? 0o644), e.data, 1);
    case 'symlink':
      return header(ino, name, S_IFLNK | 0o777, Buffer.from(e.target), 1);
    case 'chardev':
      return header(ino, name, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), 1, [e.major, e.minor]);
  }
}

function header(ino: number, name: string, mode: number, data: Buffer, nlink: number, rdev = [0, 0]): Buffer[] {
  const nameBuf = Buffer.from(`${name}\0`);
  // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
  const fields = [ino, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0]!, rdev[1]!, nameBuf.length, 0];
  const head = Buffer.from(`070701${fields.map((f) => f.toString(16).padStart(8, '0')).join('')}`);
  return [head, nameBuf, pad(head.length + nameBuf.length), data, pad(data.length)];
}

/** newc pads the header+name and the data each to a multiple of four bytes. */
function pad(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}
