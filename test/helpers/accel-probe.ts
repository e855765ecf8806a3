import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { probeAccelerator, qemuVersion, type ProbeResult } from '../../src/vm/qemu-microvm/accel.js';
import { ensureTestImage, type TestImage } from '../vm/ensure-image.js';

/**
 * One KVM probe per run (a real boot of the test image with -accel kvm), and the test image
 * built or found in the cache once, before the system and e2e lanes' files. On a host with
 * /dev/kvm but no hardware virtualisation the guest never reaches /init, so a probe spins a
 * core for its whole timeout: tests read this (test/helpers/kvm.ts) instead of probing again,
 * and fleets run their VMs with the accelerator it found. A test of the refusal itself (the
 * driver's, the agent's) still makes its own probe.
 *
 * test/run.sh runs the lanes as separate vitest runs and sets HANGAR_TEST_RUN_DIR: the result
 * is kept there, keyed by kernel, initramfs and QEMU version, so the second lane reads it.
 */
export const KVM_PROBE_TIMEOUT_MS = 8000;

export type KvmProbe = ProbeResult | { error: string };

export async function setup(project: TestProject): Promise<void> {
  let result: KvmProbe;
  try {
    result = await cached(await ensureTestImage());
  } catch (err) {
    // No image (no network on a cold machine, no QEMU): the tests that need one fail with why.
    result = { error: (err as Error).message };
  }
  project.provide('kvmProbe', result);
}

async function cached(image: TestImage): Promise<ProbeResult> {
  const probe = () => probeAccelerator({ accel: 'kvm', kernel: image.kernel, initrd: image.initrd, timeoutMs: KVM_PROBE_TIMEOUT_MS });
  const runDir = process.env.HANGAR_TEST_RUN_DIR;
  if (!runDir) return probe();
  const f = image.manifest.files;
  const key = createHash('sha256').update(JSON.stringify([f.vmlinux, f['initramfs.cpio'], await qemuVersion()])).digest('hex');
  const file = join(runDir, `kvm-probe-${key.slice(0, 16)}.json`);
  const known = await readFile(file, 'utf8').then((t) => JSON.parse(t) as ProbeResult, () => null);
  if (known) return known;
  const result = await probe();
  await writeFile(file, JSON.stringify(result));
  return result;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kvmProbe: KvmProbe;
  }
}
