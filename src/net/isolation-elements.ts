/**
 * The run-time half of the isolation table: per-VM elements added and deleted with
 * `nft -f -` text (never by re-rendering the table, which would reset every counter and log),
 * and parsers for what `nft -j` prints back. Pure, and tested from captured JSON.
 */
import { ipToInt, parseCidr, TAP_NAME } from './addressing.js';
import { NFT_FAMILY, NFT_TABLE } from './egress-ruleset.js';
import { ALLOW_SET, checkHost, counterName, IsolationError, VERDICTS, type IsolationHost, type Verdict } from './isolation.js';

/** `internet`: any public address; `{ allowSet }`: only the addresses the DNS forwarder put in that set. */
export type Egress = 'internet' | { allowSet: string };

/** One VM as the table knows it. */
export interface VmElement {
  tap: string;
  guestIp: string;
  gatewayIp: string;
  egress: Egress;
}

/** What the table holds for one tap: normally one of each, but a crash may leave a part. */
export interface VmEntries {
  tap: string;
  guestIps: string[];
  gatewayIps: string[];
  egress: Egress | undefined;
}

/** One line of a guest's egress log. `lastSeenSecondsAgo` comes from the refreshed timeout. */
export interface DeniedAttempt {
  tap: string;
  daddr: string;
  /** `tcp`, `udp`, `icmp`… or the protocol number nft has no name for. */
  proto: string;
  /** 0 for protocols without ports. */
  dport: number;
  packets: number;
  bytes: number;
  lastSeenSecondsAgo: number;
}

export interface CounterValue {
  packets: number;
  bytes: number;
}

const T = `${NFT_FAMILY} ${NFT_TABLE}`;
const INTERNET_CHAIN = 'egress_internet';

/** Checks a VM's fields; with `host`, also that its addresses are in the range and its allow set exists. */
export function checkVm(vm: VmElement, host?: IsolationHost): VmElement {
  checkTapName(vm.tap, 'tap');
  checkIp(vm.guestIp, 'guestIp');
  checkIp(vm.gatewayIp, 'gatewayIp');
  if (vm.guestIp === vm.gatewayIp) throw new IsolationError('bad-ip', 'gatewayIp', `the gateway cannot be the guest's own address ${vm.guestIp}`);
  if (vm.egress !== 'internet' && !ALLOW_SET.test(vm.egress.allowSet)) {
    throw new IsolationError('bad-set-name', 'egress.allowSet', `${vm.egress.allowSet} is not an allow set name (allow_ then up to 24 of a-z 0-9 _)`);
  }
  if (host) {
    const h = checkHost(host);
    const { base, prefixLen } = parseCidr(h.range);
    const inRange = (ip: string) => Math.floor(ipToInt(ip) / 2 ** (32 - prefixLen)) === Math.floor(base / 2 ** (32 - prefixLen));
    for (const key of ['guestIp', 'gatewayIp'] as const) {
      if (!inRange(vm[key])) throw new IsolationError('bad-ip', key, `${vm[key]} is outside the VM range ${h.range}`);
    }
    if (vm.egress !== 'internet' && !h.allowSets.includes(vm.egress.allowSet)) {
      throw new IsolationError('bad-set-name', 'egress.allowSet', `${vm.egress.allowSet} is not one of the host's allowSets (${h.allowSets.join(', ') || 'none'})`);
    }
  }
  return vm;
}

export function checkTapName(tap: string, key = 'tap'): void {
  if (!TAP_NAME.test(tap)) throw new IsolationError('bad-tap', key, `${JSON.stringify(tap)} is not a Hangar tap name (hg- and 12 hex digits)`);
}

function checkIp(ip: string, key: string): void {
  try {
    ipToInt(ip);
  } catch {
    throw new IsolationError('bad-ip', key, `${JSON.stringify(ip)} is not an IPv4 address`);
  }
}

const target = (e: Egress) => (e === 'internet' ? INTERNET_CHAIN : e.allowSet);

/** One transaction that lets a VM's tap speak: anti-spoofing pair, its gateway, its egress mode. */
export function renderVmAdd(vm: VmElement, host?: IsolationHost): string {
  const { tap, guestIp, gatewayIp, egress } = checkVm(vm, host);
  return [
    `add element ${T} guests { "${tap}" . ${guestIp} }`,
    `add element ${T} gateways { "${tap}" . ${gatewayIp} }`,
    `add element ${T} egress { "${tap}" : goto ${target(egress)} }`,
    '',
  ].join('\n');
}

export function renderVmRemove(vm: VmElement): string {
  const { tap, guestIp, gatewayIp, egress } = checkVm(vm);
  return renderEntriesRemove({ tap, guestIps: [guestIp], gatewayIps: [gatewayIp], egress });
}

/** Deletes exactly the listed entries (one transaction: nft fails it whole if one is missing). */
export function renderEntriesRemove(e: VmEntries): string {
  checkTapName(e.tap, 'tap');
  e.guestIps.forEach((ip, i) => checkIp(ip, `guestIps.${i}`));
  e.gatewayIps.forEach((ip, i) => checkIp(ip, `gatewayIps.${i}`));
  return [
    ...e.guestIps.map((ip) => `delete element ${T} guests { "${e.tap}" . ${ip} }`),
    ...e.gatewayIps.map((ip) => `delete element ${T} gateways { "${e.tap}" . ${ip} }`),
    ...(e.egress ? [`delete element ${T} egress { "${e.tap}" }`] : []),
    '',
  ].join('\n');
}

