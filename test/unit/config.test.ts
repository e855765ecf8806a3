import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { loadConfig, parseConfig, requireAgent, requireControl, validateConfig } from '../../src/config/load.js';
import { readControlSecrets } from '../../src/config/secrets.js';
import { ConfigError } from '../../src/domain/errors.js';

const problemsOf = (text: string, env: NodeJS.ProcessEnv = {}) => {
  try {
    validateConfig(parseConfig(text, 'test.yaml', env));
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map(({ path, message }) => ({ path, message }));
  }
  throw new Error('expected a ConfigError');
};

describe('config', () => {
  test('the annotated example is valid', () => {
    const cfg = validateConfig(loadConfig('examples/hangar.yaml', {}));
    expect(cfg.pools.map((p) => p.name)).toEqual(['build', 'deploy']);
    expect(cfg.redis.prefix).toBe('hangar');
    expect(cfg.control?.port).toBe(8080);
    expect(cfg.pools.map((p) => p.egress.mode)).toEqual(['allowlist', 'internet']);
    expect(cfg.agent?.network.productionCidrs).toEqual(['10.20.0.0/16']);
    // The host is described once: the agent's role and pools are its hosts[] entry's.
    expect(cfg.agent).toMatchObject({ host: 'cloudbox', role: 'deploy', pools: ['build', 'deploy'] });
    expect(cfg.hosts.map((h) => h.name)).toEqual(['minipc', 'cloudbox']);
  });

  test('defaults fill what is left out', () => {
    const cfg = requireControl(parseConfig(
      'github: {appId: 1, privateKeyFile: k, webhookSecretFile: s}\npolicy: {repositories: [a/*]}\ndashboard: {enabled: false}\npools: [{name: b, labels: [self-hosted]}]',
      't',
    ));
    expect(cfg.github.apiUrl).toBe('https://api.github.com');
    expect(cfg.redis.url).toBe('redis://127.0.0.1:6379');
    expect(cfg.control.deliveryTtlHours).toBe(72);
    expect(cfg.pools[0]!.runnerGroupId).toBe(1);
  });

  test('a broken config names every bad key at once', () => {
    const problems = problemsOf(`
github:
  appId: "12"
  privateKeyFile: k
  webhookSecretFile: s
  secret: inline-secret-is-not-allowed
redis: {url: http://x}
control: {port: 70000, deliveryTtlHours: 1}
policy: {repositories: [not-a-repo]}
pools:
  - {name: Build, labels: [linux]}
  - {name: ok, labels: [self-hosted], deploy: {repositories: [], branches: [main]}}
  - {name: ok, labels: [self-hosted], colour: red}
typo: 1
`);
    const paths = problems.map((p) => p.path).sort();
    expect(paths).toEqual(
      [
        'github.appId',
        'github.secret',
        'redis.url',
        'control.port',
        'control.deliveryTtlHours',
        'policy.repositories.0',
        'pools.0.name',
        'pools.0.labels',
        'pools.1.deploy.repositories',
        'pools.2.colour',
        // Checks between keys run even while others are invalid: the duplicate is named too.
        'pools.2.name',
        // The dashboard is on by default, and needs its token.
        'dashboard.tokenFile',
        'typo',
      ].sort(),
    );
    expect(problems.find((p) => p.path === 'github.secret')!.message).toBe('unknown key "secret"');
  });

  test('duplicate pool names are named', () => {
    const problems = problemsOf(
      'github: {appId: 1, privateKeyFile: k, webhookSecretFile: s}\npolicy: {repositories: [a/*]}\ndashboard: {enabled: false}\npools: [{name: b, labels: [self-hosted]}, {name: b, labels: [self-hosted]}]',
    );
    expect(problems).toEqual([{ path: 'pools.1.name', message: 'duplicate pool name "b" (also pools.0)' }]);
  });

  test('YAML syntax errors and a missing file are ConfigErrors', () => {
    expect(problemsOf('github: [unclosed')[0]!.message).toMatch(/^YAML/);
    expect(() => loadConfig('/nonexistent/hangar.yaml', {})).toThrow(/cannot read: ENOENT/);
  });

  test('environment overrides', () => {
    const cfg = requireControl(loadConfig('examples/hangar.yaml', { HANGAR_REDIS_URL: 'redis://10.0.0.1:7000', HANGAR_CONTROL_PORT: '9999' }));
    expect(cfg.redis.url).toBe('redis://10.0.0.1:7000');
    expect(cfg.control.port).toBe(9999);
  });

  test('secret files: every unusable one named, contents never in the message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-cfg-'));
    writeFileSync(join(dir, 'secret'), 'hunter2-very-secret\n');
    writeFileSync(join(dir, 'key'), 'not a pem hunter3');
    const cfg = requireControl(parseConfig(
      `github: {appId: 1, privateKeyFile: ${dir}/key, webhookSecretFile: ${dir}/secret, previousWebhookSecretFile: ${dir}/missing}\npolicy: {repositories: [a/*]}\ndashboard: {enabled: false}\npools: [{name: b, labels: [self-hosted]}]`,
      't',
    ));
    let err: ConfigError | undefined;
    try {
      readControlSecrets(cfg);
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err?.problems.map((p) => p.path)).toEqual(['github.previousWebhookSecretFile', 'github.privateKeyFile']);
    expect(err?.message).not.toMatch(/hunter/);
  });
});

