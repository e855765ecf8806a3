/**
 * Real taps and nftables, as root, inside a network namespace this test makes and deletes:
 * nothing here touches the machine's own interfaces or rules, and no packet is sent.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { guestLink, tapName } from '../../src/net/addressing.js';
import { createHostNetwork, type HostNetwork } from '../../src/net/host-network.js';

const ns = `hangar-test-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const sh = (cmd: string, args: string[]) => execFileSync(cmd, args, { encoding: 'utf8' });
const inNs = (cmd: string, ...args: string[]) => sh('ip', ['netns', 'exec', ns, cmd, ...args]);
let net: HostNetwork;

beforeAll(() => {
  expect(process.getuid?.(), 'network tests need root (netns, taps, nft)').toBe(0);
  sh('ip', ['netns', 'add', ns]);
  // A stand-in uplink (a veth: this kernel has no dummy driver); it carries nothing, it only gives masquerade an interface to name.
  sh('ip', ['-n', ns, 'link', 'add', 'uplink0', 'type', 'veth', 'peer', 'name', 'uplink0-peer']);
  net = createHostNetwork({ netns: ns, range: '10.213.0.0/16', mtu: 1400 });
});

afterAll(() => {
  sh('ip', ['netns', 'del', ns]);
  expect(sh('ip', ['netns', 'list'])).not.toContain(ns);
});

interface Link {
  ifname: string;
  mtu: number;
  flags: string[];
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}
const linkInfo = (name: string) => (JSON.parse(sh('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', name])) as Link[])[0]!;

describe('host network in a namespace', () => {
  test('createTap: named from the VM id, its /30 on the host side, link up, MTU set, owned', async () => {
    const t = await net.createTap({ vmId: 'job-42', index: 3, user: 'nobody' });
    expect(t).toEqual({
      tap: tapName('job-42'),
      mac: expect.stringMatching(/^02(:[0-9a-f]{2}){5}$/),
      hostIp: '10.213.0.13',
      guestIp: '10.213.0.14',
      prefixLen: 30,
      gateway: '10.213.0.13',
      dns: ['1.1.1.1', '9.9.9.9'],
      mtu: 1400,
    });
    expect(t.tap.length).toBeLessThanOrEqual(15);
    const link = linkInfo(t.tap);
    expect(link.flags).toContain('UP');
    expect(link.mtu).toBe(1400);
    expect(link.addr_info.filter((a) => a.family === 'inet')).toEqual([expect.objectContaining({ local: '10.213.0.13', prefixlen: 30 })]);
    // ip netns exec mounts the namespace's own /sys.
    expect(inNs('cat', `/sys/class/net/${t.tap}/owner`).trim()).toBe(sh('id', ['-u', 'nobody']).trim());
  });

  test('createTap twice converges on one tap with one address', async () => {
    const a = await net.createTap({ vmId: 'job-again', index: 5 });
    const b = await net.createTap({ vmId: 'job-again', index: 5 });
    expect(b).toEqual(a);
    expect(linkInfo(a.tap).addr_info.filter((x) => x.family === 'inet')).toHaveLength(1);
  });

  test('listTaps finds Hangar taps only, and destroyTap is idempotent', async () => {
    sh('ip', ['-n', ns, 'tuntap', 'add', 'dev', 'other-tap', 'mode', 'tap']);
    expect(await net.listTaps()).toEqual([tapName('job-42'), tapName('job-again')].sort());
    for (const name of await net.listTaps()) await net.destroyTap(name);
    await net.destroyTap(tapName('job-42'));
    expect(await net.listTaps()).toEqual([]);
    expect(sh('ip', ['-n', ns, '-o', 'link', 'show'])).toContain('other-tap');
    await expect(net.destroyTap('other-tap')).rejects.toThrow(/not a Hangar tap/);
  });

  test('ensureEgress: forwarding on, table inet hangar with masquerade for the range', async () => {
    await net.ensureEgress({ outInterface: 'uplink0' });
    await net.ensureEgress({ outInterface: 'uplink0' }); // replaces, never duplicates
    expect(inNs('sysctl', '-n', 'net.ipv4.ip_forward').trim()).toBe('1');
    const text = inNs('nft', 'list', 'table', 'inet', 'hangar');
    expect(text).toMatch(/type nat hook postrouting priority srcnat; policy accept;/);
    expect(text.match(/masquerade/g)).toHaveLength(1);
    expect(text).toContain('ip saddr 10.213.0.0/16 ip daddr != 10.213.0.0/16 oifname "uplink0" masquerade');
    const json = JSON.parse(inNs('nft', '-j', 'list', 'table', 'inet', 'hangar')) as { nftables: Array<Record<string, any>> };
    const rules = json.nftables.filter((o) => o.rule).map((o) => o.rule);
    expect(rules).toHaveLength(1);
    expect(rules[0].expr.some((e: Record<string, unknown>) => 'masquerade' in e)).toBe(true);
  });

  test('the isolation seam: extra chains land in the same table', async () => {
    const forward = 'chain forward {\n  type filter hook forward priority filter; policy accept;\n  iifname "hg-*" counter\n}';
    await net.ensureEgress({ outInterface: 'uplink0', chains: [forward] });
    expect(inNs('nft', 'list', 'chain', 'inet', 'hangar', 'forward')).toContain('iifname "hg-*" counter');
  });

  test('removeEgress removes the table and is idempotent; nothing of Hangar remains', async () => {
    await net.removeEgress();
    await net.removeEgress();
    expect(inNs('nft', 'list', 'tables')).not.toContain('hangar');
    expect(await net.listTaps()).toEqual([]);
  });
});

describe('addressing', () => {
  test.each([
    ['10.213.0.0/16', 0, { subnet: '10.213.0.0/30', hostIp: '10.213.0.1', guestIp: '10.213.0.2' }],
    ['10.213.0.0/16', 64, { subnet: '10.213.1.0/30', hostIp: '10.213.1.1', guestIp: '10.213.1.2' }],
    ['10.213.0.0/16', 16383, { subnet: '10.213.255.252/30', hostIp: '10.213.255.253', guestIp: '10.213.255.254' }],
  ])('%s #%i', (range, index, want) => expect(guestLink(range, index)).toMatchObject({ ...want, prefixLen: 30 }));

  test.each([
    ['10.213.0.0/16', 16384, /outside/],
    ['10.213.0.0/16', -1, /outside/],
    ['10.213.0.1/16', 0, /host bits/],
    ['10.213.0.0/31', 0, /room for 0/],
  ])('%s #%i is refused', (range, index, err) => expect(() => guestLink(range, index)).toThrow(err));
});
