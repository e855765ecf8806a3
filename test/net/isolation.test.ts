/**
 * The isolation model and renderer from tables, the parsers on nft 1.0.6's captured JSON, and
 * nft's own check mode (`nft -c`, in a namespace this test makes) accepting every ruleset and
 * element transaction rendered here. No packet is sent (isolation-packets.test.ts does that).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  BLOCKED_RANGES,
  checkHost,
  counterName,
  IsolationError,
  renderIsolationRuleset,
  VERDICTS,
  type IsolationHost,
  type IsolationProblem,
} from '../../src/net/isolation.js';
import {
  parseCounters,
  parseDenied,
  parseVmEntries,
  renderAllowAdd,
  renderDeniedRemove,
  renderEntriesRemove,
  renderVmAdd,
  renderVmRemove,
  type VmElement,
} from '../../src/net/isolation-elements.js';

const build: IsolationHost = { range: '10.213.0.0/16', metadataPort: 9100, role: 'build' };
const deploy: IsolationHost = { ...build, role: 'deploy', productionCidrs: ['10.50.0.0/16', '192.168.77.0/24'] };
const vm: VmElement = { tap: 'hg-0123456789ab', guestIp: '10.213.0.2', gatewayIp: '10.213.0.1', egress: 'internet' };
const fixture = (name: string) => readFileSync(new URL(`./fixtures/nft-1.0.6/${name}.json`, import.meta.url), 'utf8');

function refusal(fn: () => unknown): IsolationError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(IsolationError);
    return err as IsolationError;
  }
  throw new Error('expected a refusal');
}

/** The chain blocks of a rendered table, by name. */
function chains(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of text.matchAll(/^ {2}chain (\S+) \{\n((?: {4}.*\n)*) {2}\}$/gm)) out.set(m[1]!, m[2]!.trim().split('\n').map((l) => l.trim()));
  return out;
}

describe('host model', () => {
  test('defaults', () => {
    expect(checkHost(build)).toEqual({
      range: '10.213.0.0/16',
      metadataPort: 9100,
      dnsPort: 53,
      role: 'build',
      productionCidrs: [],
      newConnPerSecond: 50,
      allowSets: [],
      deniedSize: 65536,
      deniedTimeoutSeconds: 3600,
      allowTimeoutSeconds: 3600,
    });
  });

  test.each<[string, IsolationHost, IsolationProblem, string]>([
    ['production CIDRs on a build host', { ...build, productionCidrs: ['10.50.0.0/16'] }, 'production-on-build-host', 'productionCidrs'],
    ['a range that is no CIDR', { ...build, range: '10.213.0.0' }, 'bad-cidr', 'range'],
    ['a range with host bits', { ...build, range: '10.213.0.1/16' }, 'bad-cidr', 'range'],
    ['a /33', { ...build, range: '10.213.0.0/33' }, 'bad-cidr', 'range'],
    ['a production CIDR that is no CIDR', { ...deploy, productionCidrs: ['10.50.0.0/16', 'prod.internal'] }, 'bad-cidr', 'productionCidrs.1'],
    ['an octet past 255', { ...deploy, productionCidrs: ['10.500.0.0/16'] }, 'bad-cidr', 'productionCidrs.0'],
    ['production overlapping the VM range', { ...deploy, productionCidrs: ['10.213.7.0/24'] }, 'cidr-overlap', 'productionCidrs.0'],
    ['production containing the VM range', { ...deploy, productionCidrs: ['10.0.0.0/8'] }, 'cidr-overlap', 'productionCidrs.0'],
    ['production CIDRs overlapping each other', { ...deploy, productionCidrs: ['10.50.0.0/16', '10.50.3.0/24'] }, 'cidr-overlap', 'productionCidrs.1'],
    ['metadata port 0', { ...build, metadataPort: 0 }, 'bad-port', 'metadataPort'],
    ['metadata port 65536', { ...build, metadataPort: 65536 }, 'bad-port', 'metadataPort'],
    ['a fractional DNS port', { ...build, dnsPort: 53.5 }, 'bad-port', 'dnsPort'],
    ['no new connections at all', { ...build, newConnPerSecond: 0 }, 'bad-number', 'newConnPerSecond'],
    ['an unbounded log', { ...build, deniedSize: 0 }, 'bad-number', 'deniedSize'],
    ['an allow set without its prefix', { ...build, allowSets: ['github'] }, 'bad-set-name', 'allowSets.0'],
    ['an allow set with nft syntax in it', { ...build, allowSets: ['allow_ci', 'allow_x }; flush ruleset'] }, 'bad-set-name', 'allowSets.1'],
    ['a role that is neither', { ...build, role: 'prod' as 'build' }, 'bad-role', 'role'],
    ['an uplink name with a quote', { ...build, outInterface: 'eth0"' }, 'bad-interface', 'outInterface'],
  ])('refuses %s', (_name, host, problem, key) => {
    const err = refusal(() => renderIsolationRuleset(host));
    expect(err).toMatchObject({ problem, key, code: `isolation-${problem}` });
    expect(err.message.startsWith(`${key}: `)).toBe(true);
  });
});

