/**
 * Guest isolation as typed data, rendered into Hangar's one nft table `inet hangar`. Pure: the
 * table's text comes from here (through renderEgressRuleset's `chains` seam, so the masquerade
 * and the atomic replacement stay in one place); isolation-apply.ts loads it.
 *
 * Only packets in or out of a `hg-*` interface are judged. Every base chain has policy accept
 * and sends a packet into Hangar's regular chains only when it names a Hangar tap, so the
 * host's other traffic never meets a drop from this table. What a guest may do:
 *   - IPv4 only, from its own address only (tap . guest IP in @guests; an unknown tap sends nothing);
 *   - at most `newConnPerSecond` new connections a second (per source, after anti-spoofing);
 *   - to the host: its own gateway's metadata port (tcp) and DNS port (udp, tcp), nothing else;
 *   - out: never to another guest, never DNS (53, 853) past the gateway, production CIDRs on a
 *     deploy host, never a private/special range, then its egress mode (@egress: internet, or an
 *     allow set filled by the DNS forwarder);
 *   - in: nothing new, from anywhere (host included).
 * Every verdict has a named counter. Every attempt a deny chain refuses is kept in @denied
 * (tap . daddr . proto . dport, with a packet counter): a bounded log in the kernel, no daemon.
 * Spoofed, IPv6 and over-rate packets are only counted: their addresses are the sender's to
 * choose, and logging them would let one guest fill the log. The rate limit is judged before
 * any deny chain, so a guest adds at most `newConnPerSecond` new log lines a second.
 */
import { HangarError } from '../domain/errors.js';
import { intToIp, parseCidr, type Cidr } from './addressing.js';
import { renderEgressRuleset } from './egress-ruleset.js';

export type HostRole = 'build' | 'deploy';

export interface IsolationHost {
  /** The VMs' range, e.g. 10.213.0.0/16 (every /30 link is cut from it). */
  range: string;
  /** The per-VM metadata endpoint's TCP port on each gateway address. */
  metadataPort: number;
  /** The DNS forwarder's port (udp and tcp) on each gateway address; 53 when absent. */
  dnsPort?: number;
  role: HostRole;
  /** Deploy host only: networks a guest may reach although they are private. Refused on a build host. */
  productionCidrs?: string[];
  /** New connections a second per guest (burst the same); 50 when absent. */
  newConnPerSecond?: number;
  /** Allow sets (nft set names `allow_…`) the host's allowlist pools use; each gets a set and a chain. */
  allowSets?: string[];
  /** Masquerade only out of this interface (the uplink). */
  outInterface?: string;
  /** Bound of the denied-attempt log (elements); 65536 when absent. */
  deniedSize?: number;
  /** How long a denied attempt stays in the log after its last packet; 3600 s when absent. */
  deniedTimeoutSeconds?: number;
  /** How long an allow-set address stays without a fresh answer from the forwarder; 3600 s when absent. */
  allowTimeoutSeconds?: number;
}

export type IsolationProblem =
  | 'production-on-build-host'
  | 'bad-cidr'
  | 'cidr-overlap'
  | 'bad-port'
  | 'bad-number'
  | 'bad-tap'
  | 'bad-ip'
  | 'bad-set-name'
  | 'bad-interface'
  | 'bad-role'
  | 'unexpected-output';

/** Input the isolation rules cannot be built from. `key` names the offending field (`productionCidrs.1`). */
export class IsolationError extends HangarError {
  constructor(
    readonly problem: IsolationProblem,
    readonly key: string,
    message: string,
  ) {
    super(`isolation-${problem}`, `${key}: ${message}`);
  }
}

/** Ranges no guest may reach (RFC 1918, CGNAT, link-local incl. 169.254.169.254, loopback, "this network", multicast, reserved). */
export const BLOCKED_RANGES = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
] as const;

/** DNS and DNS over TLS/QUIC: a guest's only resolver is its gateway. */
export const DNS_PORTS = [53, 853] as const;

/** One named counter per verdict: `nft -j list counters table inet hangar` reads them all. */
export const VERDICTS = [
  'accept_metadata',
  'accept_dns',
  'accept_production',
  'accept_internet',
  'accept_allowlist',
  'drop_spoof',
  'drop_ipv6',
  'drop_rate',
  'drop_invalid',
  'drop_host',
  'drop_guest',
  'drop_dns',
  'drop_private',
  'drop_allowlist',
  'drop_unassigned',
  'drop_inbound',
] as const;
export type Verdict = (typeof VERDICTS)[number];
export const counterName = (v: Verdict): string => `hangar_${v}`;

export const ALLOW_SET = /^allow_[a-z0-9_]{1,24}$/;
const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/** The host model with every default filled in and every field checked. */
export type CheckedHost = Required<Omit<IsolationHost, 'outInterface'>> & { outInterface?: string };