/** Addresses for an allow set, as the DNS forwarder would add them (tests, static entries). */
export function renderAllowAdd(set: string, addrs: string[], timeoutSeconds?: number): string {
  if (!ALLOW_SET.test(set)) throw new IsolationError('bad-set-name', 'set', `${set} is not an allow set name`);
  addrs.forEach((a, i) => checkIp(a, `addrs.${i}`));
  if (timeoutSeconds !== undefined && (!Number.isInteger(timeoutSeconds) || timeoutSeconds < 1)) {
    throw new IsolationError('bad-number', 'timeoutSeconds', `${timeoutSeconds} is not a whole number of seconds`);
  }
  const t = timeoutSeconds === undefined ? '' : ` timeout ${timeoutSeconds}s`;
  return addrs.length ? `add element ${T} ${set} { ${addrs.map((a) => a + t).join(', ')} }\n` : '';
}

/** Deletes log lines (e.g. a finished job's, once read). */
export function renderDeniedRemove(lines: Array<Pick<DeniedAttempt, 'tap' | 'daddr' | 'proto' | 'dport'>>): string {
  lines.forEach((l, i) => {
    checkTapName(l.tap, `lines.${i}.tap`);
    checkIp(l.daddr, `lines.${i}.daddr`);
    if (!/^[a-z0-9-]{1,16}$/.test(l.proto)) throw new IsolationError('bad-number', `lines.${i}.proto`, `${l.proto} is not a protocol`);
  });
  return lines.length ? `delete element ${T} denied { ${lines.map((l) => `"${l.tap}" . ${l.daddr} . ${l.proto} . ${l.dport}`).join(', ')} }\n` : '';
}

// ---- parsers of `nft -j` ----

type Json = Record<string, unknown>;

function objects(json: string, kind: string): Json[] {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    throw new IsolationError('unexpected-output', 'nft -j', 'not JSON');
  }
  const items = (doc as { nftables?: unknown }).nftables;
  if (!Array.isArray(items)) throw new IsolationError('unexpected-output', 'nft -j', 'no "nftables" array');
  return items.flatMap((o) => (o && typeof o === 'object' && kind in o ? [(o as Json)[kind] as Json] : []));
}

function bad(what: string): never {
  throw new IsolationError('unexpected-output', 'nft -j', what);
}

/** `nft -j list counters table inet hangar`: every verdict, 0 for a counter the table lacks. */
export function parseCounters(json: string): Record<Verdict, CounterValue> {
  const byName = new Map(objects(json, 'counter').map((c) => [c.name, c]));
  return Object.fromEntries(
    VERDICTS.map((v) => {
      const c = byName.get(counterName(v));
      return [v, { packets: Number(c?.packets ?? 0), bytes: Number(c?.bytes ?? 0) }];
    }),
  ) as Record<Verdict, CounterValue>;
}

/** `nft -j list set inet hangar denied`: the log lines, most packets first. */
export function parseDenied(json: string): DeniedAttempt[] {
  const set = objects(json, 'set')[0] ?? bad('no set');
  const setTimeout = Number(set.timeout ?? 0);
  const elems = (set.elem ?? []) as unknown[];
  return elems
    .map((raw): DeniedAttempt => {
      const e = ((raw as Json).elem as Json | undefined) ?? (raw as Json);
      const key = ((e.val as Json | undefined)?.concat ?? e.concat) as unknown[] | undefined;
      if (!Array.isArray(key) || key.length !== 4) bad('denied element is not tap . daddr . proto . dport');
      const [tap, daddr, proto, dport] = key;
      const counter = (e.counter ?? {}) as Json;
      const timeout = Number(e.timeout ?? setTimeout);
      const expires = Number(e.expires ?? timeout);
      return {
        tap: String(tap),
        daddr: String(daddr),
        proto: String(proto),
        dport: Number(dport),
        packets: Number(counter.packets ?? 0),
        bytes: Number(counter.bytes ?? 0),
        lastSeenSecondsAgo: Math.max(0, timeout - expires),
      };
    })
    .sort((a, b) => b.packets - a.packets || a.tap.localeCompare(b.tap) || a.daddr.localeCompare(b.daddr) || a.dport - b.dport);
}

/** The three per-VM listings (`nft -j list set … guests`, `… gateways`, `nft -j list map … egress`), joined by tap. */
export function parseVmEntries(guests: string, gateways: string, egress: string): VmEntries[] {
  const byTap = new Map<string, VmEntries>();
  const entry = (tap: string) => byTap.get(tap) ?? byTap.set(tap, { tap, guestIps: [], gatewayIps: [], egress: undefined }).get(tap)!;
  const pairs = (json: string, kind: string) =>
    ((objects(json, kind)[0] ?? bad(`no ${kind}`)).elem ?? []) as unknown[];
  for (const [json, field] of [
    [guests, 'guestIps'],
    [gateways, 'gatewayIps'],
  ] as const) {
    for (const raw of pairs(json, 'set')) {
      const key = ((raw as Json).concat ?? ((raw as Json).elem as Json | undefined)?.val) as unknown;
      const concat = Array.isArray(key) ? key : ((key as Json | undefined)?.concat as unknown[] | undefined);
      if (!Array.isArray(concat) || concat.length !== 2) bad(`${field} element is not tap . address`);
      entry(String(concat[0]))[field].push(String(concat[1]));
    }
  }
  for (const raw of pairs(egress, 'map')) {
    if (!Array.isArray(raw) || raw.length !== 2) bad('egress element is not tap : verdict');
    const verdict = raw[1] as Json;
    const chain = String(((verdict.goto ?? verdict.jump) as Json | undefined)?.target ?? bad('egress verdict is not a goto'));
    entry(String(raw[0])).egress = chain === INTERNET_CHAIN ? 'internet' : { allowSet: chain };
  }
  return [...byTap.values()].sort((a, b) => a.tap.localeCompare(b.tap));
}
