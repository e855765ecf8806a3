import type { Redis } from 'ioredis';
import type { ControlConfig } from '../config/control-schema.js';
import type { AgentSideConfig } from '../config/agent-schema.js';
import type { ConfigProblem } from '../domain/errors.js';
import { fail, type CheckResult, type Finding } from '../domain/doctor.js';

/**
 * One doctor check: small, named by a stable id (docs/troubleshooting.md has an entry per id),
 * reading the machine through the context so a test can point it at paths it made rather than
 * fake its result.
 */
export interface Check {
  id: string;
  title: string;
  run(ctx: DoctorContext): Promise<Finding>;
}

/** Where the host's facts are read: the real paths by default, a test's own files otherwise. */
export interface HostPaths {
  devKvm: string;
  cgroupRoot: string;
  procSelfCgroup: string;
  /** systemd's own sign that it is PID 1 (sd_booted). */
  systemdRun: string;
  ipForward: string;
}

export interface DoctorContext {
  file: string;
  /** The file as written (every section, before any schema). */
  input: Record<string, unknown>;
  /** Every problem the schemas and the files' checks found; the other checks run only without them. */
  configProblems: ConfigProblem[];
  control?: ControlConfig;
  agent?: AgentSideConfig;
  /** The local clock in ms (a test moves it to prove the skew check). */
  now(): number;
  paths: HostPaths;
  qemuBinary: string;
  nftBinary: string;
  /** Disk per slot beyond the image (guest files, console log, sockets). */
  diskMarginBytes: number;
  /** Each network probe's bound. */
  timeoutMs: number;
  /** A `hangar up` file's (no redis.url): the folder of the Redis up embeds, which the Redis checks ask. */
  embeddedRedisDir?: string;
  /** One Redis connection for the Redis checks (connected on first use; its error is the reason). */
  redis(): Promise<Redis>;
}

export const DEFAULT_PATHS: HostPaths = {
  devKvm: '/dev/kvm',
  cgroupRoot: '/sys/fs/cgroup',
  procSelfCgroup: '/proc/self/cgroup',
  systemdRun: '/run/systemd/system',
  ipForward: '/proc/sys/net/ipv4/ip_forward',
};

/** Runs the checks one after another (their order is the report's); a check that throws fails with its message. */
export async function runChecks(checks: readonly Check[], ctx: DoctorContext): Promise<CheckResult[]> {
  const out: CheckResult[] = [];
  for (const c of checks) {
    let f: Finding;
    try {
      f = await c.run(ctx);
    } catch (err) {
      f = fail(`the check itself failed: ${(err as Error).message}`, 'report this: a check should say what is wrong, not throw');
    }
    out.push({ id: c.id, title: c.title, ...f });
  }
  return out;
}
