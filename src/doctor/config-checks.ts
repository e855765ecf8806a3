import { stat } from 'node:fs/promises';
import { fail, ok, skip, warn, judgeSecretMode, type Finding } from '../domain/doctor.js';
import { isRecord } from '../config/schema.js';
import type { Check } from './check.js';

/** The file against its schemas and the files it names: `hangar config check`'s own pass (main/config-check.ts). */
export const configValid: Check = {
  id: 'config',
  title: 'config valid',
  async run(ctx) {
    const problems = ctx.configProblems;
    if (problems.length === 0) return ok(`${ctx.file}: every section valid`);
    const listed = problems.map((p) => `${p.path || '(file)'}${p.line === undefined ? '' : ` (line ${p.line})`}: ${p.message}`);
    const keys = [...new Set(problems.map((p) => p.path || '(file)'))].join(', ');
    return fail(`${problems.length} problem(s): ${listed.join('; ')}`, `correct ${keys} in ${ctx.file} (\`hangar config check ${ctx.file}\` lists each with its line); the other checks run once it is valid`);
  },
};

/** Keys ending in File that name a public file (a certificate), not a secret. */
const PUBLIC_FILE_KEYS = new Set(['certFile', 'caFile', 'controlCaFile']);

/** Every `*File` key of the file as written, with its dotted path: new secret keys are covered without a list to keep. */
export function secretFileKeys(input: unknown, at = ''): Array<{ key: string; file: string }> {
  if (!isRecord(input)) return [];
  return Object.entries(input).flatMap(([k, v]) => {
    const path = at === '' ? k : `${at}.${k}`;
    if (typeof v === 'string' && k.endsWith('File') && !PUBLIC_FILE_KEYS.has(k)) return [{ key: path, file: v }];
    return isRecord(v) ? secretFileKeys(v, path) : [];
  });
}

const RANK = { ok: 0, skip: 0, warn: 1, fail: 2 } as const;

export const secretFiles: Check = {
  id: 'secret-files',
  title: "secret files' owners and modes",
  async run(ctx) {
    const keys = secretFileKeys(ctx.input);
    if (keys.length === 0) return skip('the config names no secret files');
    const seen: Array<{ file: string; f: Finding }> = [];
    for (const { key, file } of keys) {
      const s = await stat(file).catch(() => null);
      // A file that is not there is the config check's finding (it names the key).
      if (s) seen.push({ file, f: judgeSecretMode(key, file, s.mode, s.uid) });
    }
    const bad = seen.filter(({ f }) => f.status !== 'ok');
    if (bad.length === 0) return ok(`${seen.length} secret file(s), none open to group or others`);
    const worst = Math.max(...bad.map(({ f }) => RANK[f.status]));
    const detail = bad.map(({ f }) => f.detail).join('; ');
    const fix = `chmod 600 ${[...new Set(bad.map(({ file }) => file))].join(' ')}`;
    return worst === RANK.fail ? fail(detail, fix) : warn(detail, `${fix} (unless the group is only the service's user)`);
  },
};
