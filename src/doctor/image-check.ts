import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveImage } from '../agent/image.js';
import type { GuestImage } from '../agent/host-parts.js';
import { ConfigError } from '../domain/errors.js';
import { fail, ok, skip } from '../domain/doctor.js';
import { buildImageHint } from '../vm/image/kinds.js';
import type { Check, DoctorContext } from './check.js';

/** Files hashed to compare with the manifest; the root disk (GiBs) is compared by size only, or doctor would take minutes. */
const HASHED = new Set(['vmlinux', 'initramfs.cpio']);

interface ManifestFiles {
  files?: Record<string, { sha256?: unknown; bytes?: unknown }>;
}

/** The image folder as the agent resolves it, or the reason it would refuse to start. */
export function imageOf(ctx: DoctorContext): { dir: string; image: GuestImage } | { dir: string; problem: string } | null {
  const dir = ctx.agent?.agent.vm.image;
  if (!dir) return null;
  try {
    return { dir, image: resolveImage(dir) };
  } catch (err) {
    if (err instanceof ConfigError) return { dir, problem: err.problems.map((p) => p.message).join('; ') };
    throw err;
  }
}

export const imageCheck: Check = {
  id: 'image',
  title: 'guest kernel and image present and matching their manifest',
  async run(ctx) {
    const found = imageOf(ctx);
    if (!found) return skip('no agent.vm.image');
    const rebuild = `${buildImageHint(found.dir)}; or point agent.vm.image at a built folder`;
    if ('problem' in found) return fail(found.problem, rebuild);
    const text = await readFile(join(found.dir, 'manifest.json'), 'utf8').catch(() => null);
    if (text === null) return fail(`${found.dir}/manifest.json is missing: the image's files cannot be checked`, rebuild);
    let manifest: ManifestFiles;
    try {
      manifest = JSON.parse(text) as ManifestFiles;
    } catch {
      return fail(`${found.dir}/manifest.json is not JSON`, rebuild);
    }
    const files = Object.entries(manifest.files ?? {});
    if (files.length === 0) return fail(`${found.dir}/manifest.json lists no files`, rebuild);
    const mismatched: string[] = [];
    for (const [name, want] of files) {
      const why = await mismatch(join(found.dir, name), want);
      if (why) mismatched.push(`${name} ${why}`);
    }
    if (mismatched.length > 0) return fail(`${found.dir} does not match its manifest.json: ${mismatched.join('; ')}`, rebuild);
    return ok(`${found.dir}: ${files.map(([n]) => n).join(', ')} match manifest.json`);
  },
};

async function mismatch(file: string, want: { sha256?: unknown; bytes?: unknown }): Promise<string | null> {
  const s = await stat(file).catch(() => null);
  if (!s) return 'is missing';
  if (typeof want.bytes === 'number' && s.size !== want.bytes) return `is ${s.size} bytes, the manifest says ${want.bytes}`;
  const name = file.slice(file.lastIndexOf('/') + 1);
  if (HASHED.has(name) && typeof want.sha256 === 'string' && (await sha256File(file)) !== want.sha256) return 'has another sha256 than the manifest says';
  return null;
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('data', (c) => h.update(c)).on('end', () => resolve(h.digest('hex'))).on('error', reject);
  });
}

/** The image's size on disk: what each slot's VM folder may grow towards (root disk overlay), for the disk check. */
export async function imageBytes(image: GuestImage): Promise<number> {
  let total = 0;
  for (const f of [image.kernel, image.initrd, image.rootDisk]) if (f) total += (await stat(f)).size;
  return total;
}

