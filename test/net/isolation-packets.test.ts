/**
 * The isolation table judged by real packets, as root, in namespaces this test makes:
 *
 *   guest-a ─ hg-A ┐                                  ┌ 198.51.100.20:80, .21:80, :53/udp, :853, :9/udp
 *   guest-b ─ hg-B ┴ host ─ up0 ── lan0 ─ lan ─ wan0 ── internet (203.0.113.254)
 *       (table inet hangar,      192.168.50.1 router, .10 web, 169.254.169.254, prod 10.50.0.10,
 *        metadata :9100, DNS :53, "redis" :6379)   masquerade out to the internet
 *
 * Guest links are veth pairs named like taps (`hg-<12 hex>`); nothing of this exists in the
 * machine's own namespace and no packet leaves the namespaces made here.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { guestLink, tapName } from '../../src/net/addressing.js';
import type { IsolationHost } from '../../src/net/isolation.js';
import type { VmElement } from '../../src/net/isolation-elements.js';
import { createIsolation, type Isolation } from '../../src/net/isolation-apply.js';
import { Namespaces } from '../helpers/netns.js';

interface Probe {
  kind: 'tcp' | 'udp';
  host: string;
  port: number;
  timeoutMs?: number;
  bind?: string;
  /** udp: a datagram this large (sent in fragments). */
  size?: number;
}
interface Result {
  outcome: 'open' | 'reply' | 'refused' | 'unreachable' | 'timeout' | 'error';
  code?: string;
  ms: number;
  data?: string;
}

const RANGE = '10.213.0.0/16';
const linkA = guestLink(RANGE, 0);
const linkB = guestLink(RANGE, 1);
const tapA = tapName('packets-guest-a');
const tapB = tapName('packets-guest-b');
const vmA: VmElement = { tap: tapA, guestIp: linkA.guestIp, gatewayIp: linkA.hostIp, egress: 'internet' };
const vmB: VmElement = { tap: tapB, guestIp: linkB.guestIp, gatewayIp: linkB.hostIp, egress: 'internet' };
const build: IsolationHost = { range: RANGE, metadataPort: 9100, role: 'build', outInterface: 'up0' };

const world = new Namespaces();
let ns: { host: string; a: string; b: string; lan: string; inet: string };
let iso: Isolation;

const probe = (where: string, ...probes: Probe[]) => world.tool<Result[]>(where, 'probe', probes);
const tcp = (host: string, port: number, extra: Partial<Probe> = {}): Probe => ({ kind: 'tcp', host, port, ...extra });
const udp = (host: string, port: number, extra: Partial<Probe> = {}): Probe => ({ kind: 'udp', host, port, ...extra });
const counters = () => iso.counters();