describe('rendered table', () => {
  const text = renderIsolationRuleset(build);
  const c = chains(text);

  test('one table, replaced atomically, masquerade kept', () => {
    expect(text.split('\n').slice(0, 3)).toEqual(['table inet hangar {}', 'delete table inet hangar', 'table inet hangar {']);
    expect(text.match(/^table /gm)).toHaveLength(2);
    expect(c.get('postrouting')).toContain('ip saddr 10.213.0.0/16 ip daddr != 10.213.0.0/16 masquerade');
    expect(renderIsolationRuleset({ ...build, outInterface: 'eth0' })).toContain('ip daddr != 10.213.0.0/16 oifname "eth0" masquerade');
  });

  test('base chains accept by default and send only hg-* traffic into Hangar chains', () => {
    const bases = [...c].filter(([, lines]) => lines[0]!.startsWith('type '));
    expect(bases.map(([n]) => n).sort()).toEqual(['forward', 'input', 'output', 'postrouting', 'prerouting', 'prerouting_new']);
    for (const [name, [head, ...rules]] of bases) {
      expect(head, name).toMatch(/; policy accept;$/);
      for (const rule of rules) {
        if (name === 'postrouting') continue;
        expect(rule, `${name}: ${rule}`).toMatch(/^(iif|oif)name "hg-\*" /);
      }
    }
  });

  test('every verdict has a named counter, and a rule that counts it', () => {
    const full = renderIsolationRuleset({ ...deploy, allowSets: ['allow_ci'] });
    for (const v of VERDICTS) {
      expect(text).toContain(`counter ${counterName(v)} {}`);
      expect(full, v).toContain(`counter name ${counterName(v)} `);
    }
  });

  test('guest out: established first, then guests, DNS, (production), private ranges, egress mode, deny', () => {
    const out = c.get('guest_out')!;
    expect(out).toEqual([
      'ct state established,related accept',
      'ct state invalid counter name hangar_drop_invalid drop',
      'oifname "hg-*" jump deny_guest',
      'ip daddr 10.213.0.0/16 jump deny_guest',
      'meta l4proto { tcp, udp } th dport { 53, 853 } jump deny_dns',
      `ip daddr { ${BLOCKED_RANGES.join(', ')} } jump deny_private`,
      'iifname vmap @egress',
      'jump deny_unassigned',
    ]);
    expect(text).not.toContain('accept_production accept');
  });

  test('deploy host: production accepted after DNS, before the private ranges', () => {
    const out = chains(renderIsolationRuleset(deploy)).get('guest_out')!;
    const prod = out.indexOf('ip daddr { 10.50.0.0/16, 192.168.77.0/24 } counter name hangar_accept_production accept');
    expect(prod).toBeGreaterThan(out.findIndex((l) => l.includes('jump deny_dns')));
    expect(prod).toBeLessThan(out.findIndex((l) => l.includes('jump deny_private')));
  });

  test('the blocked ranges are the ones the issue names', () => {
    expect([...BLOCKED_RANGES].sort()).toEqual(
      ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '169.254.0.0/16', '127.0.0.0/8', '0.0.0.0/8', '224.0.0.0/4', '240.0.0.0/4'].sort(),
    );
  });

  test('to the host: the own gateway metadata port (tcp) and DNS port (udp, tcp), nothing else', () => {
    expect(chains(renderIsolationRuleset({ ...build, metadataPort: 8169, dnsPort: 5353 })).get('guest_to_host')).toEqual([
      'ct state established,related accept',
      'ct state invalid counter name hangar_drop_invalid drop',
      'iifname . ip daddr @gateways tcp dport 8169 counter name hangar_accept_metadata accept',
      'iifname . ip daddr @gateways meta l4proto { tcp, udp } th dport 5353 counter name hangar_accept_dns accept',
      'jump deny_host',
    ]);
  });

  test('from a tap, before conntrack: no IPv6, no foreign source; after: the per-guest rate', () => {
    expect(c.get('from_tap')).toEqual(['meta nfproto ipv6 counter name hangar_drop_ipv6 drop', 'iifname . ip saddr != @guests counter name hangar_drop_spoof drop']);
    expect(c.get('prerouting')![0]).toContain('priority raw;');
    expect(chains(renderIsolationRuleset({ ...build, newConnPerSecond: 7 })).get('prerouting_new')).toEqual([
      'type filter hook prerouting priority mangle; policy accept;',
      'iifname "hg-*" ct state new update @rate { ip saddr limit rate over 7/second burst 7 packets } counter name hangar_drop_rate drop',
    ]);
  });

  test('into a guest: nothing new, no IPv6', () => {
    expect(c.get('guest_in')).toEqual(['ct state established,related accept', 'counter name hangar_drop_inbound drop']);
    expect(c.get('host_to_guest')).toEqual(['meta nfproto ipv6 counter name hangar_drop_ipv6 drop', 'ct state new counter name hangar_drop_inbound drop']);
    expect(c.get('forward')).toContain('oifname "hg-*" meta nfproto ipv6 counter name hangar_drop_ipv6 drop');
  });

  test('each deny chain logs, then resets tcp, refuses udp, drops the rest', () => {
    expect(c.get('deny_private')).toEqual([
      'meta l4proto { tcp, udp } update @denied { iifname . ip daddr . meta l4proto . th dport }',
      'meta l4proto != { tcp, udp } update @denied { iifname . ip daddr . meta l4proto . 0 }',
      'meta l4proto tcp counter name hangar_drop_private reject with tcp reset',
      'meta l4proto udp counter name hangar_drop_private reject with icmpx admin-prohibited',
      'counter name hangar_drop_private drop',
    ]);
    expect([...c.keys()].filter((n) => n.startsWith('deny_')).sort()).toEqual(['deny_allowlist', 'deny_dns', 'deny_guest', 'deny_host', 'deny_private', 'deny_unassigned']);
  });

  test('the egress log is bounded and ages out', () => {
    const t = renderIsolationRuleset({ ...build, deniedSize: 1000, deniedTimeoutSeconds: 600 });
    expect(t).toContain('  set denied {\n    type ifname . ipv4_addr . inet_proto . inet_service\n    flags dynamic,timeout\n    timeout 600s\n    size 1000\n    counter\n  }');
  });

  test('allow sets: a set with a timeout and a chain each', () => {
    const t = renderIsolationRuleset({ ...build, allowSets: ['allow_github', 'allow_npm'], allowTimeoutSeconds: 300 });
    expect(t).toContain('  set allow_github {\n    type ipv4_addr\n    flags timeout\n    timeout 300s\n  }');
    expect(chains(t).get('allow_npm')).toEqual(['ip daddr @allow_npm counter name hangar_accept_allowlist accept', 'jump deny_allowlist']);
    expect(chains(t).get('egress_internet')).toEqual(['counter name hangar_accept_internet accept']);
  });
});

