import { buildTestImage, type ImageManifest } from '../vm/image/build.js';
import { buildRunnerImage, verifyRunnerTarball, type RunnerImageManifest } from '../vm/image/runner.js';
import { DriverError } from '../vm/errors.js';

export interface ImageBuildOptions {
  kind: 'test' | 'runner';
  out: string;
  /** `runner` only: the operator's actions-runner-linux-x64-<version>.tar.gz (`--runner-tarball FILE`). */
  runnerTarball?: string;
  /** `runner` only: the SHA-256 GitHub publishes for that tarball (`--runner-sha256`); a mismatch stops the build before it starts. */
  runnerSha256?: string;
  /** `runner` only: the Debian mirror debootstrap uses (default deb.debian.org or `$HANGAR_DEBIAN_MIRROR`). */
  mirror?: string;
  /** `runner` only: free MiB in the root file system for the job (default 2048). */
  freeMiB?: number;
  /** `runner` only: debootstrap again even when the base root is cached. */
  refreshBase?: boolean;
  /** Cache for downloaded .debs, unpacked kernels and the debootstrapped base (default `$HANGAR_CACHE` or ~/.cache/hangar). */
  cacheDir?: string;
  /** Print progress lines on stderr (the CLI does; tests do not). */
  verbose?: boolean;
}

/**
 * `hangar image build test --out DIR`: the guest kernel + initramfs with busybox and the sim runner.
 * `hangar image build runner --out DIR --runner-tarball FILE`: the production image (kernel,
 * initramfs, rootfs.img with Debian, the actions runner and hangar-runner.service).
 */
export async function runImageBuild(opts: ImageBuildOptions & { kind: 'test' }): Promise<ImageManifest>;
export async function runImageBuild(opts: ImageBuildOptions & { kind: 'runner' }): Promise<RunnerImageManifest>;
export async function runImageBuild(opts: ImageBuildOptions): Promise<ImageManifest | RunnerImageManifest>;
export async function runImageBuild(opts: ImageBuildOptions): Promise<ImageManifest | RunnerImageManifest> {
  const started = Date.now();
  const onStep = opts.verbose
    ? (step: string, fields?: Record<string, unknown>) =>
      process.stderr.write(`image: ${step} ${fields ? JSON.stringify(fields) : ''}\n`)
    : undefined;
  if (opts.kind === 'runner') {
    if (!opts.runnerTarball) {
      throw new DriverError('bad-spec', 'image',
        'the runner image needs --runner-tarball FILE (actions-runner-linux-x64-<version>.tar.gz from github.com/actions/runner/releases)');
    }
    if (opts.runnerSha256 !== undefined) {
      const { sha256 } = await verifyRunnerTarball(opts.runnerTarball, opts.runnerSha256);
      onStep?.('runner-sha256', { file: opts.runnerTarball, sha256, verified: true });
    } else if (opts.verbose) {
      process.stderr.write('image: warning: --runner-sha256 not given: the runner tarball is not checked against the SHA-256 GitHub publishes for it\n');
    }
    const manifest = await buildRunnerImage({
      out: opts.out, runnerTarball: opts.runnerTarball, cacheDir: opts.cacheDir, mirror: opts.mirror,
      freeMiB: opts.freeMiB, refreshBase: opts.refreshBase, onStep,
    });
    if (opts.verbose) {
      process.stderr.write(`image: runner image (kernel ${manifest.kernel.release}, root ${manifest.root.sizeMiB} MiB) in ${opts.out} (${Date.now() - started} ms)\n`);
    }
    return manifest;
  }
  const manifest = await buildTestImage({ out: opts.out, cacheDir: opts.cacheDir, onStep });
  if (opts.verbose) {
    process.stderr.write(`image: kernel ${manifest.kernel.release} in ${opts.out} (${Date.now() - started} ms)\n`);
  }
  return manifest;
}
