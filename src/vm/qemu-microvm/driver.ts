import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { VmDriver, VmExit, VmHandle, VmId, VmSpec } from '../driver.js';
import { DriverError } from '../errors.js';
import { chooseAccelerator, DEFAULT_QEMU, hostTscKhz, qemuHasSandbox, qemuVersion } from './accel.js';
import { buildQemuArgs, type VmPaths } from './args.js';
import { BoundedConsole } from './console.js';
import { launchQemu, type ExitInfo, type Launched } from './launch.js';
import { checkImage, prepareVmDir, validateSpec } from './prepare.js';
import {
  ID_PATTERN, isVmProcess, listIds, livePid, pathsFor, readRecord, sleep, waitGone, writeJsonAtomic, type VmRecord,
} from './state.js';

export interface QemuMicrovmOptions {
  /** Where each VM's folder lives; the driver knows exactly the VMs found here. */
  stateDir: string;
  /** `auto`: KVM when a probe boot of the first VM's image works, else TCG. */
  accel: 'kvm' | 'tcg' | 'auto';
  qemuBinary?: string;
  qemuImgBinary?: string;
  /** Unprivileged user QEMU drops to (`-runas`) once it has opened its files as root. */
  runAs?: string;
  hostTscKhz?: number;
  logger?: Logger;
  probeTimeoutMs?: number;
}

const DEFAULT_CONSOLE_LIMIT = 1024 * 1024;
const POLL_MS = 200;

/** One VM this driver instance watches: made here, or adopted from disk after a restart. */
interface Tracked {
  paths: VmPaths;
  record: VmRecord;
  pid: number | null;
  console: BoundedConsole | null;
  /** Resolves when the process is gone; with its exit status when this process spawned it. */
  gone: Promise<ExitInfo | null>;
  timer: NodeJS.Timeout | null;
  stopped: boolean;
}

export function createQemuMicrovmDriver(opts: QemuMicrovmOptions): VmDriver {
  return new QemuMicrovmDriver(opts);
}

class QemuMicrovmDriver implements VmDriver {
  readonly name = 'qemu-microvm';
  private readonly qemu: string;
  private readonly tracked = new Map<VmId, Tracked>();
  private readonly locks = new Map<VmId, Promise<unknown>>();
  private host: Promise<{ sandbox: boolean; tscKhz: number }> | null = null;
  private accel: Promise<'kvm' | 'tcg'> | null = null;
  private chosen: 'kvm' | 'tcg' | null;
  private readonly log: Logger | undefined;

  constructor(private readonly opts: QemuMicrovmOptions) {
    this.qemu = opts.qemuBinary ?? DEFAULT_QEMU;
    this.chosen = opts.accel === 'auto' ? null : opts.accel;
    this.log = opts.logger?.child({ driver: 'qemu-microvm' });
  }

  create(spec: VmSpec, signal?: AbortSignal): Promise<VmHandle> {
    const paths = pathsFor(this.opts.stateDir, spec.id);
    validateSpec(spec, paths);
    return this.serialize(spec.id, async () => {
      const existing = await this.adopt(spec.id);
      if (existing) return handleOf(spec.id, existing);
      if (existsSync(paths.dir)) await this.removeVm(spec.id, paths); // a create that never finished
      await checkImage(spec);
      const { sandbox, tscKhz } = await this.hostInfo();
      const accel = await this.resolveAccel(spec);
      if (signal?.aborted) throw new DriverError('aborted', 'create', 'aborted');
      try {
        return await this.start(spec, paths, { accel, sandbox, tscKhz }, signal);
      } catch (err) {
        await this.removeVm(spec.id, paths);
        throw err;
      }
    });
  }

  async wait(id: VmId, signal?: AbortSignal): Promise<VmExit> {
    const t = await this.serialize(id, () => this.adopt(id));
    if (!t) return { kind: 'lost' };
    const info = await abortable(t.gone, signal);
    // Let the console reader drain what QEMU wrote last (it closes when QEMU does).
    await Promise.race([t.console?.closed, sleep(2000)]);
    if (existsSync(t.paths.timeoutMark)) return { kind: 'timeout' };
    return { kind: 'exited', code: info?.code ?? null, signal: info?.signal ?? null };
  }

  destroy(id: VmId): Promise<void> {
    if (!ID_PATTERN.test(id)) return Promise.resolve(); // could never have been ours
    return this.serialize(id, () => this.removeVm(id, pathsFor(this.opts.stateDir, id)));
  }

