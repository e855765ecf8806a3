import type { VmSpec } from '../driver.js';

/** What the VM's folder holds; every path here is derived from the state dir and the id. */
export interface VmPaths {
  dir: string;
  vmJson: string;
  pidFile: string;
  consoleSock: string;
  consoleLog: string;
  stderr: string;
  overlay: string;
  guestDir: string;
  timeoutMark: string;
  exitJson: string;
}

export function vmPaths(dir: string): VmPaths {
  return {
    dir,
    vmJson: `${dir}/vm.json`,
    pidFile: `${dir}/qemu.pid`,
    consoleSock: `${dir}/console.sock`,
    consoleLog: `${dir}/console.log`,
    stderr: `${dir}/qemu.stderr`,
    overlay: `${dir}/overlay.qcow2`,
    guestDir: `${dir}/guest`,
    timeoutMark: `${dir}/timed-out`,
    exitJson: `${dir}/exit.json`,
  };
}

export interface QemuArgsInput {
  spec: VmSpec;
  paths: VmPaths;
  accel: 'kvm' | 'tcg';
  tscKhz: number;
  /** seccomp is compiled in. */
  sandbox: boolean;
  runAs?: string;
  /** name → file (mode 0600) holding that guest file's bytes. */
  guestFiles: Array<[string, string]>;
}

/** QEMU's option syntax splits on commas; a literal comma in a value is written twice. */
export function optValue(v: string): string {
  return v.replace(/,/g, ',,');
}

/**
 * The QEMU command line for one VM. It carries paths and sizes only: guest files go by
 * `file=` (never `string=`, which any local user could read in /proc/<pid>/cmdline).
 */
export function buildQemuArgs(i: QemuArgsInput): string[] {
  const { spec, paths } = i;
  // reboot=t + panic=-1 + -no-reboot: a guest crash ends the VM instead of looping;
  // tsc_early_khz skips TSC calibration, which hangs TCG guests on a busy host.
  const cmdline = ['console=ttyS0', 'reboot=t', 'panic=-1', `tsc_early_khz=${i.tscKhz}`, spec.cmdline ?? '']
    .filter(Boolean)
    .join(' ');
  const args = [
    '-name', `hangar-${spec.id}`,
    '-M', 'microvm,acpi=on', // ACPI: microvm's virtio-mmio discovery and poweroff need it
    '-accel', i.accel,
    '-cpu', i.accel === 'kvm' ? 'host' : 'max',
    '-m', String(spec.memoryMiB),
    '-smp', String(spec.vcpus),
    '-nodefaults', '-no-user-config', '-nographic', '-no-reboot',
    '-pidfile', paths.pidFile,
    '-kernel', spec.kernel,
    '-append', cmdline,
    '-chardev', `socket,id=console,path=${optValue(paths.consoleSock)},server=on,wait=off`,
    '-serial', 'chardev:console',
  ];
  if (spec.initrd) args.push('-initrd', spec.initrd);
  if (spec.rootDisk) {
    args.push('-drive', `id=root,if=none,format=qcow2,file=${optValue(paths.overlay)}`);
    args.push('-device', 'virtio-blk-device,drive=root');
  }
  if (spec.network) {
    args.push('-netdev', `tap,id=net0,ifname=${optValue(spec.network.tap)},script=no,downscript=no`);
    args.push('-device', `virtio-net-device,netdev=net0,mac=${spec.network.mac}`);
  }
  for (const [name, file] of i.guestFiles) args.push('-fw_cfg', `name=opt/hangar/${name},file=${optValue(file)}`);
  if (i.sandbox) {
    // elevateprivileges=deny would also forbid -runas's own setuid: allow it only then.
    const elevate = i.runAs ? '' : ',elevateprivileges=deny';
    args.push('-sandbox', `on,obsolete=deny,spawn=deny,resourcecontrol=deny${elevate}`);
  }
  if (i.runAs) args.push('-runas', i.runAs);
  return args;
}
