import { describe, expect, test } from 'vitest';
import { closest, editDistance } from '../../src/config/did-you-mean.js';
import { checkSections, parseConfig, requireAgent, requireControl } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/domain/errors.js';
import { redactRedisUrl } from '../../src/queue/redis-readiness.js';

const SHA = 'a'.repeat(64);

/** One file for a control and the agent of host `box` (as the one-box homelab has). */
const both = (o: { github?: string; agent?: string; hosts?: string } = {}) => `
github: {${o.github ?? 'appId: 1, privateKeyFile: k, webhookSecretFile: s'}}
policy: {repositories: [acme/*]}
pools:
  - {name: build, labels: [self-hosted, build]}
  - {name: deploy, labels: [self-hosted, deploy], deploy: {repositories: [acme/site], branches: [main]}}
hosts:
${o.hosts ?? `  - {name: box, role: deploy, pools: [build, deploy], tokenSha256: ${SHA}}`}
agent:
  host: box
  ${o.agent ?? 'slots: 2'}
  controlUrl: http://127.0.0.1:8080
  tokenFile: /etc/hangar/host-token
  vm: {image: /var/lib/hangar/image}
  caps: {cpuQuotaPercent: 100, memoryMaxMiB: 8192}
dashboard: {enabled: false}
`;

const problems = (text: string): ConfigProblem[] => checkSections(parseConfig(text, 't.yaml')).problems;
const thrown = (f: () => unknown): ConfigProblem[] => {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
};

describe('each process validates its own sections', () => {
  test('the agent takes its role and pools from its hosts[] entry', () => {
    const { agent } = requireAgent(parseConfig(both(), 't.yaml'));
    expect(agent).toMatchObject({ host: 'box', role: 'deploy', pools: ['build', 'deploy'], slots: 2 });
  });

  test('the gate timeout: 15 s by default, up to 15 minutes (the guest hook is told it and waits longer)', () => {
    expect(requireAgent(parseConfig(both(), 't.yaml')).agent.gateTimeoutSeconds).toBe(15);
    expect(requireAgent(parseConfig(both({ agent: 'slots: 2\n  gateTimeoutSeconds: 4' }), 't.yaml')).agent.gateTimeoutSeconds).toBe(4);
    expect(requireAgent(parseConfig(both({ agent: 'slots: 2\n  gateTimeoutSeconds: 120' }), 't.yaml')).agent.gateTimeoutSeconds).toBe(120);
    expect(problems(both({ agent: 'slots: 2\n  gateTimeoutSeconds: 901' })).map((p) => p.path)).toEqual(['agent.gateTimeoutSeconds']);
  });

  test('the runner slice: hangar-runners.slice by default (the shipped units), a name of its own for a second agent', () => {
    expect(requireAgent(parseConfig(both(), 't.yaml')).agent.caps.slice).toBe('hangar-runners.slice');
    const own = both().replace('caps: {cpuQuotaPercent', 'caps: {slice: hangar-fleet-1.slice, cpuQuotaPercent');
    expect(requireAgent(parseConfig(own, 't.yaml')).agent.caps.slice).toBe('hangar-fleet-1.slice');
    for (const bad of ['../etc.slice', 'runners', '.slice', 'a/b.slice']) {
      const text = both().replace('caps: {cpuQuotaPercent', `caps: {slice: "${bad}", cpuQuotaPercent`);
      expect(problems(text).map((p) => p.path), bad).toEqual(['agent.caps.slice']);
    }
  });

  test('a broken agent section does not stop the control, nor a broken github section the agent', () => {
    expect(requireControl(parseConfig(both({ agent: 'slots: many' }), 't.yaml')).pools).toHaveLength(2);
    expect(requireAgent(parseConfig(both({ github: 'appId: -1, privateKeyFile: k, webhookSecretFile: s' }), 't.yaml')).agent.slots).toBe(2);
    // hangar config check hears of both.
    expect(problems(both({ agent: 'slots: many', github: 'appId: -1, privateKeyFile: k, webhookSecretFile: s' })).map((p) => p.path)).toEqual(['github.appId', 'agent.slots']);
  });

  test('an agent-only file needs no github; a control-only file no agent', () => {
    const agentOnly = `pools: [{name: b, labels: [self-hosted]}]\nhosts: [{name: box, role: build, pools: [b], tokenSha256: ${SHA}}]\nagent: {host: box, slots: 1, controlUrl: "http://c:1", tokenFile: t, vm: {image: i}, caps: {cpuQuotaPercent: 100, memoryMaxMiB: 4096}}`;
    expect(problems(agentOnly)).toEqual([]);
    // An environment override for the control does not make the agent's file a control's.
    expect(checkSections(parseConfig(agentOnly, 't', { HANGAR_CONTROL_PORT: '9000' })).problems).toEqual([]);
    expect(thrown(() => requireAgent(parseConfig('pools: [{name: b, labels: [self-hosted]}]', 't')))).toEqual([{ path: 'agent', message: 'required for hangar agent' }]);
    expect(thrown(() => requireControl(parseConfig('pools: [{name: b, labels: [self-hosted]}]', 't'))).map((p) => `${p.path}: ${p.message}`)).toEqual([
      'github: required for hangar control',
      'policy: required for hangar control',
      // The dashboard is on unless turned off, and never without the operator token.
      'dashboard.tokenFile: required while the dashboard is enabled (a file with the operator token; `hangar host token FILE` makes one), or set dashboard.enabled: false',
    ]);
  });

  test('agent.host without its hosts[] entry', () => {
    expect(problems(both({ hosts: `  - {name: other, role: build, pools: [build], tokenSha256: ${SHA}}` }))).toEqual([
      { path: 'agent.host', message: 'no hosts[] entry named "box"; add {name: box, role, pools, tokenSha256} to hosts' },
    ]);
  });

  test('the old agent.role and agent.pools say where they moved', () => {
    expect(problems(both({ agent: 'role: deploy\n  pools: [build]\n  slots: 2' }))).toEqual([
      { path: 'agent.role', message: 'moved to hosts[] entry "box" (hosts.0): a host is described once' },
      { path: 'agent.pools', message: 'moved to hosts[] entry "box" (hosts.0): a host is described once' },
    ]);
    const old = both({ agent: 'role: deploy\n  slots: 2', hosts: '  []' });
    expect(problems(old)).toContainEqual({ path: 'agent.role', message: 'moved to hosts[] entry "box": add {name, role, pools, tokenSha256} to hosts' });
  });

  test('duplicate host names, and a deploy pool on a build host', () => {
    const hosts = `  - {name: box, role: deploy, pools: [build], tokenSha256: ${SHA}}\n  - {name: box, role: build, pools: [deploy], tokenSha256: ${SHA}}`;
    expect(problems(both({ hosts }))).toEqual([
      { path: 'hosts.1.name', message: 'duplicate host name "box" (also hosts.0)' },
      { path: 'hosts.1.pools.0', message: '"deploy" is a deploy pool: only a host with role deploy may serve it' },
    ]);
  });
});