  /** Every VM folder in the state dir. Running ones are adopted: console reader and time cap re-armed. */
  async list(): Promise<VmHandle[]> {
    const handles: VmHandle[] = [];
    for (const id of await listIds(this.opts.stateDir)) {
      const t = await this.serialize(id, () => this.adopt(id));
      const paths = pathsFor(this.opts.stateDir, id);
      if (t) handles.push(handleOf(id, t));
      else handles.push({ id, pid: await livePid(paths), consoleLog: paths.consoleLog, startedAt: await mtime(paths.dir) });
    }
    return handles;
  }

  private async start(
    spec: VmSpec,
    paths: VmPaths,
    host: { accel: 'kvm' | 'tcg'; sandbox: boolean; tscKhz: number },
    signal?: AbortSignal,
  ): Promise<VmHandle> {
    const guestFiles = await prepareVmDir(spec, paths, this.opts.qemuImgBinary ?? 'qemu-img');
    const args = buildQemuArgs({ spec, paths, guestFiles, runAs: this.opts.runAs, ...host });
    const startedAt = Date.now();
    const launched = await launchQemu(this.qemu, args, paths, spec.cgroupProcsFiles ?? [], signal);
    const record: VmRecord = {
      id: spec.id,
      startedAt,
      deadline: startedAt + spec.timeoutMs,
      consoleLimitBytes: spec.consoleLimitBytes ?? DEFAULT_CONSOLE_LIMIT,
    };
    await writeJsonAtomic(paths.vmJson, record);
    const t = this.track(paths, record, launched.pid, launched);
    this.log?.info({ vmId: spec.id, pid: launched.pid, accel: host.accel }, 'vm started');
    return handleOf(spec.id, t);
  }

  /** The tracked VM, adopting it from disk if this process has not seen it yet. */
  private async adopt(id: VmId): Promise<Tracked | null> {
    const known = this.tracked.get(id);
    if (known && existsSync(known.paths.vmJson)) return known;
    if (known) this.forget(known); // destroyed by another driver instance on this state dir
    const paths = pathsFor(this.opts.stateDir, id);
    const record = await readRecord(paths);
    if (!record) return null;
    return this.track(paths, record, await livePid(paths));
  }

  private track(paths: VmPaths, record: VmRecord, pid: number | null, launched?: Launched): Tracked {
    const t: Tracked = { paths, record, pid, console: null, gone: Promise.resolve(null), timer: null, stopped: false };
    this.tracked.set(record.id, t);
    t.gone = launched ? this.reap(t, launched) : this.poll(t, pid);
    if (pid === null) return t;
    t.console = new BoundedConsole(paths.consoleSock, paths.consoleLog, record.consoleLimitBytes);
    void t.console.start(() => isVmProcess(pid, paths.pidFile));
    const delay = Math.min(Math.max(record.deadline - Date.now(), 0), 2 ** 31 - 1);
    t.timer = setTimeout(() => void this.timeOut(t, pid), delay);
    t.timer.unref();
    void t.gone.then(() => { if (t.timer) clearTimeout(t.timer); });
    return t;
  }

  /** Our own child: its exit status is known; kept on disk for an agent that restarts later. */
  private async reap(t: Tracked, launched: Launched): Promise<ExitInfo> {
    const info = await launched.exited;
    if (!t.stopped) await writeFile(t.paths.exitJson, JSON.stringify(info)).catch(() => {});
    return info;
  }

  /** A VM an earlier agent process started: only /proc tells when it is gone. */
  private async poll(t: Tracked, pid: number | null): Promise<ExitInfo | null> {
    while (pid !== null && !t.stopped && (await isVmProcess(pid, t.paths.pidFile))) await sleep(POLL_MS);
    const saved = await readFile(t.paths.exitJson, 'utf8').catch(() => null);
    return saved ? (JSON.parse(saved) as ExitInfo) : null;
  }

  private async timeOut(t: Tracked, pid: number): Promise<void> {
    if (t.stopped || !(await isVmProcess(pid, t.paths.pidFile))) return;
    await writeFile(t.paths.timeoutMark, '').catch(() => {});
    this.log?.warn({ vmId: t.record.id, timeoutMs: t.record.deadline - t.record.startedAt }, 'vm past its time cap, killed');
    try { process.kill(pid, 'SIGKILL'); } catch { /* it ended on its own meanwhile */ }
  }

