import { describe, expect, test } from 'vitest';
import { stringify } from 'yaml';
import { parseConfig, validateConfig } from '../../src/config/load.js';
import { checkAllowEntry, expandAllowlist } from '../../src/config/egress.js';
import { EGRESS_PRESETS } from '../../src/config/egress-presets.js';
import { checkAgentNetwork, checkRangeAgainstHost, parseDnsUpstream, type UpstreamParse } from '../../src/config/network-checks.js';
import { ConfigError, type ConfigProblem } from '../../src/domain/errors.js';

const POOLS = [
  { name: 'build', labels: ['self-hosted', 'build'] },
  { name: 'deploy', labels: ['self-hosted', 'deploy'], deploy: { repositories: ['acme/site'], branches: ['main'] } },
];

/** A valid agent section on a host of `role` (its hosts[] entry), with `network` as given. */
const agent = (network: object = {}, role: 'build' | 'deploy' = 'deploy') => ({
  host: 'minipc',
  role,
  slots: 2,
  controlUrl: 'http://127.0.0.1:8080',
  tokenFile: '/etc/hangar/host-token',
  vm: { image: '/var/lib/hangar/image' },
  caps: { cpuQuotaPercent: 200, memoryMaxMiB: 8192 },
  network,
});

/** The file: the pools, and with an agent its host's entry (role and pools) and its section. */
const yaml = (o: { pools?: object[]; agent?: ReturnType<typeof agent> }) => {
  if (!o.agent) return stringify({ pools: o.pools ?? POOLS });
  const { role, ...section } = o.agent;
  const entry = { name: section.host, role, pools: role === 'deploy' ? ['build', 'deploy'] : ['build'], tokenSha256: 'a'.repeat(64) };
  return stringify({ pools: o.pools ?? POOLS, hosts: [entry], agent: section });
};
const parse = (o: { pools?: object[]; agent?: ReturnType<typeof agent> }) => validateConfig(parseConfig(yaml(o), 'test.yaml'));
const problemsOf = (o: { pools?: object[]; agent?: ReturnType<typeof agent> }): ConfigProblem[] => {
  try {
    parse(o);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map(({ path, message }) => ({ path, message }));
  }
  throw new Error('expected a ConfigError');
};
const withEgress = (egress: unknown) => [POOLS[0]!, { ...POOLS[1]!, egress }];