describe('per-VM elements', () => {
  test('add: anti-spoofing pair, gateway, egress mode', () => {
    expect(renderVmAdd(vm)).toBe(
      [
        'add element inet hangar guests { "hg-0123456789ab" . 10.213.0.2 }',
        'add element inet hangar gateways { "hg-0123456789ab" . 10.213.0.1 }',
        'add element inet hangar egress { "hg-0123456789ab" : goto egress_internet }',
        '',
      ].join('\n'),
    );
    expect(renderVmAdd({ ...vm, egress: { allowSet: 'allow_github' } })).toContain('egress { "hg-0123456789ab" : goto allow_github }');
  });

  test('remove: the same three, by key', () => {
    expect(renderVmRemove(vm)).toBe(
      [
        'delete element inet hangar guests { "hg-0123456789ab" . 10.213.0.2 }',
        'delete element inet hangar gateways { "hg-0123456789ab" . 10.213.0.1 }',
        'delete element inet hangar egress { "hg-0123456789ab" }',
        '',
      ].join('\n'),
    );
    expect(renderEntriesRemove({ tap: vm.tap, guestIps: ['10.213.0.2', '10.213.0.10'], gatewayIps: [], egress: undefined })).toBe(
      'delete element inet hangar guests { "hg-0123456789ab" . 10.213.0.2 }\ndelete element inet hangar guests { "hg-0123456789ab" . 10.213.0.10 }\n',
    );
  });

  test('allow-set addresses and log lines', () => {
    expect(renderAllowAdd('allow_ci', ['198.51.100.20', '203.0.113.9'], 300)).toBe('add element inet hangar allow_ci { 198.51.100.20 timeout 300s, 203.0.113.9 timeout 300s }\n');
    expect(renderAllowAdd('allow_ci', ['198.51.100.20'])).toBe('add element inet hangar allow_ci { 198.51.100.20 }\n');
    expect(renderAllowAdd('allow_ci', [])).toBe('');
    expect(renderDeniedRemove([{ tap: vm.tap, daddr: '192.168.1.1', proto: 'tcp', dport: 22 }, { tap: vm.tap, daddr: '10.0.0.1', proto: 'icmp', dport: 0 }])).toBe(
      'delete element inet hangar denied { "hg-0123456789ab" . 192.168.1.1 . tcp . 22, "hg-0123456789ab" . 10.0.0.1 . icmp . 0 }\n',
    );
  });

  test.each<[string, () => unknown, IsolationProblem, string]>([
    ['a tap that is not Hangar\'s', () => renderVmAdd({ ...vm, tap: 'eth0' }), 'bad-tap', 'tap'],
    ['a tap with upper-case hex', () => renderVmAdd({ ...vm, tap: 'hg-0123456789AB' }), 'bad-tap', 'tap'],
    ['a tap name past IFNAMSIZ', () => renderVmAdd({ ...vm, tap: 'hg-0123456789abc' }), 'bad-tap', 'tap'],
    ['a wildcard tap', () => renderVmRemove({ ...vm, tap: 'hg-*' }), 'bad-tap', 'tap'],
    ['a guest address past 255', () => renderVmAdd({ ...vm, guestIp: '10.213.0.256' }), 'bad-ip', 'guestIp'],
    ['a gateway that is a CIDR', () => renderVmAdd({ ...vm, gatewayIp: '10.213.0.1/30' }), 'bad-ip', 'gatewayIp'],
    ['the guest as its own gateway', () => renderVmAdd({ ...vm, gatewayIp: vm.guestIp }), 'bad-ip', 'gatewayIp'],
    ['an allow set without its prefix', () => renderVmAdd({ ...vm, egress: { allowSet: 'github' } }), 'bad-set-name', 'egress.allowSet'],
    ['a guest outside the host range', () => renderVmAdd({ ...vm, guestIp: '10.214.0.2' }, build), 'bad-ip', 'guestIp'],
    ['an allow set the host lacks', () => renderVmAdd({ ...vm, egress: { allowSet: 'allow_npm' } }, { ...build, allowSets: ['allow_ci'] }), 'bad-set-name', 'egress.allowSet'],
    ['an allow-set address that is a name', () => renderAllowAdd('allow_ci', ['github.com']), 'bad-ip', 'addrs.0'],
    ['a log line with nft syntax as protocol', () => renderDeniedRemove([{ tap: vm.tap, daddr: '10.0.0.1', proto: 'tcp }', dport: 1 }]), 'bad-number', 'lines.0.proto'],
  ])('refuses %s', (_name, fn, problem, key) => expect(refusal(fn)).toMatchObject({ problem, key }));
});

