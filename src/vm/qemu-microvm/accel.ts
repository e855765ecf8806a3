import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { execa } from 'execa';
import { tail } from '../errors.js';

export const DEFAULT_QEMU = 'qemu-system-x86_64';
const MARKER = 'HANGAR-GUEST-INIT';

/** The host's TSC rate in kHz, for the guest's `tsc_early_khz` (from the first "cpu MHz"). */
export async function hostTscKhz(cpuinfo = '/proc/cpuinfo'): Promise<number> {
  const text = await readFile(cpuinfo, 'utf8');
  const mhz = Number(/^cpu MHz\s*:\s*([\d.]+)/m.exec(text)?.[1]);
  if (!Number.isFinite(mhz) || mhz <= 0) throw new Error(`no "cpu MHz" in ${cpuinfo}`);
  return Math.round(mhz * 1000);
}

/** Whether this QEMU build has seccomp: without it, `-sandbox` is an unknown option group. */
export async function qemuHasSandbox(qemu = DEFAULT_QEMU): Promise<boolean> {
  const r = await execa(qemu, ['-sandbox', 'on', '-version'], { reject: false });
  return r.exitCode === 0;
}

export async function qemuVersion(qemu = DEFAULT_QEMU): Promise<string | null> {
  const r = await execa(qemu, ['-version'], { reject: false });
  return r.exitCode === 0 ? String(r.stdout).split('\n')[0]!.trim() : null;
}

export interface ProbeOptions {
  accel: 'kvm' | 'tcg';
  kernel: string;
  initrd?: string;
  rootDisk?: string;
  qemuBinary?: string;
  hostTscKhz?: number;
  /** How long the guest gets to reach /init (default: 8 s for KVM, which boots in well under one; 20 s for TCG). */
  timeoutMs?: number;
}

export interface ProbeResult {
  accel: 'kvm' | 'tcg';
  ok: boolean;
  /** Time to the guest's HANGAR-GUEST-INIT marker, when it was reached. */
  bootMs?: number;
  /** Why it did not work, for `hangar doctor` and the driver's refusal. */
  reason?: string;
}

/**
 * Boots the image once with `accel` and reports whether the guest reached /init. Opening
 * /dev/kvm is not enough: on a host without hardware virtualisation it opens, creates a VM,
 * and the guest then dies in the decompressor a minute later.
 */
export async function probeAccelerator(o: ProbeOptions): Promise<ProbeResult> {
  if (o.accel === 'kvm') {
    const usable = await access('/dev/kvm', constants.R_OK | constants.W_OK).then(() => true, () => false);
    if (!usable) return { accel: 'kvm', ok: false, reason: '/dev/kvm is missing or not accessible' };
  }
  const khz = o.hostTscKhz ?? (await hostTscKhz());
  const args = [
    '-M', 'microvm,acpi=on', '-accel', o.accel, '-cpu', o.accel === 'kvm' ? 'host' : 'max', '-m', '256', '-smp', '1',
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot', '-serial', 'stdio',
    '-kernel', o.kernel, '-append', `console=ttyS0 reboot=t panic=-1 tsc_early_khz=${khz} quiet`,
  ];
  if (o.initrd) args.push('-initrd', o.initrd);
  if (o.rootDisk) {
    args.push('-drive', `id=root,if=none,format=raw,readonly=on,file=${o.rootDisk.replace(/,/g, ',,')}`);
    args.push('-device', 'virtio-blk-device,drive=root');
  }
  return bootUntilMarker(o.qemuBinary ?? DEFAULT_QEMU, args, o.accel, o.timeoutMs ?? (o.accel === 'kvm' ? 8_000 : 20_000));
}

function bootUntilMarker(qemu: string, args: string[], accel: 'kvm' | 'tcg', timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(qemu, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let result: ProbeResult | null = null;
    const finish = (r: ProbeResult) => {
      if (result) return;
      result = r;
      clearTimeout(timer);
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () => finish({ accel, ok: false, reason: `the guest did not reach /init within ${timeoutMs} ms` }),
      timeoutMs,
    );
    child.stdout.on('data', (d: Buffer) => {
      out = tail(out + d.toString('latin1'), 4096);
      if (out.includes(MARKER)) finish({ accel, ok: true, bootMs: Date.now() - started });
    });
    child.stderr.on('data', (d: Buffer) => { err = tail(err + d.toString(), 2000); });
    child.on('error', (e) => finish({ accel, ok: false, reason: `cannot run ${qemu}: ${e.message}` }));
    child.on('close', (code, signal) => {
      finish({ accel, ok: false, reason: `qemu exited (${code ?? signal}) before /init: ${tail(err || out, 500).trim()}` });
      resolve(result!);
    });
  });
}

/** `auto`: KVM when a probe boot works, else TCG. Returns the probes made, for the log. */
export async function chooseAccelerator(
  want: 'kvm' | 'tcg' | 'auto',
  image: Omit<ProbeOptions, 'accel'>,
): Promise<{ accel: 'kvm' | 'tcg' | null; probes: ProbeResult[] }> {
  if (want === 'tcg') return { accel: 'tcg', probes: [] };
  const kvm = await probeAccelerator({ ...image, accel: 'kvm' });
  if (kvm.ok || want === 'kvm') return { accel: kvm.ok ? 'kvm' : null, probes: [kvm] };
  return { accel: 'tcg', probes: [kvm] };
}
