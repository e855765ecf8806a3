import { describe, expect, test } from 'vitest';
import { allowSetName, isolationHost } from '../../src/agent/guest-network.js';
import { parseConfig, requireAgent } from '../../src/config/load.js';
import { ALLOW_SET } from '../../src/net/isolation.js';

describe('the agent\'s isolation host from its config', () => {
  test.each([
    ['build', 'allow_build'],
    ['ci-small', 'allow_ci_small'],
    ['a-very-long-pool-name-that-goes-on', /^allow_a_very_long_pool__[0-9a-f]{6}$/],
  ])('allow set of pool %s', (pool, want) => {
    const name = allowSetName(pool);
    if (typeof want === 'string') expect(name).toBe(want);
    else expect(name).toMatch(want);
    expect(name).toMatch(ALLOW_SET);
  });

  test('long pool names that share a prefix get different sets', () => {
    expect(allowSetName('a-very-long-pool-name-that-goes-on')).not.toBe(allowSetName('a-very-long-pool-name-that-goes-off'));
  });

  test('range, ports, role, production CIDRs, and an allow set for each allowlist pool the host serves', () => {
    const cfg = requireAgent(parseConfig(`
pools:
  - {name: build, labels: [self-hosted, build]}
  - {name: locked, labels: [self-hosted, locked], egress: {mode: allowlist, allow: [github, registry.npmjs.org]}}
  - {name: deploy, labels: [self-hosted, deploy], deploy: {repositories: [acme/site], branches: [main]}, egress: {mode: allowlist, allow: [github]}}
hosts:
  - {name: cloud, role: deploy, pools: [build, locked], tokenSha256: ${'a'.repeat(64)}}
agent:
  host: cloud
  slots: 1
  controlUrl: http://127.0.0.1:1
  tokenFile: /nonexistent
  vm: {image: /nonexistent}
  caps: {cpuQuotaPercent: 100, memoryMaxMiB: 4096}
  network: {range: 10.99.0.0/16, metadataPort: 8170, productionCidrs: [10.20.0.0/16]}
`, 'test.yaml'));
    expect(isolationHost(cfg.agent, cfg.pools, 53)).toEqual({
      range: '10.99.0.0/16', metadataPort: 8170, dnsPort: 53, role: 'deploy', productionCidrs: ['10.20.0.0/16'],
      // Only pools this host serves: `deploy` is not one of them.
      allowSets: ['allow_locked'],
    });
  });
});