export function checkHost(host: IsolationHost): CheckedHost {
  if (host.role !== 'build' && host.role !== 'deploy') throw new IsolationError('bad-role', 'role', `${String(host.role)} is not build or deploy`);
  const range = cidr(host.range, 'range');
  const production = host.productionCidrs ?? [];
  if (host.role === 'build' && production.length > 0) {
    throw new IsolationError('production-on-build-host', 'productionCidrs', 'a build host reaches no production network; set role: deploy or remove productionCidrs');
  }
  const prod = production.map((c, i) => ({ key: `productionCidrs.${i}`, c: cidr(c, `productionCidrs.${i}`) }));
  for (const [i, p] of prod.entries()) {
    if (overlaps(p.c, range)) throw new IsolationError('cidr-overlap', p.key, `${production[i]} overlaps the VM range ${host.range}`);
    const other = prod.findIndex((q, j) => j < i && overlaps(p.c, q.c));
    if (other >= 0) throw new IsolationError('cidr-overlap', p.key, `${production[i]} overlaps productionCidrs.${other} (${production[other]})`);
  }
  for (const [i, name] of (host.allowSets ?? []).entries()) {
    if (!ALLOW_SET.test(name)) throw new IsolationError('bad-set-name', `allowSets.${i}`, `${name} is not an allow set name (allow_ then up to 24 of a-z 0-9 _)`);
  }
  if (host.outInterface !== undefined && !IFNAME.test(host.outInterface)) {
    throw new IsolationError('bad-interface', 'outInterface', `${host.outInterface} is not an interface name`);
  }
  return {
    range: host.range,
    metadataPort: port(host.metadataPort, 'metadataPort'),
    dnsPort: port(host.dnsPort ?? 53, 'dnsPort'),
    role: host.role,
    productionCidrs: production,
    newConnPerSecond: count(host.newConnPerSecond ?? 50, 'newConnPerSecond', 1_000_000),
    allowSets: [...new Set(host.allowSets ?? [])],
    ...(host.outInterface !== undefined ? { outInterface: host.outInterface } : {}),
    deniedSize: count(host.deniedSize ?? 65536, 'deniedSize', 1 << 20),
    deniedTimeoutSeconds: count(host.deniedTimeoutSeconds ?? 3600, 'deniedTimeoutSeconds', 7 * 86400),
    allowTimeoutSeconds: count(host.allowTimeoutSeconds ?? 3600, 'allowTimeoutSeconds', 7 * 86400),
  };
}

function cidr(value: string, key: string): Cidr {
  try {
    return parseCidr(value);
  } catch (err) {
    throw new IsolationError('bad-cidr', key, (err as Error).message);
  }
}

function overlaps(a: Cidr, b: Cidr): boolean {
  const len = Math.min(a.prefixLen, b.prefixLen);
  const net = (c: Cidr) => Math.floor(c.base / 2 ** (32 - len));
  return net(a) === net(b);
}

function port(n: number, key: string): number {
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new IsolationError('bad-port', key, `${n} is not a port (1-65535)`);
  return n;
}

function count(n: number, key: string, max: number): number {
  if (!Number.isInteger(n) || n < 1 || n > max) throw new IsolationError('bad-number', key, `${n} is not a whole number from 1 to ${max}`);
  return n;
}

/** `a, b, c` for an anonymous set. */
const list = (xs: readonly (string | number)[]) => xs.join(', ');
/** A checked CIDR as nft prints it back. */
const norm = (c: string) => {
  const { base, prefixLen } = parseCidr(c);
  return `${intToIp(base)}/${prefixLen}`;
};

/** The whole table: masquerade (egress-ruleset.ts) plus the isolation blocks, as one atomic replacement. */
export function renderIsolationRuleset(host: IsolationHost): string {
  const h = checkHost(host);
  return renderEgressRuleset({ range: h.range, ...(h.outInterface ? { outInterface: h.outInterface } : {}), chains: renderIsolationBlocks(h) });
}

/** The table-level blocks (counters, sets, maps, chains) the isolation adds to `inet hangar`. */
export function renderIsolationBlocks(host: IsolationHost): string[] {
  const h = checkHost(host);
  return [...VERDICTS.map((v) => `counter ${counterName(v)} {}`), ...renderSets(h), ...renderBaseChains(h), ...renderGuestChains(h), ...renderVerdictChains()];
}

function renderSets(h: CheckedHost): string[] {
  return [
    // Filled per VM (isolation-elements.ts); a tap that is in none of them can send nothing.
    block('set guests', ['type ifname . ipv4_addr']),
    block('set gateways', ['type ifname . ipv4_addr']),
    block('map egress', ['type ifname : verdict']),
    // Keyed by source after anti-spoofing, so one guest is one key; idle keys age out.
    block('set rate', ['type ipv4_addr', 'flags dynamic,timeout', 'timeout 1m', 'size 65536']),
    // The egress log: one element per tap, destination, protocol and port, with a packet
    // counter; `update` refreshes its timeout, so expiry tells when it was last tried.
    block('set denied', [
      'type ifname . ipv4_addr . inet_proto . inet_service',
      'flags dynamic,timeout',
      `timeout ${h.deniedTimeoutSeconds}s`,
      `size ${h.deniedSize}`,
      'counter',
    ]),
    ...h.allowSets.map((s) => block(`set ${s}`, ['type ipv4_addr', 'flags timeout', `timeout ${h.allowTimeoutSeconds}s`])),
  ];
}