describe('every problem in one pass, with its line', () => {
  test('YAML errors with line and column, and the schema still checks what parsed', () => {
    const p = thrown(() => requireControl(parseConfig('github: {appId: 1, privateKeyFile: k, webhookSecretFile: s}\npolicy: {repositories: [a/*]}\npools:\n  - {name: B, labels: [self-hosted]}\npolicy: {repositories: [b/*]}\ndashboard: {enabled: false}\n', 't')));
    expect(p).toEqual([
      { path: '', message: 'YAML DUPLICATE_KEY at line 5, column 1: Map keys must be unique' },
      { path: 'pools.0.name', message: 'lowercase letters, digits and dashes, at most 32, not starting with a dash', line: 4 },
    ]);
  });

  test('a missing key is placed on its section\'s line; a key on its own', () => {
    const p = thrown(() => requireAgent(parseConfig(both({ agent: 'slots: 0' }).replace('  tokenFile: /etc/hangar/host-token\n', ''), 't')));
    // In the file's order: agent.tokenFile is missing, so it is placed on `agent:` (line 9).
    expect(p).toEqual([
      { path: 'agent.tokenFile', message: 'required (string)', line: 9 },
      { path: 'agent.slots', message: 'Too small: expected number to be >=1', line: 11 },
    ]);
  });

  test.each<[string, string, string, string]>([
    ['top level', 'pool: []\n', 'pool', 'unknown key "pool" (did you mean "pools"?)'],
    ['a pool', '', 'pools.0.lables', 'unknown key "lables" (did you mean "labels"?)'],
    ['the agent, case only', '', 'agent.TokenFile', 'unknown key "TokenFile" (did you mean "tokenFile"?)'],
    ['nothing near', 'colour: red\n', 'colour', 'unknown key "colour"'],
  ])('unknown key in %s', (_name, extra, path, message) => {
    const text = both().replace('{name: build, labels', '{name: build, lables: [x], labels').replace('  tokenFile:', '  TokenFile: x\n  tokenFile:') + extra;
    expect(problems(text)).toContainEqual({ path, message });
  });

  test('an unknown key inside a union (egress) is matched against its options', () => {
    const text = both().replace('labels: [self-hosted, build]}', 'labels: [self-hosted, build], egress: {mode: allowlist, allow: [github], alow: [x]}}');
    expect(problems(text)).toEqual([{ path: 'pools.0.egress.alow', message: 'unknown key "alow" (did you mean "allow"?)' }]);
  });

  test('an unknown pool suggests the near one', () => {
    expect(problems(both({ hosts: `  - {name: box, role: deploy, pools: [biuld], tokenSha256: ${SHA}}` }))).toEqual([
      { path: 'hosts.0.pools.0', message: 'no pool named "biuld" (did you mean "build"?)' },
    ]);
  });
});

describe('did you mean', () => {
  test.each<[string, string, number]>([
    ['lables', 'labels', 1],
    ['labels', 'labels', 0],
    ['prefx', 'prefix', 1],
    ['acel', 'accel', 1],
    ['colour', 'scope', 5],
    ['', 'abc', 3],
  ])('%s → %s: %i', (a, b, d) => expect(editDistance(a, b)).toBe(d));

  test('within two edits, and never a word that is already known, nor for a word of one letter', () => {
    expect(closest('slot', ['slots', 'stateDir'])).toBe('slots');
    expect(closest('slots', ['slots'])).toBeUndefined();
    expect(closest('x', ['vm'])).toBeUndefined();
    expect(closest('timeout', ['timeoutMinutes'])).toBeUndefined();
  });
});

describe('redactRedisUrl', () => {
  test.each([
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['redis://:hunter2@redis.lan:6379/0', 'redis://:***@redis.lan:6379/0'],
    ['rediss://hangar:hunter2@redis.lan', 'rediss://hangar:***@redis.lan'],
    ['redis://hunter2@redis.lan', 'redis://***@redis.lan'],
  ])('%s', (url, want) => expect(redactRedisUrl(url)).toBe(want));
});
