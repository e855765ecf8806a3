/**
 * `hangar units render`: the units a config calls for, their caps, drain bound, config path and
 * credentials taken from it, written (or refused) as the CLI says; `credential:NAME` paths
 * resolved by the loader. Files in a temp dir and `systemd-analyze verify` (no running systemd).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseUnit, unitValues } from '../../src/caps/systemd-unit.js';
import { checkSections, parseConfig, requireAgent } from '../../src/config/load.js';
import { ConfigError } from '../../src/domain/errors.js';
import { renderUnitsTo } from '../../src/main/units-render.js';

const SHA = 'a'.repeat(64);
const AGENT = (extra = '') => `
pools: [{name: build, labels: [self-hosted, build]}]
hosts: [{name: sidekick, role: build, pools: [build], tokenSha256: ${SHA}}]
agent:
  host: sidekick
  slots: 4
  controlUrl: https://cloudbox.example:8443
  tokenFile: credential:host-token
  ${extra}
  vm: {image: /var/lib/hangar/image}
  caps: {cpuQuotaPercent: 300, memoryMaxMiB: 12288}
`;
const CONTROL = `
github: {appId: 1, privateKeyFile: "credential:github-app-key", webhookSecretFile: "credential:webhook-secret"}
policy: {repositories: [acme/*]}
dashboard: {tokenFile: /run/credentials/hangar-control.service/operator-token}
`;

let dir: string;
beforeAll(() => void (dir = mkdtempSync(join(tmpdir(), 'hangar-render-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}
const unit = (path: string) => parseUnit(readFileSync(path, 'utf8'));

describe('hangar units render', () => {
  test('an agent-only file: the agent unit and the slice, with the caps, drain bound, config path and credentials of the file', () => {
    const file = config('agent.yaml', AGENT('drainTimeoutSeconds: 120'));
    const out = join(dir, 'agent-out');
    const r = renderUnitsTo(file, { out });
    expect(r.files.map((f) => [f.name, f.action])).toEqual([['hangar-agent.service', 'wrote'], ['hangar-runners.slice', 'wrote']]);
    expect(existsSync(join(out, 'hangar-control.service'))).toBe(false);
    const slice = unit(join(out, 'hangar-runners.slice'));
    expect(unitValues(slice, 'Slice', 'CPUQuota')).toEqual(['300%']);
    expect(unitValues(slice, 'Slice', 'MemoryMax')).toEqual(['12G']);
    const agent = unit(join(out, 'hangar-agent.service'));
    expect(unitValues(agent, 'Service', 'ExecStart')).toEqual([`/usr/bin/hangar agent --config ${file}`]);
    expect(unitValues(agent, 'Service', 'KillMode')).toEqual(['mixed']);
    expect(unitValues(agent, 'Service', 'TimeoutStopSec')).toEqual(['180s']);
    expect(unitValues(agent, 'Service', 'LoadCredential')).toEqual(['host-token:/etc/hangar/credentials/host-token']);
  });

  test('TimeoutStopSec follows agent.drainTimeoutSeconds (600 by default)', () => {
    const out = join(dir, 'default-out');
    renderUnitsTo(config('default.yaml', AGENT()), { out });
    expect(unitValues(unit(join(out, 'hangar-agent.service')), 'Service', 'TimeoutStopSec')).toEqual(['660s']);
    const out0 = join(dir, 'zero-out');
    renderUnitsTo(config('zero.yaml', AGENT('drainTimeoutSeconds: 0')), { out: out0 });
    expect(unitValues(unit(join(out0, 'hangar-agent.service')), 'Service', 'TimeoutStopSec')).toEqual(['60s']);
  });

  test('a file with both: three units; each service gets the credentials its sections name', () => {
    const out = join(dir, 'both-out');
    const r = renderUnitsTo(config('both.yaml', CONTROL + AGENT()), { out, hangarBin: '/opt/hangar/bin/hangar' });
    expect(r.files.map((f) => f.name)).toEqual(['hangar-control.service', 'hangar-agent.service', 'hangar-runners.slice']);
    const control = unit(join(out, 'hangar-control.service'));
    expect(unitValues(control, 'Service', 'ExecStart')).toEqual([`/opt/hangar/bin/hangar control --config ${join(dir, 'both.yaml')}`]);
    expect(unitValues(control, 'Service', 'LoadCredential')).toEqual([
      'github-app-key:/etc/hangar/credentials/github-app-key',
      'webhook-secret:/etc/hangar/credentials/webhook-secret',
      'operator-token:/etc/hangar/credentials/operator-token',
    ]);
    expect(unitValues(unit(join(out, 'hangar-agent.service')), 'Service', 'LoadCredential')).toEqual(['host-token:/etc/hangar/credentials/host-token']);
  });

  test('a second run changes nothing; a unit with other text is kept (and none written) unless --force', () => {
    const file = config('again.yaml', AGENT());
    const out = join(dir, 'again-out');
    renderUnitsTo(file, { out });
    expect(renderUnitsTo(file, { out }).files.map((f) => f.action)).toEqual(['unchanged', 'unchanged']);
    writeFileSync(join(out, 'hangar-runners.slice'), '[Slice]\nCPUQuota=10%\n');
    rmSync(join(out, 'hangar-agent.service'));
    expect(renderUnitsTo(file, { out }).files.map((f) => f.action)).toEqual(['skipped', 'differs']);
    expect(existsSync(join(out, 'hangar-agent.service'))).toBe(false);
    expect(readFileSync(join(out, 'hangar-runners.slice'), 'utf8')).toBe('[Slice]\nCPUQuota=10%\n');
    expect(renderUnitsTo(file, { out, force: true }).files.map((f) => f.action)).toEqual(['wrote', 'wrote']);
    expect(unitValues(unit(join(out, 'hangar-runners.slice')), 'Slice', 'CPUQuota')).toEqual(['300%']);
  });

  test('refused: a file with neither section, an invalid agent section, a slice of its own', () => {
    const codes = (text: string, name: string) => {
      try {
        renderUnitsTo(config(name, text), { out: join(dir, 'never') });
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as ConfigError).problems.map((p) => p.path);
      }
      return [];
    };
    expect(codes('pools: [{name: b, labels: [self-hosted]}]\n', 'none.yaml')).toEqual(['']);
    expect(codes(AGENT('drainTimeoutSeconds: -5'), 'neg.yaml')).toEqual(['agent.drainTimeoutSeconds']);
    expect(codes(AGENT().replace('caps: {', 'caps: {slice: other.slice, '), 'slice.yaml')).toEqual(['agent.caps.slice']);
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  test('what it rendered passes systemd-analyze verify', () => {
    const out = join(dir, 'verify-out');
    const bin = join(dir, 'hangar');
    writeFileSync(bin, '#!/bin/sh\nexit 0\n');
    chmodSync(bin, 0o755);
    renderUnitsTo(config('verify.yaml', CONTROL + AGENT('drainTimeoutSeconds: 900')), { out, hangarBin: bin });
    for (const name of ['hangar-control.service', 'hangar-agent.service', 'hangar-runners.slice']) {
      const r = spawnSync('/usr/bin/systemd-analyze', ['verify', '--man=no', `./${name}`], { cwd: out, encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0' } });
      expect(`${r.stdout}${r.stderr}`.trim(), name).toBe('');
      expect(r.status).toBe(0);
    }
  });
});

describe('credential:NAME paths', () => {
  test('read from $CREDENTIALS_DIRECTORY under systemd, from /etc/hangar/credentials without it', () => {
    const text = AGENT();
    expect(requireAgent(parseConfig(text, 't', { CREDENTIALS_DIRECTORY: '/run/credentials/hangar-agent.service' })).agent.tokenFile).toBe(
      '/run/credentials/hangar-agent.service/host-token',
    );
    const doc = parseConfig(text, 't');
    expect(requireAgent(doc).agent.tokenFile).toBe('/etc/hangar/credentials/host-token');
    expect(doc.credentials).toEqual([{ path: 'agent.tokenFile', name: 'host-token' }]);
  });

  test('a name that is not one is a problem of its key', () => {
    const problems = checkSections(parseConfig(AGENT().replace('credential:host-token', 'credential:../etc/shadow'), 't')).problems;
    expect(problems.map((p) => p.path)).toEqual(['agent.tokenFile']);
    expect(problems[0]!.message).toMatch(/a credential's name is/);
  });

  test('drainTimeoutSeconds: 600 by default, whole seconds from 0 to a day', () => {
    expect(requireAgent(parseConfig(AGENT(), 't')).agent.drainTimeoutSeconds).toBe(600);
    for (const bad of ['-1', '1.5', '86401', 'soon']) {
      expect(checkSections(parseConfig(AGENT(`drainTimeoutSeconds: ${bad}`), 't')).problems.map((p) => p.path), bad).toEqual(['agent.drainTimeoutSeconds']);
    }
  });
});
