import { inject } from 'vitest';
import type { ProbeResult } from '../../src/vm/qemu-microvm/accel.js';
import type { KvmProbe } from './accel-probe.js';

/** The system lane's KVM probe (test/helpers/accel-probe.ts), made once per run. */
export function kvmProbe(): ProbeResult {
  const p: KvmProbe | undefined = inject('kvmProbe');
  if (p === undefined) throw new Error('no KVM probe: this file runs in the system lane (test/vitest.config.ts), whose globalSetup makes it');
  if ('error' in p) throw new Error(`the KVM probe could not run: ${p.error}`);
  return p;
}