function renderBaseChains(h: CheckedHost): string[] {
  const n = h.newConnPerSecond;
  return [
    // Before conntrack (raw): a spoofed or IPv6 flood never creates a conntrack entry.
    block('chain prerouting', ['type filter hook prerouting priority raw; policy accept;', 'iifname "hg-*" jump from_tap']),
    block('chain prerouting_new', [
      'type filter hook prerouting priority mangle; policy accept;',
      `iifname "hg-*" ct state new update @rate { ip saddr limit rate over ${n}/second burst ${n} packets } counter name ${counterName('drop_rate')} drop`,
    ]),
    block('chain input', ['type filter hook input priority filter; policy accept;', 'iifname "hg-*" jump guest_to_host']),
    block('chain forward', [
      'type filter hook forward priority filter; policy accept;',
      `oifname "hg-*" meta nfproto ipv6 counter name ${counterName('drop_ipv6')} drop`,
      'iifname "hg-*" jump guest_out',
      'oifname "hg-*" jump guest_in',
    ]),
    block('chain output', ['type filter hook output priority filter; policy accept;', 'oifname "hg-*" jump host_to_guest']),
  ];
}

function renderGuestChains(h: CheckedHost): string[] {
  const prod = h.productionCidrs.map(norm);
  return [
    block('chain from_tap', [
      `meta nfproto ipv6 counter name ${counterName('drop_ipv6')} drop`,
      `iifname . ip saddr != @guests counter name ${counterName('drop_spoof')} drop`,
    ]),
    block('chain guest_to_host', [
      'ct state established,related accept',
      `ct state invalid counter name ${counterName('drop_invalid')} drop`,
      `iifname . ip daddr @gateways tcp dport ${h.metadataPort} counter name ${counterName('accept_metadata')} accept`,
      `iifname . ip daddr @gateways meta l4proto { tcp, udp } th dport ${h.dnsPort} counter name ${counterName('accept_dns')} accept`,
      'jump deny_host',
    ]),
    block('chain guest_out', [
      'ct state established,related accept',
      `ct state invalid counter name ${counterName('drop_invalid')} drop`,
      'oifname "hg-*" jump deny_guest',
      `ip daddr ${norm(h.range)} jump deny_guest`,
      `meta l4proto { tcp, udp } th dport { ${list(DNS_PORTS)} } jump deny_dns`,
      ...(prod.length ? [`ip daddr { ${list(prod)} } counter name ${counterName('accept_production')} accept`] : []),
      `ip daddr { ${list(BLOCKED_RANGES)} } jump deny_private`,
      'iifname vmap @egress',
      'jump deny_unassigned',
    ]),
    block('chain guest_in', ['ct state established,related accept', `counter name ${counterName('drop_inbound')} drop`]),
    // The host's own replies and ICMP errors (rejects) are established/related or untracked,
    // never new: only a connection the host would open into a guest is stopped here.
    block('chain host_to_guest', [`meta nfproto ipv6 counter name ${counterName('drop_ipv6')} drop`, `ct state new counter name ${counterName('drop_inbound')} drop`]),
    block('chain egress_internet', [`counter name ${counterName('accept_internet')} accept`]),
    ...h.allowSets.map((s) => block(`chain ${s}`, [`ip daddr @${s} counter name ${counterName('accept_allowlist')} accept`, 'jump deny_allowlist'])),
  ];
}

/**
 * One chain per deny verdict: log the attempt, count it, refuse tcp and udp so jobs fail fast,
 * drop the rest. TCP gets a reset, not an ICMP error: the kernel rate-limits ICMP errors per
 * destination (icmp_ratelimit 1 s, burst 6), so a guest's seventh refused connect within a
 * second would wait for a SYN retransmit; resets are not limited (measured in
 * test/net/isolation-packets.test.ts). UDP has no retransmit to wait for, so ICMP serves.
 */
function renderVerdictChains(): string[] {
  const deny = (v: Verdict) => [
    // A separate rule: when @denied is full, `update` ends its rule, and the verdict below must still run.
    'meta l4proto { tcp, udp } update @denied { iifname . ip daddr . meta l4proto . th dport }',
    'meta l4proto != { tcp, udp } update @denied { iifname . ip daddr . meta l4proto . 0 }',
    `meta l4proto tcp counter name ${counterName(v)} reject with tcp reset`,
    `meta l4proto udp counter name ${counterName(v)} reject with icmpx admin-prohibited`,
    `counter name ${counterName(v)} drop`,
  ];
  const chains: Array<[string, Verdict]> = [
    ['deny_host', 'drop_host'],
    ['deny_guest', 'drop_guest'],
    ['deny_dns', 'drop_dns'],
    ['deny_private', 'drop_private'],
    ['deny_allowlist', 'drop_allowlist'],
    ['deny_unassigned', 'drop_unassigned'],
  ];
  return chains.map(([name, v]) => block(`chain ${name}`, deny(v)));
}

function block(head: string, lines: string[]): string {
  return [`${head} {`, ...lines.map((l) => `  ${l}`), '}'].join('\n');
}
