import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, expect, test } from 'vitest';
import { judgeQemuUser } from '../../src/domain/doctor.js';
import { startupWarnings, warnAtStart } from '../../src/main/startup-warnings.js';

const dir = mkdtempSync(join(tmpdir(), 'hangar-startup-warnings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, mode: number) => {
  const p = join(dir, name);
  writeFileSync(p, 'secret\n');
  chmodSync(p, mode);
  return p;
};

test.each<[string, number, string | undefined, 'ok' | 'warn']>([
  ['root, runAs unset', 0, undefined, 'warn'],
  ['root, runAs root', 0, 'root', 'warn'],
  ['root, runAs 0', 0, '0', 'warn'],
  ['root, runAs an unprivileged user', 0, 'hangar-qemu', 'ok'],
  ['not root', 1000, undefined, 'ok'],
])('judgeQemuUser: %s → %s', (_n, euid, runAs, want) => {
  const f = judgeQemuUser(euid, runAs);
  expect(f.status).toBe(want);
  if (want === 'warn') expect(f.fix).toMatch(/agent\.vm\.runAs: hangar-qemu/);
});

test('secret files open to group or others are named with chmod 600; 0600 files, certificates and missing files are not', async () => {
  const key = file('app.pem', 0o644);
  const secret = file('webhook-secret', 0o640);
  const token = file('token', 0o600);
  const cert = file('cert.pem', 0o644);
  const input = {
    github: { privateKeyFile: key, webhookSecretFile: secret },
    agent: { tokenFile: token, vm: { image: dir } },
    redis: { passwordFile: join(dir, 'absent') },
    control: { private: { tls: { certFile: cert } } },
  };
  const ws = await startupWarnings({ input });
  expect(ws.map((w) => [w.msg, w.fields.key, w.fields.mode])).toEqual([
    ['secret file readable by group or others', 'github.privateKeyFile', '0644'],
    ['secret file readable by group or others', 'github.webhookSecretFile', '0640'],
  ]);
  expect(ws[0]!.fields).toMatchObject({ file: key, fix: `chmod 600 ${key}` });
  expect(String(ws[1]!.fields.fix)).toContain(`chmod 600 ${secret}`);
});

test('QEMU as root only for a process that starts QEMU; logged once each, at warn, never the secret', async () => {
  const key = file('k2.pem', 0o604);
  expect(await startupWarnings({ input: {}, euid: 0 })).toEqual([]);
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  await warnAtStart(logger, { input: { github: { privateKeyFile: key } }, qemu: { runAs: undefined }, euid: 0 });
  expect(lines.map((l) => [l.level, l.msg])).toEqual([[40, 'secret file readable by group or others'], [40, 'qemu runs as root']]);
  expect(lines[0]).toMatchObject({ file: key, mode: '0604' });
  expect(JSON.stringify(lines)).not.toContain('secret\\n');
});