beforeAll(async () => {
  expect(process.getuid?.(), 'packet tests need root (netns, veth, nft)').toBe(0);
  ns = { host: world.add('host'), a: world.add('ga'), b: world.add('gb'), lan: world.add('lan'), inet: world.add('inet') };
  world.link({ ns: ns.host, dev: tapA, addrs: [`${linkA.hostIp}/30`, 'fd00:213::1/64'] }, { ns: ns.a, dev: 'eth0', addrs: [`${linkA.guestIp}/30`, 'fd00:213::2/64'] });
  world.link({ ns: ns.host, dev: tapB, addrs: [`${linkB.hostIp}/30`] }, { ns: ns.b, dev: 'eth0', addrs: [`${linkB.guestIp}/30`] });
  world.link({ ns: ns.host, dev: 'up0', addrs: ['192.168.50.2/24'] }, { ns: ns.lan, dev: 'lan0', addrs: ['192.168.50.1/24', '192.168.50.10/24', '169.254.169.254/32', '10.50.0.10/24'] });
  world.link({ ns: ns.lan, dev: 'wan0', addrs: ['203.0.113.1/24'] }, { ns: ns.inet, dev: 'inet0', addrs: ['203.0.113.254/24', '198.51.100.20/24', '198.51.100.21/24'] });
  world.ip(ns.a, 'route', 'add', 'default', 'via', linkA.hostIp);
  world.ip(ns.b, 'route', 'add', 'default', 'via', linkB.hostIp);
  world.ip(ns.host, 'route', 'add', 'default', 'via', '192.168.50.1');
  world.ip(ns.lan, 'route', 'add', 'default', 'via', '203.0.113.254');
  world.ip(ns.lan, 'route', 'add', RANGE, 'via', '192.168.50.2');
  world.sysctl(ns.lan, 'net.ipv4.ip_forward=1');
  // The host routes its guests (the agent's host network turns this on): not left to whatever a
  // new namespace inherits from the machine's own (IPv4 settings are copied from it).
  world.sysctl(ns.host, 'net.ipv4.ip_forward=1');
  // The house router's own NAT (its table, in its namespace): the internet sees 203.0.113.1.
  world.nft(ns.lan, 'table ip lan {\n chain post {\n type nat hook postrouting priority srcnat;\n oifname "wan0" masquerade\n }\n}\n');

  await Promise.all([
    world.serve(ns.host, [
      { proto: 'tcp', port: 9100, reply: 'metadata' },
      { proto: 'tcp', port: 9100, host: '::', reply: 'metadata6' },
      { proto: 'tcp', port: 53, reply: 'dns-tcp' },
      { proto: 'udp', port: 53, reply: 'dns-udp' },
      { proto: 'tcp', port: 6379, reply: 'redis' },
    ]),
    world.serve(ns.lan, [
      { proto: 'tcp', port: 80, host: '192.168.50.1', reply: 'router' },
      { proto: 'tcp', port: 80, host: '192.168.50.10', reply: 'web' },
      { proto: 'tcp', port: 80, host: '169.254.169.254', reply: 'metadata-service' },
      { proto: 'tcp', port: 80, host: '10.50.0.10', reply: 'prod' },
      { proto: 'udp', port: 53, host: '192.168.50.10', reply: 'pihole' },
    ]),
    world.serve(ns.inet, [
      { proto: 'tcp', port: 80, host: '198.51.100.20', reply: 'internet' },
      { proto: 'tcp', port: 80, host: '198.51.100.21', reply: 'internet-21' },
      // Bound to the address asked: a wildcard UDP socket would answer from 203.0.113.254.
      { proto: 'udp', port: 53, host: '198.51.100.20', reply: 'public-dns' },
      { proto: 'tcp', port: 853, host: '198.51.100.20', reply: 'dot' },
      { proto: 'udp', port: 9, host: '198.51.100.20', reply: 'echo' },
    ]),
    world.serve(ns.a, [{ proto: 'tcp', port: 80, reply: 'guest-a' }]),
    world.serve(ns.b, [{ proto: 'tcp', port: 80, reply: 'guest-b' }]),
  ]);

  // Before the table: the world really is open (the test would prove nothing otherwise).
  const before = probe(ns.a, tcp('192.168.50.10', 80), tcp('169.254.169.254', 80), tcp(linkA.hostIp, 6379));
  expect(before.map((r) => r.data)).toEqual(['web', 'metadata-service', 'redis']);

  iso = createIsolation({ netns: ns.host });
  await iso.apply(build, [vmA, vmB]);
}, 60_000);

afterAll(() => {
  const left = world.dispose();
  expect(left).toEqual([]);
  expect(world.remaining()).toEqual([]);
});

/** Every TCP probe refused at once (a reset from the host's reject), never left to hang. */
function expectFastRefusal(results: Result[]): void {
  for (const r of results) {
    expect(r.outcome).toBe('refused');
    expect(r.ms).toBeLessThan(500);
  }
}