  private forget(t: Tracked): void {
    t.stopped = true;
    if (t.timer) clearTimeout(t.timer);
    void t.console?.stop();
    this.tracked.delete(t.record.id);
  }

  /** Stops the process (SIGTERM, then SIGKILL) and removes the folder with everything in it. */
  private async removeVm(id: VmId, paths: VmPaths): Promise<void> {
    const t = this.tracked.get(id);
    if (t) {
      t.stopped = true;
      if (t.timer) clearTimeout(t.timer);
    }
    const pid = (t?.pid ?? null) !== null && (await isVmProcess(t!.pid!, paths.pidFile)) ? t!.pid : await livePid(paths);
    if (pid !== null) await terminate(paths, pid);
    // Our own child is a zombie until Node reaps it, and a zombie still counts in its cgroup:
    // wait for the reap, so the caller can remove the VM's cgroup as soon as this resolves.
    if (t) await Promise.race([t.gone, sleep(5000)]);
    await t?.console?.stop();
    // Retried: a console reader still attached (a driver restarted in the same process) may write one more file meanwhile (ENOTEMPTY).
    await rm(paths.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    this.tracked.delete(id);
    if (t || pid !== null) this.log?.info({ vmId: id }, 'vm destroyed');
  }

  private hostInfo(): Promise<{ sandbox: boolean; tscKhz: number }> {
    this.host ??= (async () => {
      if (!(await qemuVersion(this.qemu))) {
        throw new DriverError('qemu-missing', 'create', `${this.qemu} does not run (apt-get install qemu-system-x86)`);
      }
      await mkdir(this.opts.stateDir, { recursive: true, mode: 0o700 });
      return { sandbox: await qemuHasSandbox(this.qemu), tscKhz: this.opts.hostTscKhz ?? (await hostTscKhz()) };
    })();
    return this.host.catch((err) => { this.host = null; throw err; });
  }

  accelerator(): 'kvm' | 'tcg' | null {
    return this.chosen;
  }

  /** Decided once per driver, with the first VM's image (a probe boot needs a kernel). */
  private resolveAccel(spec: VmSpec): Promise<'kvm' | 'tcg'> {
    this.accel ??= (async () => {
      const image = { kernel: spec.kernel, initrd: spec.initrd, rootDisk: spec.rootDisk, qemuBinary: this.qemu,
        hostTscKhz: this.opts.hostTscKhz, timeoutMs: this.opts.probeTimeoutMs };
      const { accel, probes } = await chooseAccelerator(this.opts.accel, image);
      this.log?.info({ want: this.opts.accel, accel, probes }, 'accelerator chosen');
      if (!accel) {
        throw new DriverError('accel-unusable', 'accel', `KVM does not boot a guest here: ${(probes[0]?.reason ?? 'unknown').replace(/\s*\n\s*/g, '; ')}` +
          ' (use accel: tcg, or auto)');
      }
      this.chosen = accel;
      return accel;
    })();
    return this.accel.catch((err) => { this.accel = null; throw err; });
  }

  /** One operation per VM id at a time, so create/destroy races cannot make two VMs. */
  private serialize<T>(id: VmId, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const settled = next.catch(() => {});
    this.locks.set(id, settled);
    void settled.then(() => { if (this.locks.get(id) === settled) this.locks.delete(id); });
    return next;
  }
}

function handleOf(id: VmId, t: Tracked): VmHandle {
  return { id, pid: t.pid, consoleLog: t.paths.consoleLog, startedAt: t.record.startedAt };
}

async function terminate(paths: VmPaths, pid: number): Promise<void> {
  const signal = (sig: NodeJS.Signals) => { try { process.kill(pid, sig); } catch { /* already gone */ } };
  signal('SIGTERM');
  if (await waitGone(paths, pid, 3000)) return;
  signal('SIGKILL');
  if (!(await waitGone(paths, pid, 10_000))) {
    throw new DriverError('spawn-failed', 'destroy', `QEMU pid ${pid} survived SIGKILL`);
  }
}

function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(new DriverError('aborted', 'wait', 'aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new DriverError('aborted', 'wait', 'aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

async function mtime(path: string): Promise<number> {
  return (await stat(path).catch(() => null))?.mtimeMs ?? 0;
}