describe('parsers (nft 1.0.6 JSON)', () => {
  test('counters: every verdict, by name', () => {
    const c = parseCounters(fixture('counters'));
    expect(Object.keys(c).sort()).toEqual([...VERDICTS].sort());
    expect(c.drop_dns).toEqual({ packets: 3, bytes: 8088 });
    expect(c.drop_ipv6).toEqual({ packets: 27, bytes: 1944 });
    expect(c.accept_metadata).toEqual({ packets: 0, bytes: 0 });
    expect(parseCounters('{"nftables": []}').drop_private).toEqual({ packets: 0, bytes: 0 });
  });

  test('denied: tap, destination, protocol, port, packets, last seen', () => {
    const log = parseDenied(fixture('denied'));
    expect(log).toHaveLength(7);
    expect(log[0]).toEqual({ tap: 'hg-1611daf0bcd1', daddr: '192.168.50.10', proto: 'udp', dport: 53, packets: 2, bytes: 4060, lastSeenSecondsAgo: 16 });
    expect(log).toContainEqual({ tap: 'hg-36a23ccd5067', daddr: '169.254.169.254', proto: 'tcp', dport: 80, packets: 1, bytes: 60, lastSeenSecondsAgo: 10 });
    expect(log).toContainEqual({ tap: 'hg-1611daf0bcd1', daddr: '192.168.50.1', proto: 'icmp', dport: 0, packets: 1, bytes: 36, lastSeenSecondsAgo: 5 });
  });

  test('denied: an element with its own timeout, a protocol nft names, an empty set', () => {
    expect(parseDenied(fixture('denied-odd'))).toEqual([
      { tap: 'hg-aaaaaaaaaaaa', daddr: '10.0.0.1', proto: 'icmp', dport: 0, packets: 0, bytes: 0, lastSeenSecondsAgo: 1 },
      { tap: 'hg-aaaaaaaaaaaa', daddr: '10.0.0.1', proto: 'sctp', dport: 0, packets: 0, bytes: 0, lastSeenSecondsAgo: 1 },
    ]);
    const empty = '{"nftables": [{"metainfo": {}}, {"set": {"family": "inet", "name": "denied", "table": "hangar", "timeout": 3600}}]}';
    expect(parseDenied(empty)).toEqual([]);
  });

  test('VM entries joined by tap, a partial one included', () => {
    expect(parseVmEntries(fixture('guests'), fixture('gateways'), fixture('egress'))).toEqual([
      { tap: 'hg-0000000000aa', guestIps: ['10.213.0.10'], gatewayIps: [], egress: { allowSet: 'allow_ci' } },
      { tap: 'hg-1611daf0bcd1', guestIps: ['10.213.0.2'], gatewayIps: ['10.213.0.1'], egress: 'internet' },
      { tap: 'hg-36a23ccd5067', guestIps: ['10.213.0.6'], gatewayIps: ['10.213.0.5'], egress: 'internet' },
    ]);
  });

  test.each([
    ['not JSON', 'Error: No such file or directory'],
    ['no nftables array', '{"set": {}}'],
    ['no set', '{"nftables": [{"metainfo": {}}]}'],
    ['a key of the wrong shape', '{"nftables": [{"set": {"elem": [{"elem": {"val": "10.0.0.1"}}]}}]}'],
  ])('denied refuses %s', (_name, json) => expect(refusal(() => parseDenied(json))).toMatchObject({ problem: 'unexpected-output' }));
});