describe('build host: outbound only', () => {
  test('a guest reaches the internet; the host and the LAN keep their own traffic', () => {
    expect(probe(ns.a, tcp('198.51.100.20', 80))[0]).toMatchObject({ outcome: 'open', data: 'internet' });
    expect(probe(ns.b, tcp('198.51.100.20', 80))[0]).toMatchObject({ outcome: 'open', data: 'internet' });
    // Policy accept everywhere but on hg-* links: the host's own and the LAN's traffic passes.
    expect(probe(ns.host, tcp('198.51.100.20', 80), tcp('192.168.50.10', 80)).map((r) => r.data)).toEqual(['internet', 'web']);
    expect(probe(ns.lan, tcp('192.168.50.2', 6379))[0]).toMatchObject({ outcome: 'open', data: 'redis' });
  });

  test("a guest's own gateway answers on the metadata port and DNS (udp and tcp)", () => {
    const [meta, dnsUdp, dnsTcp] = probe(ns.a, tcp(linkA.hostIp, 9100), udp(linkA.hostIp, 53), tcp(linkA.hostIp, 53));
    expect(meta).toMatchObject({ outcome: 'open', data: 'metadata' });
    expect(dnsUdp).toMatchObject({ outcome: 'reply', data: 'dns-udp' });
    expect(dnsTcp).toMatchObject({ outcome: 'open', data: 'dns-tcp' });
  });

  test('the LAN, its router, 169.254.169.254, prod, the host and the other guest are refused at once', async () => {
    const before = await counters();
    const results = probe(
      ns.a,
      tcp('192.168.50.10', 80),
      tcp('192.168.50.1', 80),
      tcp('169.254.169.254', 80),
      tcp('10.50.0.10', 80),
      tcp(linkA.hostIp, 6379), // the host's "redis" on the guest's own gateway
      tcp(linkB.hostIp, 9100), // another guest's gateway: a host address, not this guest's
      tcp('192.168.50.2', 9100), // the host's LAN address
      tcp(linkB.guestIp, 80), // the other guest
    );
    expectFastRefusal(results);
    const after = await counters();
    expect(after.drop_private.packets - before.drop_private.packets).toBe(4);
    expect(after.drop_host.packets - before.drop_host.packets).toBe(3);
    expect(after.drop_guest.packets - before.drop_guest.packets).toBe(1);
  });

  test('DNS to anything but the gateway is refused (53 udp/tcp, 853)', async () => {
    const before = await counters();
    const [pub, dot, pihole] = probe(ns.a, udp('198.51.100.20', 53), tcp('198.51.100.20', 853), udp('192.168.50.10', 53));
    expect(pub!.outcome).not.toBe('reply');
    expect(pihole!.outcome).not.toBe('reply');
    expectFastRefusal([dot!]);
    expect((await counters()).drop_dns.packets - before.drop_dns.packets).toBe(3);
  });

  test('nothing new into a guest: not from the LAN, not from the host', async () => {
    const before = await counters();
    expect(probe(ns.lan, tcp(linkB.guestIp, 80, { timeoutMs: 1000 }))[0]!.outcome).toBe('timeout');
    expect(probe(ns.host, tcp(linkA.guestIp, 80, { timeoutMs: 1000 }))[0]!.outcome).not.toBe('open');
    expect((await counters()).drop_inbound.packets - before.drop_inbound.packets).toBeGreaterThanOrEqual(2);
  });

  test("a guest sending from another guest's address gets nothing through", async () => {
    const before = await counters();
    world.ip(ns.a, 'addr', 'add', `${linkB.guestIp}/32`, 'dev', 'eth0');
    try {
      const [spoofed] = probe(ns.a, tcp('198.51.100.20', 80, { bind: linkB.guestIp, timeoutMs: 1000 }));
      expect(spoofed!.outcome).toBe('timeout');
    } finally {
      world.ip(ns.a, 'addr', 'del', `${linkB.guestIp}/32`, 'dev', 'eth0');
    }
    expect((await counters()).drop_spoof.packets - before.drop_spoof.packets).toBeGreaterThanOrEqual(1);
  });

  test('no IPv6 from a guest, none to it', async () => {
    const before = await counters();
    expect(probe(ns.a, tcp('fd00:213::1', 9100, { timeoutMs: 1000 }))[0]!.outcome).toBe('timeout');
    expect(probe(ns.host, tcp('fd00:213::2', 80, { timeoutMs: 1000 }))[0]!.outcome).not.toBe('open');
    expect((await counters()).drop_ipv6.packets - before.drop_ipv6.packets).toBeGreaterThanOrEqual(2);
  });

  test('the egress log holds each blocked attempt with its tap, destination, protocol and port', async () => {
    const log = await iso.denied(tapA);
    const keys = log.map((l) => `${l.tap} ${l.proto} ${l.daddr}:${l.dport}`);
    for (const want of [
      `tcp 192.168.50.10:80`,
      `tcp 192.168.50.1:80`,
      `tcp 169.254.169.254:80`,
      `tcp 10.50.0.10:80`,
      `tcp ${linkA.hostIp}:6379`,
      `tcp ${linkB.hostIp}:9100`,
      `tcp 192.168.50.2:9100`,
      `tcp ${linkB.guestIp}:80`,
      `udp 198.51.100.20:53`,
      `tcp 198.51.100.20:853`,
      `udp 192.168.50.10:53`,
    ]) {
      expect(keys).toContain(`${tapA} ${want}`);
    }
    expect(log.every((l) => l.packets >= 1 && l.lastSeenSecondsAgo < 60)).toBe(true);
    // Allowed traffic and other guests' attempts are not in this guest's log.
    expect(keys.some((k) => k.includes('198.51.100.20:80'))).toBe(false);
    expect(await iso.denied(tapB)).toEqual([]);
    // A second attempt is counted on the same line, not a new one.
    const line = log.find((l) => l.daddr === '192.168.50.10' && l.dport === 80)!;
    probe(ns.a, tcp('192.168.50.10', 80));
    const again = (await iso.denied(tapA)).filter((l) => l.daddr === '192.168.50.10' && l.dport === 80);
    expect(again).toHaveLength(1);
    expect(again[0]!.packets).toBe(line.packets + 1);
    expect((await iso.denied()).length).toBe(log.length);
  });
});