describe('allowlist entries', () => {
  test.each(['registry.npmjs.org', 'Registry.NPMjs.org', '*.pkg.github.com', 'github', 'GitHub', 'xn--bcher-kva.example', 'a-b.co'])(
    '%s is accepted',
    (entry) => expect(checkAllowEntry(entry)).toBeUndefined(),
  );

  test.each<[string, string]>([
    ['gihub', 'unknown preset "gihub" (known: github); did you mean "github"?'],
    ['npm', 'unknown preset "npm" (known: github)'],
    ['constructor', 'unknown preset "constructor" (known: github)'],
    ['*.com', '"*.com" covers a whole top-level domain; name the domain below it (*.example.com)'],
    ['**.github.com', '"**.github.com": a wildcard is one leading "*." only, as in *.pkg.github.com'],
    ['a.*.github.com', '"a.*.github.com": a wildcard is one leading "*." only, as in *.pkg.github.com'],
    ['*github.com', '"*github.com": a wildcard is one leading "*." only, as in *.pkg.github.com'],
    ['https://registry.npmjs.org', '"https://registry.npmjs.org" is a URL; an entry is a name (registry.npmjs.org): it covers every path and port'],
    ['github.com:443', '"github.com:443" has a port; an entry is a name and covers every port'],
    ['140.82.112.3', '"140.82.112.3" is an address; an allowlist holds names, and lets out what they resolve to'],
    ['-bad.example', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got "-bad.example"'],
    ['under_score.example', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got "under_score.example"'],
    ['github.com.', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got "github.com."'],
    ['', 'expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (github), got ""'],
  ])('%j is refused', (entry, message) => expect(checkAllowEntry(entry)).toBe(message));
});

describe('the github preset', () => {
  const github = EGRESS_PRESETS.github!;

  test('holds the hosts GitHub lists for self-hosted runners, each a valid lowercase entry', () => {
    for (const host of ['github.com', 'api.github.com', '*.actions.githubusercontent.com', 'codeload.github.com', 'pkg.actions.githubusercontent.com',
      'results-receiver.actions.githubusercontent.com', '*.blob.core.windows.net', 'objects.githubusercontent.com', 'objects-origin.githubusercontent.com',
      'github-releases.githubusercontent.com', 'github-registry-files.githubusercontent.com', 'ghcr.io', '*.pkg.github.com']) {
      expect(github).toContain(host);
    }
    for (const host of github) {
      expect(checkAllowEntry(host)).toBeUndefined();
      expect(host).toBe(host.toLowerCase());
    }
    expect(new Set(github).size).toBe(github.length);
  });

  test('leaves out what the page does not list for runners', () => {
    expect(github).not.toContain('*.githubusercontent.com');
    expect(github).not.toContain('*.github.com');
    expect(github).not.toContain('pkg-containers.githubusercontent.com');
  });
});

describe('expandAllowlist', () => {
  test('presets expanded in place, names lowercased, each once, in first-listed order', () => {
    expect(expandAllowlist(['Registry.npmjs.org', 'GitHub', 'registry.npmjs.org', 'GITHUB.COM', '*.Example.org'])).toEqual([
      'registry.npmjs.org',
      ...EGRESS_PRESETS.github!,
      '*.example.org',
    ]);
  });

  test('an entry validation refuses is a TypeError, never passed on', () => {
    expect(() => expandAllowlist(['gihub'])).toThrow(TypeError);
    expect(() => expandAllowlist(['constructor'])).toThrow(/unknown preset/);
  });
});

describe('pools[].egress', () => {
  test('internet by default', () => {
    expect(parse({}).pools.map((p) => p.egress)).toEqual([{ mode: 'internet' }, { mode: 'internet' }]);
  });

  test('an allowlist is kept as written (the agent expands it)', () => {
    const cfg = parse({ pools: withEgress({ mode: 'allowlist', allow: ['github', 'registry.npmjs.org', '*.pkg.github.com'] }) });
    expect(cfg.pools[1]!.egress).toEqual({ mode: 'allowlist', allow: ['github', 'registry.npmjs.org', '*.pkg.github.com'] });
  });

  test.each<[string, unknown, ConfigProblem[]]>([
    ['unknown preset, with its path', { mode: 'allowlist', allow: ['gihub'] }, [{ path: 'pools.1.egress.allow.0', message: 'unknown preset "gihub" (known: github); did you mean "github"?' }]],
    ['every bad entry named', { mode: 'allowlist', allow: ['github', '*.com', 'ok.example', 'a.*.b'] }, [
      { path: 'pools.1.egress.allow.1', message: '"*.com" covers a whole top-level domain; name the domain below it (*.example.com)' },
      { path: 'pools.1.egress.allow.3', message: '"a.*.b": a wildcard is one leading "*." only, as in *.pkg.github.com' },
    ]],
    ['empty allowlist', { mode: 'allowlist', allow: [] }, [{ path: 'pools.1.egress.allow', message: 'an empty allowlist lets nothing out, not even GitHub: list names or presets, or use mode internet' }]],
    ['allow is only for allowlist mode', { mode: 'internet', allow: ['github'] }, [{ path: 'pools.1.egress.allow', message: 'unknown key "allow"' }]],
  ])('%s', (_name, egress, want) => expect(problemsOf({ pools: withEgress(egress) })).toEqual(want));

  test('a mode that does not exist, or an allowlist without its list, is named', () => {
    expect(problemsOf({ pools: withEgress({ mode: 'allow' }) }).map((p) => p.path)).toEqual(['pools.1.egress.mode']);
    expect(problemsOf({ pools: withEgress({ mode: 'allowlist' }) }).map((p) => p.path)).toEqual(['pools.1.egress.allow']);
  });
});

describe('agent.network', () => {
  test('defaults: isolation on, two public resolvers, no production networks', () => {
    const n = parse({ agent: agent() }).agent!.network;
    expect(n).toEqual({ range: '10.213.0.0/16', metadataPort: 8169, isolation: true, dns: { upstreams: ['1.1.1.1', '9.9.9.9'] }, productionCidrs: [] });
  });

  test('a deploy host with production networks and the house Pi-hole as its resolver', () => {
    const n = parse({ agent: agent({ dns: { upstreams: ['192.168.1.2:5353', '9.9.9.9'] }, productionCidrs: ['10.1.0.0/16', '172.20.0.0/24'] }) }).agent!.network;
    expect(n.dns.upstreams).toEqual(['192.168.1.2:5353', '9.9.9.9']);
    expect(n.productionCidrs).toEqual(['10.1.0.0/16', '172.20.0.0/24']);
  });

  test('a build host may say it has no production networks', () => {
    expect(parse({ agent: agent({ productionCidrs: [] }, 'build') }).agent!.network.productionCidrs).toEqual([]);
  });

  const RANGE = 'agent.network.range (10.213.0.0/16)';
  test.each<[string, object, 'build' | 'deploy', ConfigProblem[]]>([
    ['range with host bits set', { range: '10.213.0.1/16' }, 'deploy', [{ path: 'agent.network.range', message: '10.213.0.1/16 has host bits set; did you mean 10.213.0.0/16?' }]],
    ['range that is not a CIDR', { range: '10.213.0.0' }, 'deploy', [{ path: 'agent.network.range', message: 'expected an IPv4 CIDR like 10.1.0.0/16, got "10.213.0.0"' }]],
    ['production CIDR with host bits set', { productionCidrs: ['10.1.2.3/16'] }, 'deploy', [
      { path: 'agent.network.productionCidrs.0', message: '10.1.2.3/16 has host bits set; did you mean 10.1.0.0/16?' },
    ]],
    ['production CIDRs on a build host', { productionCidrs: ['10.1.0.0/16'] }, 'build', [
      { path: 'agent.network.productionCidrs', message: 'a build host never reaches production: productionCidrs is only for a host with role deploy' },
    ]],
    ['overlapping production CIDRs: the later one is named', { productionCidrs: ['10.1.0.0/16', '172.20.0.0/24', '10.1.2.0/24'] }, 'deploy', [
      { path: 'agent.network.productionCidrs.2', message: '10.1.2.0/24 overlaps (agent.network.productionCidrs.0: 10.1.0.0/16)' },
    ]],
    ['a production CIDR listed twice', { productionCidrs: ['10.1.0.0/16', '10.1.0.0/16'] }, 'deploy', [
      { path: 'agent.network.productionCidrs.1', message: '10.1.0.0/16 is listed twice (agent.network.productionCidrs.0: 10.1.0.0/16)' },
    ]],
    ['a production CIDR overlapping the VM range', { productionCidrs: ['10.0.0.0/8'] }, 'deploy', [
      { path: 'agent.network.productionCidrs.0', message: `10.0.0.0/8 overlaps ${RANGE}, where the VMs' links are cut from` },
    ]],
    ['a production CIDR over the metadata address', { productionCidrs: ['169.254.169.254/32'] }, 'deploy', [
      { path: 'agent.network.productionCidrs.0', message: '169.254.169.254/32 overlaps 169.254.0.0/16 (link-local, where cloud metadata lives (169.254.169.254)), which guests never reach' },
    ]],
    ['an upstream that is a name', { dns: { upstreams: ['dns.google'] } }, 'deploy', [
      { path: 'agent.network.dns.upstreams.0', message: 'expected an IPv4 address or IPv4:port (192.168.1.2:53), got "dns.google"' },
    ]],
    ['an IPv6 upstream', { dns: { upstreams: ['1.1.1.1', '2606:4700:4700::1111'] } }, 'deploy', [
      { path: 'agent.network.dns.upstreams.1', message: '"2606:4700:4700::1111" is IPv6; upstreams are IPv4 only (guests get no IPv6)' },
    ]],
    ['an upstream inside the VM range', { dns: { upstreams: ['10.213.0.1'] } }, 'deploy', [
      { path: 'agent.network.dns.upstreams.0', message: `10.213.0.1 is inside ${RANGE}, where the VMs' links are cut from; an upstream is a server the host's forwarder asks` },
    ]],
    ['no upstream at all', { dns: { upstreams: [] } }, 'deploy', [{ path: 'agent.network.dns.upstreams', message: 'Too small: expected array to have >=1 items' }]],
  ])('%s', (_name, network, role, want) => expect(problemsOf({ agent: agent(network, role) })).toEqual(want));
});

describe('parseDnsUpstream', () => {
  test.each<[string, UpstreamParse]>([
    ['1.1.1.1', { ok: true, address: '1.1.1.1', port: 53 }],
    ['192.168.1.2:53', { ok: true, address: '192.168.1.2', port: 53 }],
    ['192.168.1.2:5353', { ok: true, address: '192.168.1.2', port: 5353 }],
    ['127.0.0.53', { ok: true, address: '127.0.0.53', port: 53 }],
    ['1.1.1.1:0', { ok: false, message: '"1.1.1.1:0": the port is 1 to 65535' }],
    ['1.1.1.1:65536', { ok: false, message: '"1.1.1.1:65536": the port is 1 to 65535' }],
    ['1.1.1.1:053', { ok: false, message: '"1.1.1.1:053": the port is 1 to 65535' }],
    ['1.1.1.1:', { ok: false, message: '"1.1.1.1:": the port is 1 to 65535' }],
    ['[::1]:53', { ok: false, message: '"[::1]:53" is IPv6; upstreams are IPv4 only (guests get no IPv6)' }],
    ['1.1.1', { ok: false, message: 'expected an IPv4 address or IPv4:port (192.168.1.2:53), got "1.1.1"' }],
    ['0.0.0.0', { ok: false, message: '0.0.0.0 is not a unicast address (0.0.0.0/8, "this network")' }],
    ['224.0.0.251:5353', { ok: false, message: '224.0.0.251 is not a unicast address (224.0.0.0/4, multicast)' }],
    ['255.255.255.255', { ok: false, message: '255.255.255.255 is not a unicast address (240.0.0.0/4, reserved)' }],
  ])('%s', (text, want) => expect(parseDnsUpstream(text)).toEqual(want));
});

describe('checkAgentNetwork reads only what parsed', () => {
  test.each<[string, unknown]>([
    ['no agent', undefined],
    ['not an object', 'agent'],
    ['network not an object', { network: 7 }],
    ['entries of the wrong type', { network: { range: 5, productionCidrs: [1, null], dns: { upstreams: [{}] } } }],
    ['an invalid range checks nothing against it', { network: { range: 'x', productionCidrs: ['10.213.0.0/24'], dns: { upstreams: ['10.213.0.1'] } } }],
  ])('%s: no problem of its own', (_name, input) => expect(checkAgentNetwork(input, 'deploy')).toEqual([]));
});

describe('checkRangeAgainstHost', () => {
  const path = 'agent.network.range';
  test.each<[string, string, string[], ConfigProblem[]]>([
    ['a host on a home LAN', '10.213.0.0/16', ['127.0.0.1/8', '192.168.1.10/24', 'fe80::1/64'], []],
    ['no addresses at all', '10.213.0.0/16', [], []],
    ['the LAN inside the range', '10.0.0.0/8', ['127.0.0.1/8', '10.0.5.20/24'], [
      { path, message: "10.0.0.0/8 overlaps this host's network 10.0.5.0/24 (address 10.0.5.20/24): pick a range no network of this host uses" },
    ]],
    ['the range inside a VPN', '10.213.0.0/16', ['10.0.0.7/8'], [
      { path, message: "10.213.0.0/16 overlaps this host's network 10.0.0.0/8 (address 10.0.0.7/8): pick a range no network of this host uses" },
    ]],
    ['two addresses on one network are one problem; each network named', '10.0.0.0/8', ['10.0.5.20/24', '10.0.5.21/24', '10.9.0.1/16'], [
      { path, message: "10.0.0.0/8 overlaps this host's network 10.0.5.0/24 (address 10.0.5.20/24): pick a range no network of this host uses" },
      { path, message: "10.0.0.0/8 overlaps this host's network 10.9.0.0/16 (address 10.9.0.1/16): pick a range no network of this host uses" },
    ]],
    ['a neighbour that only touches the range', '10.213.0.0/16', ['10.212.255.254/16', '10.214.0.1/16'], []],
    ['an invalid range is named, not compared', '10.213.0.1/16', ['10.213.0.7/24'], [{ path, message: '10.213.0.1/16 has host bits set; did you mean 10.213.0.0/16?' }]],
  ])('%s', (_name, range, host, want) => expect(checkRangeAgainstHost(range, host)).toEqual(want));

  test('a malformed host entry is the caller\'s bug', () => {
    expect(() => checkRangeAgainstHost('10.213.0.0/16', ['10.0.0.1'])).toThrow(TypeError);
  });
});

test('one config with many of these mistakes reports every one, each with its path', () => {
  const problems = problemsOf({
    pools: [
      { name: 'build', labels: ['self-hosted'], egress: { mode: 'allowlist', allow: ['github', 'a.*.example.com'] } },
      { name: 'large', labels: ['self-hosted', 'large'], egress: { mode: 'allowlist', allow: [] } },
      { name: 'offline', labels: ['self-hosted', 'x'], egress: { mode: 'allowlist', allow: ['gihub', 'https://registry.npmjs.org'] } },
      { name: 'typo', labels: ['self-hosted', 'y'], egress: { mode: 'internt' } },
    ],
    agent: agent(
      {
        range: '10.213.0.0/16',
        dns: { upstreams: ['1.1.1.1', 'dns.google', '10.213.0.9:53', '192.168.1.2:99999'] },
        productionCidrs: ['10.1.2.3/16', '172.20.0.0/16', '172.20.5.0/24', '10.213.128.0/17'],
      },
      'build',
    ),
  });
  expect(problems.map((p) => `${p.path}: ${p.message}`).sort()).toEqual(
    [
      'pools.0.egress.allow.1: "a.*.example.com": a wildcard is one leading "*." only, as in *.pkg.github.com',
      'pools.1.egress.allow: an empty allowlist lets nothing out, not even GitHub: list names or presets, or use mode internet',
      'pools.2.egress.allow.0: unknown preset "gihub" (known: github); did you mean "github"?',
      'pools.2.egress.allow.1: "https://registry.npmjs.org" is a URL; an entry is a name (registry.npmjs.org): it covers every path and port',
      "pools.3.egress.mode: Invalid discriminator value. Expected 'internet' | 'allowlist'",
      'agent.network.dns.upstreams.1: expected an IPv4 address or IPv4:port (192.168.1.2:53), got "dns.google"',
      "agent.network.dns.upstreams.2: 10.213.0.9 is inside agent.network.range (10.213.0.0/16), where the VMs' links are cut from; an upstream is a server the host's forwarder asks",
      'agent.network.dns.upstreams.3: "192.168.1.2:99999": the port is 1 to 65535',
      'agent.network.productionCidrs: a build host never reaches production: productionCidrs is only for a host with role deploy',
      'agent.network.productionCidrs.0: 10.1.2.3/16 has host bits set; did you mean 10.1.0.0/16?',
      'agent.network.productionCidrs.2: 172.20.5.0/24 overlaps (agent.network.productionCidrs.1: 172.20.0.0/16)',
      "agent.network.productionCidrs.3: 10.213.128.0/17 overlaps agent.network.range (10.213.0.0/16), where the VMs' links are cut from",
    ].sort(),
  );
});
