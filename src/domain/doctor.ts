/**
 * `hangar doctor`'s judgments, pure: each takes what a probe read (a clock, a free-space
 * figure, a file's mode, Redis's INFO fields, the control's view of a host) and says ok, warn
 * or fail, what it saw, and the one-sentence fix naming the command or the config key. The
 * probes that read the machine live in src/doctor/; these are tested from tables.
 */

export type DoctorStatus = 'ok' | 'warn' | 'fail' | 'skip';

export interface Finding {
  status: DoctorStatus;
  /** What was seen, with its numbers: never a secret. */
  detail: string;
  /** For a non-ok finding: one sentence naming the command to run or the config key to change. */
  fix?: string;
}

export interface CheckResult extends Finding {
  id: string;
  title: string;
}

export const ok = (detail: string): Finding => ({ status: 'ok', detail });
export const skip = (detail: string): Finding => ({ status: 'skip', detail });
export const warn = (detail: string, fix: string): Finding => ({ status: 'warn', detail, fix });
export const fail = (detail: string, fix: string): Finding => ({ status: 'fail', detail, fix });

/** 0 when nothing failed (warnings allowed), 1 when something did. */
export function doctorExitCode(results: readonly CheckResult[]): 0 | 1 {
  return results.some((r) => r.status === 'fail') ? 1 : 0;
}

/** GitHub refuses an App JWT whose `iat` is ahead of its clock by more than this (and the sim does too). */
export const MAX_CLOCK_SKEW_S = 60;
/** Past this, the skew is worth fixing before it grows into a refusal. */
const WARN_CLOCK_SKEW_S = 10;

/** The local clock against a server's Date header (second resolution). */
export function judgeClockSkew(localMs: number, remoteDate: string | undefined, source: string): Finding {
  const remoteMs = remoteDate === undefined ? Number.NaN : Date.parse(remoteDate);
  if (!Number.isFinite(remoteMs)) return warn(`${source} sent no usable Date header: cannot compare clocks`, 'check the clock by hand: `timedatectl status` should say "System clock synchronized: yes"');
  const skewS = Math.round((localMs - remoteMs) / 1000);
  const ahead = skewS >= 0 ? `${skewS} s ahead of` : `${-skewS} s behind`;
  const detail = `this machine's clock is ${ahead} ${source}`;
  const fix = 'synchronise the clock: `timedatectl set-ntp true` (or run chronyd / systemd-timesyncd)';
  if (Math.abs(skewS) > MAX_CLOCK_SKEW_S) return fail(`${detail} (over ${MAX_CLOCK_SKEW_S} s: GitHub refuses the App's JWTs)`, fix);
  if (Math.abs(skewS) > WARN_CLOCK_SKEW_S) return warn(detail, fix);
  return ok(detail);
}

const MiB = 1024 * 1024;
const mib = (bytes: number) => `${Math.floor(bytes / MiB)} MiB`;

export interface DiskInput {
  dir: string;
  freeBytes: number;
  slots: number;
  /** The image's files (its root disk's overlay can grow to the disk's size). */
  imageBytes: number;
  /** Per slot beyond the image: guest files, console log, QEMU's sockets. */
  marginBytes: number;
}

/** Free space in agent.stateDir against slots × (image size + margin). */
export function judgeDisk(d: DiskInput): Finding {
  const perSlot = d.imageBytes + d.marginBytes;
  const need = d.slots * perSlot;
  const numbers = `${mib(d.freeBytes)} free in ${d.dir}; ${d.slots} slot(s) × (image ${mib(d.imageBytes)} + margin ${mib(d.marginBytes)}) = ${mib(need)} needed`;
  if (d.freeBytes < need) {
    return fail(numbers, `free space in ${d.dir}, point agent.stateDir at a larger file system, or lower agent.slots`);
  }
  return ok(numbers);
}

/** A secret file's mode: nothing for others, and nothing for the group unless meant. */
export function judgeSecretMode(key: string, file: string, mode: number, ownerUid: number): Finding {
  const octal = (mode & 0o777).toString(8).padStart(4, '0');
  const seen = `${key} ${file}: mode ${octal}, owner uid ${ownerUid}`;
  if ((mode & 0o007) !== 0) return fail(`${seen}: readable by others`, `chmod 600 ${file}`);
  if ((mode & 0o070) !== 0) return warn(`${seen}: open to its group`, `chmod 600 ${file} (unless its group is only the service's user)`);
  return ok(seen);
}

export function judgeEviction(policy: string | undefined): Finding {
  if (policy === undefined || policy === '') return warn('Redis did not say its maxmemory-policy (INFO refused?): cannot check', 'run `redis-cli CONFIG GET maxmemory-policy` as an admin: it must be noeviction');
  if (policy !== 'noeviction') {
    return fail(`maxmemory-policy is ${policy}: Redis may evict queued jobs`, 'run `redis-cli CONFIG SET maxmemory-policy noeviction` and `CONFIG REWRITE` (or set it in redis.conf)');
  }
  return ok('maxmemory-policy noeviction');
}

/** `save` null: this user may not CONFIG GET (a host's ACL user), so only AOF can be seen. */
export function judgePersistence(aof: boolean | undefined, save: string | null): Finding {
  const fix = 'set `appendonly yes` in redis.conf (or `redis-cli CONFIG SET appendonly yes` and `CONFIG REWRITE`)';
  if (aof === true) return ok(`appendonly yes${save ? `, save "${save}"` : ''}`);
  if (save === null) return warn('appendonly is off, and this Redis user may not CONFIG GET save: cannot check RDB snapshots', 'run `redis-cli CONFIG GET save` as an admin, or set `appendonly yes`');
  if (save === '') return fail('appendonly no and save "": a Redis restart loses every queued job', fix);
  return warn(`appendonly no, save "${save}": a crash loses jobs queued since the last snapshot`, fix);
}

export interface HostView {
  name: string;
  role: string;
  pools: readonly string[];
}

/** The agent's hosts[] entry against what the control answers for its token. */
export function judgeHostView(mine: HostView, control: HostView): Finding {
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && [...a].sort().every((p, i) => p === [...b].sort()[i]);
  const describe = (h: HostView) => `${h.name} (${h.role}; ${h.pools.join(', ')})`;
  if (mine.name !== control.name || mine.role !== control.role || !same(mine.pools, control.pools)) {
    return fail(`this file says ${describe(mine)}, the control says ${describe(control)}`, `make the hosts[] entry "${mine.name}" the same in the agent's and the control's config (role and pools), then restart the one you changed`);
  }
  return ok(`the control agrees: ${describe(mine)}`);
}

/**
 * Who QEMU runs as. The agent is root (taps, cgroups, nftables), and QEMU is started by it: without
 * `agent.vm.runAs` (or with root there) QEMU stays root, and a guest that breaks out of QEMU owns
 * the host. With a user, QEMU drops to it (`-runas`) once its files are open.
 */
export function judgeQemuUser(euid: number, runAs: string | undefined): Finding {
  if (euid !== 0) return ok(`not root (uid ${euid}): QEMU runs as this user`);
  if (runAs === undefined || runAs === 'root' || runAs === '0') {
    return warn(`QEMU runs as root (agent.vm.runAs ${runAs === undefined ? 'unset' : runAs}): a guest that escapes QEMU owns the host`,
      'create an unprivileged user (`useradd --system --no-create-home --shell /usr/sbin/nologin hangar-qemu`) and set agent.vm.runAs: hangar-qemu');
  }
  return ok(`QEMU drops to ${runAs} (-runas)`);
}
