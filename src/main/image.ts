import { buildTestImage, type ImageManifest } from '../vm/image/build.js';

export interface ImageBuildOptions {
  kind: 'test';
  out: string;
  /** Cache for downloaded .debs and unpacked kernels (default `$HANGAR_CACHE` or ~/.cache/hangar). */
  cacheDir?: string;
  /** Print progress lines on stderr (the CLI does; tests do not). */
  verbose?: boolean;
}

/** `hangar image build test --out DIR`: the guest kernel + initramfs with busybox and the sim runner. */
export async function runImageBuild(opts: ImageBuildOptions): Promise<ImageManifest> {
  const started = Date.now();
  const manifest = await buildTestImage({
    out: opts.out,
    cacheDir: opts.cacheDir,
    onStep: opts.verbose
      ? (step, fields) => process.stderr.write(`image: ${step} ${fields ? JSON.stringify(fields) : ''}\n`)
      : undefined,
  });
  if (opts.verbose) {
    process.stderr.write(`image: kernel ${manifest.kernel.release} in ${opts.out} (${Date.now() - started} ms)\n`);
  }
  return manifest;
}
