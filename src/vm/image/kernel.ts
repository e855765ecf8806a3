import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import { DriverError, tail } from '../errors.js';

/**
 * extract-vmlinux, precisely: the x86 boot header says where the compressed kernel is
 * (`payload_offset`, `payload_length`, boot protocol ≥ 2.08), so there is no scanning for
 * magic bytes. microvm boots the uncompressed ELF directly through its PVH note, which saves
 * the decompressor's time on every boot (~0.4 s under TCG).
 */
export async function extractVmlinux(bzImage: Buffer): Promise<Buffer> {
  const payload = locatePayload(bzImage);
  const elf = await decompress(payload);
  if (elf.readUInt32BE(0) !== 0x7f454c46) {
    throw new DriverError('tool-failed', 'image', 'the decompressed kernel is not an ELF file');
  }
  return elf;
}

function locatePayload(img: Buffer): Buffer {
  if (img.length < 0x250 || img.toString('latin1', 0x202, 0x206) !== 'HdrS') {
    throw new DriverError('tool-failed', 'image', 'not an x86 bzImage (no HdrS boot header)');
  }
  const version = img.readUInt16LE(0x206);
  if (version < 0x208) {
    throw new DriverError('tool-failed', 'image', `boot protocol ${version.toString(16)} has no payload fields`);
  }
  const setupSects = img[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const end = start + img.readUInt32LE(0x24c);
  if (end > img.length) throw new DriverError('tool-failed', 'image', 'bzImage payload runs past the file');
  return img.subarray(start, end);
}

async function decompress(payload: Buffer): Promise<Buffer> {
  const magic = payload.readUInt32LE(0);
  if (magic === 0x184c2102) return lz4Legacy(payload);
  if (payload[0] === 0x1f && payload[1] === 0x8b) return gunzipSync(payload);
  // The kernel build appends the uncompressed size after xz and zstd streams; drop it.
  const body = payload.subarray(0, payload.length - 4);
  if (payload.toString('latin1', 0, 6) === '\xfd7zXZ\x00') return viaTool('xz', ['-dc', '--single-stream'], body);
  if (magic === 0xfd2fb528) return viaTool('zstd', ['-dc'], body);
  throw new DriverError('tool-failed', 'image', `unknown kernel compression (magic ${magic.toString(16)})`);
}

async function viaTool(tool: string, args: string[], input: Buffer): Promise<Buffer> {
  const r = await execa(tool, args, { input, encoding: 'buffer', reject: false });
  if (r.exitCode !== 0) {
    throw new DriverError('tool-failed', 'image', `${tool} could not decompress the kernel`, {
      exitCode: r.exitCode ?? null,
      stderrTail: tail(Buffer.from(r.stderr).toString()),
    });
  }
  return Buffer.from(r.stdout);
}

/**
 * LZ4 "legacy" frames (what CONFIG_KERNEL_LZ4 makes, Debian's choice): a magic, then blocks of
 * [u32 compressed size][LZ4 block]. The kernel appends the uncompressed size as a last u32,
 * which sizes the output. Node has no LZ4, and this is 40 lines instead of a host package.
 */
export function lz4Legacy(payload: Buffer): Buffer {
  const size = payload.readUInt32LE(payload.length - 4);
  const out = Buffer.alloc(size);
  let ip = 4;
  let op = 0;
  const end = payload.length - 4;
  while (ip + 4 <= end) {
    const blockLen = payload.readUInt32LE(ip);
    if (blockLen === 0x184c2102) { ip += 4; continue; } // a concatenated frame
    ip += 4;
    if (ip + blockLen > end) break;
    op = lz4Block(payload, ip, ip + blockLen, out, op);
    ip += blockLen;
  }
  if (op !== size) throw new DriverError('tool-failed', 'image', `lz4: got ${op} bytes, expected ${size}`);
  return out;
}

function lz4Block(src: Buffer, ip: number, end: number, out: Buffer, op: number): number {
  const extend = (n: number): number => {
    if (n !== 15) return n;
    let b: number;
    do { b = src[ip++]!; n += b; } while (b === 255);
    return n;
  };
  while (ip < end) {
    const token = src[ip++]!;
    const lit = extend(token >> 4);
    src.copy(out, op, ip, ip + lit);
    ip += lit;
    op += lit;
    if (ip >= end) break; // the last sequence carries literals only
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    const len = extend(token & 15) + 4;
    if (offset === 0 || offset > op) throw new DriverError('tool-failed', 'image', 'lz4: corrupt block');
    // Matches may overlap their own output (offset < len): copy byte by byte then.
    if (offset >= len) out.copy(out, op, op - offset, op - offset + len);
    else for (let i = 0; i < len; i++) out[op + i] = out[op - offset + i]!;
    op += len;
  }
  return op;
}
