import { describe, expect, test } from 'vitest';
import { doctorExitCode, judgeClockSkew, judgeDisk, judgeHostView, judgePersistence, judgeSecretMode } from '../../src/domain/doctor.js';

const MiB = 1024 * 1024;
const AT = Date.parse('2026-12-03T12:00:00Z');

describe('judgeClockSkew', () => {
  test.each([
    ['in step', AT, 'ok', /0 s ahead/],
    ['15 s ahead', AT + 15_000, 'warn', /15 s ahead/],
    ['61 s ahead', AT + 61_000, 'fail', /61 s ahead .*over 60 s/],
    ['90 s behind', AT - 90_000, 'fail', /90 s behind/],
  ])('%s', (_n, local, status, detail) => {
    const f = judgeClockSkew(local, new Date(AT).toUTCString(), 'GitHub');
    expect(f.status).toBe(status);
    expect(f.detail).toMatch(detail);
  });
  test('no Date header: warn, cannot compare', () => expect(judgeClockSkew(AT, undefined, 'GitHub').status).toBe('warn'));
});

test.each([
  ['enough', 1024 * MiB, 'ok'],
  ['exactly enough', 2 * (100 + 256) * MiB, 'ok'],
  ['one byte short', 2 * (100 + 256) * MiB - 1, 'fail'],
])('judgeDisk: %s', (_n, free, status) => {
  const f = judgeDisk({ dir: '/var/lib/hangar', freeBytes: free, slots: 2, imageBytes: 100 * MiB, marginBytes: 256 * MiB });
  expect(f.status).toBe(status);
  expect(f.detail).toMatch(/2 slot\(s\) × \(image 100 MiB \+ margin 256 MiB\) = 712 MiB needed/);
});

test.each([
  [0o100600, 'ok', undefined],
  [0o100400, 'ok', undefined],
  [0o100640, 'warn', /^chmod 600 \/etc\/hangar\/app\.pem/],
  [0o100644, 'fail', /^chmod 600 \/etc\/hangar\/app\.pem$/],
  [0o100602, 'fail', /^chmod 600/],
])('judgeSecretMode %o', (mode, status, fix) => {
  const f = judgeSecretMode('github.privateKeyFile', '/etc/hangar/app.pem', mode, 0);
  expect(f.status).toBe(status);
  if (fix) expect(f.fix).toMatch(fix);
});

test.each([
  [true, '', 'ok'],
  [true, null, 'ok'],
  [false, '3600 1', 'warn'],
  [false, '', 'fail'],
  [false, null, 'warn'],
  [undefined, null, 'warn'],
])('judgePersistence aof=%s save=%j → %s', (aof, save, status) => expect(judgePersistence(aof, save).status).toBe(status));

test('judgeHostView: pools compared as sets; role and name must agree', () => {
  const mine = { name: 'box1', role: 'build', pools: ['a', 'b'] };
  expect(judgeHostView(mine, { name: 'box1', role: 'build', pools: ['b', 'a'] }).status).toBe('ok');
  expect(judgeHostView(mine, { name: 'box1', role: 'deploy', pools: ['a', 'b'] }).status).toBe('fail');
  expect(judgeHostView(mine, { name: 'box1', role: 'build', pools: ['a'] }).status).toBe('fail');
});

test('doctorExitCode: warnings pass, a failure fails', () => {
  expect(doctorExitCode([{ id: 'a', title: '', status: 'warn', detail: '' }])).toBe(0);
  expect(doctorExitCode([{ id: 'a', title: '', status: 'ok', detail: '' }, { id: 'b', title: '', status: 'fail', detail: '' }])).toBe(1);
});
