import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { checkSections, parseConfig, requireControl } from '../../src/config/load.js';
import { isLoopbackHost } from '../../src/config/control-schema.js';
import { checkAgentTlsFiles, checkControlTlsFiles } from '../../src/config/tls-files.js';

/** The control's listeners and the agent's trust in the private one, as `hangar config check` reports them. */
const base = 'github: {appId: 1, privateKeyFile: k, webhookSecretFile: s}\npolicy: {repositories: [a/*]}\npools: [{name: b, labels: [self-hosted]}]\ndashboard: {tokenFile: t}\n';
const problemsOf = (extra: string) => checkSections(parseConfig(`${base}${extra}`, 't.yaml')).problems.map(({ path, message }) => ({ path, message }));

describe('control.private', () => {
  test('defaults: 127.0.0.1:8443, plain (loopback)', () => {
    expect(requireControl(parseConfig(base, 't')).control.private).toEqual({ listen: '127.0.0.1:8443' });
  });

  test.each([
    ['a non-loopback listen without TLS', 'control: {private: {listen: "0.0.0.0:8443"}}', [['control.private.tls', /required: control\.private\.listen 0\.0\.0\.0:8443 is not a loopback address.*control\.private\.tls \{certFile, keyFile\}/]]],
    ['a LAN address without TLS', 'control: {private: {listen: "10.0.0.2:8443"}}', [['control.private.tls', /not a loopback address/]]],
    ['the webhook port', 'control: {port: 9000, private: {listen: "127.0.0.1:9000"}}', [['control.private.listen', /port 9000 is the public webhook listener's \(control\.port\)/]]],
    ['the default webhook port', 'control: {private: {listen: "127.0.0.1:8080"}}', [['control.private.listen', /port 8080/]]],
    ['the dashboard\'s port', 'control: {private: {listen: "127.0.0.1:8081"}}', [['control.private.listen', /dashboard\.listen/]]],
    ['TLS without a key', 'control: {private: {listen: "0.0.0.0:8443", tls: {certFile: c}}}', [['control.private.tls.keyFile', /./]]],
    ['not host:port', 'control: {private: {listen: "8443"}}', [['control.private.listen', /expected "host:port"/]]],
  ])('%s', (_n, extra, want) => {
    const problems = problemsOf(extra);
    expect(problems.map((p) => p.path).sort()).toEqual(want.map(([p]) => p).sort());
    for (const [path, re] of want) expect(problems.find((p) => p.path === path)!.message).toMatch(re as RegExp);
  });

  test('allowed: TLS anywhere, plain on loopback, the webhook port again in pull mode', () => {
    expect(problemsOf('control: {private: {listen: "0.0.0.0:8443", tls: {certFile: c, keyFile: k}}}')).toEqual([]);
    expect(problemsOf('control: {private: {listen: "[::1]:8443"}}')).toEqual([]);
    expect(problemsOf('control: {private: {listen: "localhost:8443"}}')).toEqual([]);
    expect(problemsOf('intake: {mode: pull}\ncontrol: {private: {listen: "127.0.0.1:8080"}}')).toEqual([]);
  });

  test.each([
    ['127.0.0.1', true], ['127.3.4.5', true], ['::1', true], ['[::1]', true], ['localhost', true],
    ['0.0.0.0', false], ['::', false], ['10.0.0.2', false], ['127.example.com', false], ['hangar.lan', false],
  ])('loopback %s: %s', (host, want) => expect(isLoopbackHost(host)).toBe(want));

  test('the cert and key files: missing, not PEM, or not a pair are named by key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-tls-check-'));
    writeFileSync(join(dir, 'junk'), 'not a certificate');
    const of = (certFile: string, keyFile: string) => checkControlTlsFiles({ control: { private: { listen: '0.0.0.0:8443', tls: { certFile, keyFile } } } });
    expect(of(join(dir, 'missing.pem'), join(dir, 'missing.key'))).toEqual([
      { path: 'control.private.tls.certFile', message: expect.stringMatching(/cannot read .*missing\.pem: ENOENT/) },
      { path: 'control.private.tls.keyFile', message: expect.stringMatching(/cannot read .*missing\.key: ENOENT/) },
    ]);
    expect(of(join(dir, 'junk'), join(dir, 'junk')).map((p) => p.path)).toEqual(['control.private.tls.certFile', 'control.private.tls.keyFile']);
  });
});

describe('agent: trust in the control', () => {
  const agentFile = (agent: string) => `${base}hosts: [{name: box, role: build, pools: [b], tokenSha256: ${'a'.repeat(64)}}]
agent: {host: box, slots: 1, tokenFile: t, vm: {image: i}, caps: {cpuQuotaPercent: 100, memoryMaxMiB: 4096}, ${agent}}`;
  const agentProblems = (agent: string) => checkSections(parseConfig(agentFile(agent), 't.yaml')).problems;

  test('a CA file and a pin (colons and capitals allowed) with https://', () => {
    const pin = 'AB:'.repeat(31) + 'AB';
    const { agent } = checkSections(parseConfig(agentFile(`controlUrl: "https://10.0.0.2:8443", controlCaFile: /etc/hangar/control-ca.pem, controlCertSha256: "${pin}"`), 't'));
    expect(agent?.agent).toMatchObject({ controlCaFile: '/etc/hangar/control-ca.pem', controlCertSha256: 'ab'.repeat(32) });
  });

  test('with http://, a CA file or a pin is refused by name', () => {
    const problems = agentProblems(`controlUrl: "http://127.0.0.1:8443", controlCaFile: ca.pem, controlCertSha256: "${'a'.repeat(64)}"`);
    expect(problems.map((p) => p.path).sort()).toEqual(['agent.controlCaFile', 'agent.controlCertSha256']);
    expect(problems[0]!.message).toMatch(/plain http:\/\/.*use https:\/\//);
  });

  test('a pin that is not a sha256', () => {
    expect(agentProblems('controlUrl: "https://c:8443", controlCertSha256: "abc"').map((p) => p.path)).toEqual(['agent.controlCertSha256']);
  });

  test('the CA file: unreadable or not a certificate', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-tls-check-'));
    writeFileSync(join(dir, 'junk'), 'nope');
    expect(checkAgentTlsFiles({ agent: { controlCaFile: join(dir, 'missing') } })).toEqual([{ path: 'agent.controlCaFile', message: expect.stringMatching(/ENOENT/) }]);
    expect(checkAgentTlsFiles({ agent: { controlCaFile: join(dir, 'junk') } })).toEqual([{ path: 'agent.controlCaFile', message: expect.stringMatching(/holds no PEM certificate/) }]);
  });
});
