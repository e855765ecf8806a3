/**
 * The committed unit files equal what src/caps/units.ts renders, parse back to the same
 * data, and pass systemd's own offline checks. Needs `systemd-analyze` (Debian: systemd);
 * no running systemd. Regenerate units/ after a change with HANGAR_WRITE_UNITS=1.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseUnit, renderUnit, unitValues } from '../../src/caps/systemd-unit.js';
import { DEFAULT_UNIT_SETTINGS, UNIT_NAMES, hangarUnits, renderHangarUnits, type UnitName } from '../../src/caps/units.js';

const UNITS_DIR = new URL('../../units/', import.meta.url).pathname;
const ANALYZE = '/usr/bin/systemd-analyze';
/** Control's exposure must stay well inside systemd's "OK" band (< 4.0 would be "OK" too). */
const CONTROL_EXPOSURE_MAX = 2.0;
let tmp: string;

beforeAll(() => {
  if (process.env.HANGAR_WRITE_UNITS === '1') {
    for (const [name, text] of Object.entries(renderHangarUnits())) writeFileSync(join(UNITS_DIR, name), text);
  }
  expect(existsSync(ANALYZE), 'needs systemd-analyze: apt-get install -y systemd').toBe(true);
  // Copies whose ExecStart= names a binary that exists, as verify checks that.
  tmp = mkdtempSync(join(tmpdir(), 'hangar-units-'));
  writeFileSync(join(tmp, 'hangar'), '#!/bin/sh\nexit 0\n');
  chmodSync(join(tmp, 'hangar'), 0o755);
  const units = renderHangarUnits({ ...DEFAULT_UNIT_SETTINGS, hangarBin: join(tmp, 'hangar') });
  for (const [name, text] of Object.entries(units)) writeFileSync(join(tmp, name), text);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function analyze(args: string[]): { status: number | null; out: string } {
  const r = spawnSync(ANALYZE, args, { cwd: tmp, encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_PAGER: '' } });
  return { status: r.status, out: `${r.stdout}${r.stderr}`.trim() };
}

describe('committed units', () => {
  test.each(UNIT_NAMES)('%s equals the rendered default', (name) => {
    const committed = readFileSync(join(UNITS_DIR, name), 'utf8');
    expect(committed, `units/${name} drifted: HANGAR_WRITE_UNITS=1 npx vitest run --config test/vitest.config.ts test/units`).toBe(
      renderHangarUnits()[name],
    );
  });

  test.each(UNIT_NAMES)('%s round-trips through parseUnit', (name) => {
    const unit = hangarUnits()[name];
    expect(parseUnit(renderUnit(unit))).toEqual(unit);
  });

  // verify exits 0 on unknown keys and bad values (PLATFORM.md): the output is what counts.
  test.each(UNIT_NAMES)('systemd-analyze verify %s says nothing', (name) => {
    const { status, out } = analyze(['verify', '--man=no', `./${name}`]);
    expect(out).toBe('');
    expect(status).toBe(0);
  });

  test('verify would notice a mistake (the check above is not vacuous)', () => {
    writeFileSync(join(tmp, 'broken.service'), '[Service]\nExecStart=/bin/true\nMemoryMax=lots\nDelegat=yes\n');
    const { out } = analyze(['verify', '--man=no', './broken.service']);
    expect(out).toMatch(/Invalid memory limit 'lots'/);
    expect(out).toMatch(/Unknown key 'Delegat'/);
  });

  test('the control unit is hardened: exposure below the threshold', () => {
    const exposure = (name: string) => {
      const { out } = analyze(['security', '--offline=yes', `./${name}`]);
      return Number(new RegExp(`Overall exposure level for ${name.replace('.', '\\.')}: ([\\d.]+)`).exec(out)?.[1]);
    };
    const score = exposure('hangar-control.service');
    const agent = exposure('hangar-agent.service');
    console.log(`systemd-analyze security: hangar-control.service ${score}, hangar-agent.service ${agent}`);
    expect(score).toBeLessThan(CONTROL_EXPOSURE_MAX);
    // The agent is root with NET_ADMIN and devices by necessity; it must still be "OK" (< 4).
    expect(agent).toBeLessThan(4);
  });

  test('what each service needs is there', () => {
    const u = hangarUnits();
    const get = (name: UnitName, section: string, key: string) => unitValues(u[name], section, key);
    expect(get('hangar-agent.service', 'Service', 'Slice')).toEqual(['hangar-runners.slice']);
    expect(get('hangar-agent.service', 'Service', 'Delegate')).toEqual(['yes']);
    expect(get('hangar-agent.service', 'Service', 'DeviceAllow')).toEqual(['/dev/kvm rw', '/dev/net/tun rw']);
    expect(get('hangar-agent.service', 'Service', 'LoadCredential')).toEqual(['host-token:/etc/hangar/credentials/host-token']);
    expect(get('hangar-control.service', 'Service', 'LoadCredential').map((v) => v.split(':')[0])).toEqual(['github-app-key', 'webhook-secret']);
    expect(get('hangar-control.service', 'Service', 'ProtectSystem')).toEqual(['strict']);
    expect(get('hangar-runners.slice', 'Slice', 'MemoryMax')).toEqual(['4608M']);
  });

  test('slice quotas follow the settings', () => {
    const text = renderHangarUnits({ ...DEFAULT_UNIT_SETTINGS, slice: { cpuQuotaPercent: 75, memoryMaxBytes: 3 * 1024 ** 3, tasksMax: 512 } })[
      'hangar-runners.slice'
    ];
    const slice = parseUnit(text);
    expect(unitValues(slice, 'Slice', 'CPUQuota')).toEqual(['75%']);
    expect(unitValues(slice, 'Slice', 'MemoryMax')).toEqual(['3G']);
    expect(unitValues(slice, 'Slice', 'TasksMax')).toEqual(['512']);
  });
});

test('systemd-analyze is the one from the Debian package systemd', () => {
  expect(execFileSync('dpkg', ['-S', ANALYZE], { encoding: 'utf8' })).toMatch(/^systemd: /);
});