describe('convergence and bad input', () => {
  test('a fragmented datagram is judged whole (reassembled before Hangar\'s chains)', async () => {
    const [out, blocked] = probe(ns.a, udp('198.51.100.20', 9, { size: 4000 }), udp('192.168.50.10', 9, { size: 4000 }));
    expect(out).toMatchObject({ outcome: 'reply', data: 'echo' });
    expect(blocked!.outcome).not.toBe('reply');
    const line = (await iso.denied(tapA)).find((l) => l.daddr === '192.168.50.10' && l.dport === 9);
    expect(line).toMatchObject({ proto: 'udp', packets: 1 });
    expect(line!.bytes).toBeGreaterThan(4000);
  });

  test('applying again (an agent restarted after kill -9) converges on the same table and elements', async () => {
    const stateless = () => world.exec(ns.host, 'nft', ['-s', 'list', 'table', 'inet', 'hangar']);
    await iso.apply(build, [vmA, vmB]);
    const first = stateless();
    expect(first).not.toMatch(/set denied \{[^}]*elements/); // a new table starts with an empty log
    await iso.apply(build, [vmA, vmB]);
    expect(stateless()).toBe(first);
    expect((await iso.listVms()).map((v) => v.tap).sort()).toEqual([tapA, tapB].sort());
    expect(probe(ns.a, tcp('198.51.100.20', 80))[0]).toMatchObject({ outcome: 'open' });
  });
});

describe('limits', () => {
  test('new connections beyond the per-guest rate are dropped', async () => {
    await iso.apply({ ...build, newConnPerSecond: 5 }, [vmA, vmB]);
    try {
      const { sent, replies } = world.tool<{ sent: number; replies: number }>(ns.a, 'burst', { host: '198.51.100.20', port: 9, count: 60, timeoutMs: 1000 });
      expect(sent).toBe(60);
      expect(replies).toBeGreaterThanOrEqual(5);
      expect(replies).toBeLessThan(20);
      expect((await counters()).drop_rate.packets).toBeGreaterThanOrEqual(40);
      // The other guest has its own budget.
      expect(probe(ns.b, tcp('198.51.100.20', 80))[0]).toMatchObject({ outcome: 'open' });
    } finally {
      await iso.apply(build, [vmA, vmB]);
    }
  });

  test('a full egress log stops growing, and blocking goes on', async () => {
    await iso.apply({ ...build, deniedSize: 3 }, [vmA, vmB]);
    try {
      const ports = [81, 82, 83, 84, 85, 86];
      expectFastRefusal(probe(ns.a, ...ports.map((p) => tcp('192.168.50.10', p))));
      expect((await iso.denied()).length).toBe(3);
      expect((await counters()).drop_private.packets).toBe(6);
    } finally {
      await iso.apply(build, [vmA, vmB]);
    }
  });
});

