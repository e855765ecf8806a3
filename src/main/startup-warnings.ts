import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { judgeQemuUser, judgeSecretMode } from '../domain/doctor.js';
import { secretFileKeys } from '../doctor/config-checks.js';

/**
 * What `hangar doctor` would warn about and a process can see for itself as it starts: secret
 * files open to group or others, QEMU left as root. Logged once, at warn, never fatal: the
 * judgments are doctor's own (domain/doctor.ts), so the two never disagree.
 */
export interface StartupWarningInput {
  /** The config as written (ConfigDocument.input): every `*File` key but certificates is a secret. */
  input: unknown;
  /** For the agent (and `hangar up`): its VM user. Absent: a process that starts no QEMU. */
  qemu?: { runAs: string | undefined };
  euid?: number;
}

export interface StartupWarning {
  msg: 'secret file readable by group or others' | 'qemu runs as root';
  fields: Record<string, unknown>;
}

export async function startupWarnings(i: StartupWarningInput): Promise<StartupWarning[]> {
  const out: StartupWarning[] = [];
  for (const { key, file } of secretFileKeys(i.input)) {
    const s = await stat(file).catch(() => null);
    if (!s) continue; // a missing file is the config's error, reported by its loader
    const f = judgeSecretMode(key, file, s.mode, s.uid);
    if (f.status !== 'ok') out.push({ msg: 'secret file readable by group or others', fields: { key, file, mode: (s.mode & 0o777).toString(8).padStart(4, '0'), detail: f.detail, fix: f.fix } });
  }
  if (i.qemu) {
    const f = judgeQemuUser(i.euid ?? process.geteuid?.() ?? -1, i.qemu.runAs);
    if (f.status !== 'ok') out.push({ msg: 'qemu runs as root', fields: { runAs: i.qemu.runAs ?? null, detail: f.detail, fix: f.fix } });
  }
  return out;
}

export async function warnAtStart(logger: Logger, i: StartupWarningInput): Promise<void> {
  for (const w of await startupWarnings(i)) logger.warn({ ...w.fields, warning: true }, w.msg);
}