describe('dashboard section', () => {
  const base = 'github: {appId: 1, privateKeyFile: k, webhookSecretFile: s}\npolicy: {repositories: [a/*]}\npools: [{name: b, labels: [self-hosted]}]\n';
  test('defaults: on, 127.0.0.1:8081, the free plan at $0.006/min', () => {
    const cfg = requireControl(parseConfig(`${base}dashboard: {tokenFile: /etc/hangar/operator-token}`, 't'));
    expect(cfg.dashboard).toEqual({
      enabled: true, listen: '127.0.0.1:8081', tokenFile: '/etc/hangar/operator-token', sessionHours: 12,
      savings: { pricePerMinute: 0.006, plan: 'free', platformChargePerMinute: 0.002 },
    });
  });
  test.each([
    ['no token file while enabled', 'dashboard: {}', [['dashboard.tokenFile', /required while the dashboard is enabled/]]],
    ['the webhook port', 'control: {port: 9000}\ndashboard: {tokenFile: t, listen: "0.0.0.0:9000"}', [['dashboard.listen', /port 9000 is the webhook listener's/]]],
    ['the default webhook port', 'dashboard: {tokenFile: t, listen: "127.0.0.1:8080"}', [['dashboard.listen', /port 8080/]]],
    ['not host:port', 'dashboard: {tokenFile: t, listen: "8081"}', [['dashboard.listen', /expected "host:port"/]]],
    ['an unknown plan and a typo', 'dashboard: {tokenFile: t, savings: {plan: gold, pricePerMinit: 1}}', [['dashboard.savings.plan', /./], ['dashboard.savings.pricePerMinit', /unknown key/]]],
  ])('%s', (_n, extra, want) => {
    const problems = problemsOf(`${base}${extra}`);
    expect(problems.map((p) => p.path).sort()).toEqual(want.map(([p]) => p).sort());
    for (const [path, re] of want) expect(problems.find((p) => p.path === path)!.message).toMatch(re as RegExp);
  });
  test('off: no token needed, any port left alone', () => {
    expect(requireControl(parseConfig(`${base}dashboard: {enabled: false, listen: "127.0.0.1:8080"}`, 't')).dashboard.enabled).toBe(false);
  });
  test('the operator token file: unreadable or too short is named, its content never', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hangar-op-'));
    writeFileSync(join(dir, 'short'), 'hunter5');
    writeFileSync(join(dir, 'key'), '-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n');
    writeFileSync(join(dir, 'secret'), 'webhook-secret-long');
    for (const [file, re] of [['missing', /cannot read .*ENOENT/], ['short', /holds no token/]] as const) {
      const cfg = requireControl(parseConfig(`github: {appId: 1, privateKeyFile: ${dir}/key, webhookSecretFile: ${dir}/secret}\npolicy: {repositories: [a/*]}\npools: [{name: b, labels: [self-hosted]}]\ndashboard: {tokenFile: ${dir}/${file}}`, 't'));
      let err: ConfigError | undefined;
      try {
        readControlSecrets(cfg);
      } catch (e) {
        err = e as ConfigError;
      }
      expect(err?.problems.map((p) => p.path)).toEqual(['dashboard.tokenFile']);
      expect(err?.message).toMatch(re);
      expect(err?.message).not.toContain('hunter5');
    }
  });
});