describe('deploy host', () => {
  test('prod answers; everything else stays refused', async () => {
    await iso.apply({ ...build, role: 'deploy', productionCidrs: ['10.50.0.0/24'] }, [vmA, vmB]);
    try {
      const [prod, web, meta, net] = probe(ns.a, tcp('10.50.0.10', 80), tcp('192.168.50.10', 80), tcp('169.254.169.254', 80), tcp('198.51.100.20', 80));
      expect(prod).toMatchObject({ outcome: 'open', data: 'prod' });
      expect(net).toMatchObject({ outcome: 'open', data: 'internet' });
      expectFastRefusal([web!, meta!]);
      expect((await counters()).accept_production.packets).toBe(1);
    } finally {
      await iso.apply(build, [vmA, vmB]);
    }
  });
});

describe('allowlist egress', () => {
  test('only addresses in the allow set get out, once they are added', async () => {
    const host: IsolationHost = { ...build, allowSets: ['allow_ci'] };
    const vmAllow: VmElement = { ...vmA, egress: { allowSet: 'allow_ci' } };
    await iso.apply(host, [vmAllow, vmB]);
    try {
      expectFastRefusal(probe(ns.a, tcp('198.51.100.20', 80)));
      await iso.allow('allow_ci', ['198.51.100.20'], 60);
      const [listed, unlisted] = probe(ns.a, tcp('198.51.100.20', 80), tcp('198.51.100.21', 80));
      expect(listed).toMatchObject({ outcome: 'open', data: 'internet' });
      expectFastRefusal([unlisted!]);
      // The internet guest next door is not bound by another pool's list.
      expect(probe(ns.b, tcp('198.51.100.21', 80))[0]).toMatchObject({ outcome: 'open', data: 'internet-21' });
      const c = await counters();
      expect(c.drop_allowlist.packets).toBe(2);
      expect(c.accept_allowlist.packets).toBe(1);
      const log = (await iso.denied(tapA)).map((l) => `${l.daddr}:${l.dport}`).sort();
      expect(log).toEqual(['198.51.100.20:80', '198.51.100.21:80']);
      // The private ranges are refused before the allow set is looked at.
      await iso.allow('allow_ci', ['192.168.50.10']);
      expectFastRefusal(probe(ns.a, tcp('192.168.50.10', 80)));
    } finally {
      await iso.apply(build, [vmA, vmB]);
    }
  });
});

describe('per-VM elements at run time', () => {
  test('removeVm cuts a tap off, addVm lets it back; both converge', async () => {
    await iso.removeVm(tapB);
    await iso.removeVm(tapB);
    expect((await iso.listVms()).map((v) => v.tap)).toEqual([tapA]);
    expect(probe(ns.b, tcp('198.51.100.20', 80, { timeoutMs: 800 }))[0]!.outcome).toBe('timeout');
    await iso.addVm(vmB);
    await iso.addVm(vmB);
    expect(probe(ns.b, tcp('198.51.100.20', 80))[0]).toMatchObject({ outcome: 'open' });
    // A new egress mode for a tap that is there replaces the old one.
    await iso.apply({ ...build, allowSets: ['allow_ci'] }, [vmA, vmB]);
    await iso.addVm({ ...vmB, egress: { allowSet: 'allow_ci' } });
    expect((await iso.listVms()).find((v) => v.tap === tapB)).toEqual({ tap: tapB, guestIps: [linkB.guestIp], gatewayIps: [linkB.hostIp], egress: { allowSet: 'allow_ci' } });
    expectFastRefusal(probe(ns.b, tcp('198.51.100.20', 80)));
  });

  test('clearDenied drops one tap\'s log lines only', async () => {
    await iso.apply(build, [vmA, vmB]);
    probe(ns.a, tcp('192.168.50.10', 80));
    probe(ns.b, tcp('192.168.50.10', 80));
    await iso.clearDenied(tapA);
    await iso.clearDenied(tapA);
    expect(await iso.denied(tapA)).toEqual([]);
    expect((await iso.denied(tapB)).length).toBe(1);
  });

  test('remove leaves nothing, twice; a host without the table lists nothing', async () => {
    await iso.remove();
    await iso.remove();
    expect(world.exec(ns.host, 'nft', ['list', 'tables'])).not.toContain('hangar');
    expect(await iso.listVms()).toEqual([]);
    expect(await iso.denied()).toEqual([]);
    await iso.removeVm(tapA);
  });
});