describe('nft -c accepts what is rendered', () => {
  const ns = `hangar-t-${randomBytes(3).toString('hex')}-check`;
  const nftCheck = (text: string) => execFileSync('nsenter', [`--net=/run/netns/${ns}`, 'nft', '-c', '-f', '-'], { input: text, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });

  beforeAll(() => {
    expect(process.getuid?.(), 'nft -c talks to the kernel: root, in a namespace of its own').toBe(0);
    execFileSync('ip', ['netns', 'add', ns]);
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', ns]);
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(ns);
  });

  const allow = { ...build, allowSets: ['allow_github', 'allow_ci'] };
  test.each<[string, IsolationHost, VmElement[]]>([
    ['build host', build, [vm]],
    ['deploy host with production', deploy, [vm]],
    ['other ports, rate, bounds, uplink', { ...build, metadataPort: 8169, dnsPort: 5353, newConnPerSecond: 1, deniedSize: 1, deniedTimeoutSeconds: 1, outInterface: 'eth0' }, [vm]],
    ['allow sets and an allowlist VM', allow, [vm, { ...vm, tap: 'hg-0123456789ac', guestIp: '10.213.0.6', gatewayIp: '10.213.0.5', egress: { allowSet: 'allow_ci' } }]],
    ['a /24 range and no VM', { ...build, range: '172.31.9.0/24' }, []],
  ])('%s', (_name, host, vms) => {
    const adds = vms.map((v) => renderVmAdd(v, host)).join('');
    const allowAdd = host.allowSets?.length ? renderAllowAdd(host.allowSets[0]!, ['198.51.100.20'], 60) : '';
    const removes = vms.map((v) => renderVmRemove(v)).join('');
    const log = renderDeniedRemove([]);
    expect(() => nftCheck(renderIsolationRuleset(host) + adds + allowAdd + removes + log)).not.toThrow();
  });

  test('and refuses a broken one (the check is real)', () => {
    expect(() => nftCheck(renderIsolationRuleset(build) + 'add element inet hangar guests { "hg-0123456789ab" }\n')).toThrow();
  });
});
