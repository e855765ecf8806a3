/**
 * One microVM per CI job, behind a small interface every driver implements (qemu-microvm now,
 * firecracker later) and every driver must pass the conformance suite in test/vm/.
 *
 * Every method is idempotent: create() twice with the same id yields one VM; destroy() of an
 * unknown id resolves; list() finds exactly the VMs this host's agent made, after a crash too.
 */
export type VmId = string;

export interface VmSpec {
  /** Derived from the job key (`wj-<workflow job id>-<attempt>`), so a retried job finds its VM. */
  id: VmId;
  /** Guest kernel (uncompressed vmlinux for microvm's PVH boot). */
  kernel: string;
  /** initramfs (cpio) for the test image; the production image boots a root disk instead. */
  initrd?: string;
  /** Root disk image; the VM gets its own copy-on-write overlay of it, never writes to it. */
  rootDisk?: string;
  /** Extra kernel command line (the driver adds console, reboot and clock settings). */
  cmdline?: string;
  memoryMiB: number;
  vcpus: number;
  /**
   * Files handed to the guest through fw_cfg (`opt/hangar/<name>`), e.g. its network settings.
   * Mode 0600, removed on destroy. Never job data: the agent hands a booted VM its JIT config
   * through the VM's metadata endpoint, so a VM can boot before its job is known.
   */
  guestFiles?: Record<string, Buffer | string>;
  /** A tap device the agent made; none: no network. */
  network?: { tap: string; mac: string };
  /**
   * `cgroup.procs` files of the VM's own cgroup (one per v1 controller hierarchy, or one on v2).
   * The VM's process joins them before it execs, so it never runs outside its cap.
   */
  cgroupProcsFiles?: string[];
  /** Wall-clock cap: the VM is killed when it runs longer. */
  timeoutMs: number;
  /** Bytes of serial console kept (the tail); the guest is hostile, its output is bounded. */
  consoleLimitBytes?: number;
}

export interface VmHandle {
  id: VmId;
  pid: number | null;
  /** Where the bounded serial console log is. */
  consoleLog: string;
  startedAt: number;
}

export type VmExit =
  | { kind: 'exited'; code: number | null; signal: string | null }
  | { kind: 'timeout' }
  | { kind: 'lost' };

export interface VmDriver {
  readonly name: string;
  create(spec: VmSpec, signal?: AbortSignal): Promise<VmHandle>;
  /** Resolves when the VM's process is gone: it powered off, crashed, or hit its time cap. */
  wait(id: VmId, signal?: AbortSignal): Promise<VmExit>;
  destroy(id: VmId): Promise<void>;
  /** Only VMs this host's agent created (found from the driver's state dir, not from memory). */
  list(): Promise<VmHandle[]>;
  /** The accelerator it boots with, once known (`auto` decides at the first VM): the heartbeat says it. */
  accelerator?(): 'kvm' | 'tcg' | null;
}
