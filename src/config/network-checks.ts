/**
 * Checks of `agent.network` that compare one key with another (the schema checks each value
 * alone), and the check of the VM range against the host's own networks, which only the agent
 * can make, at start. Pure: the agent hands in what `ip -j addr` shows.
 */
import { cidrContains, cidrsOverlap, formatCidr, parseCidr, parseInterfaceCidr, parseIpv4, type Cidr } from '../domain/cidr.js';
import type { ConfigProblem } from '../domain/errors.js';

export const DNS_PORT = 53;

export type UpstreamParse = { ok: true; address: string; port: number } | { ok: false; message: string };

const block = (text: string, why: string): { cidr: Cidr; text: string; why: string } => {
  const p = parseCidr(text);
  if (!p.ok) throw new TypeError(p.message);
  return { cidr: p.cidr, text, why };
};

/** No unicast host lives here: not a DNS server, not a production network. */
const NOT_UNICAST = [block('0.0.0.0/8', '"this network"'), block('224.0.0.0/4', 'multicast'), block('240.0.0.0/4', 'reserved')];

/** Never opened to guests, whatever the deploy host's production networks are. */
const NEVER_PRODUCTION = [
  block('169.254.0.0/16', 'link-local, where cloud metadata lives (169.254.169.254)'),
  block('127.0.0.0/8', 'loopback'),
  ...NOT_UNICAST,
];

/** A DNS upstream, `IP` or `IP:port` (IPv4 only; port 53 when left out). */
export function parseDnsUpstream(text: string): UpstreamParse {
  if ((text.match(/:/g) ?? []).length > 1) return { ok: false, message: `"${text}" is IPv6; upstreams are IPv4 only (guests get no IPv6)` };
  const [host = '', port] = text.split(':');
  const address = parseIpv4(host);
  if (address === undefined) return { ok: false, message: `expected an IPv4 address or IPv4:port (192.168.1.2:53), got "${text}"` };
  const n = port === undefined ? DNS_PORT : /^[1-9][0-9]{0,4}$/.test(port) ? Number(port) : 0;
  if (n < 1 || n > 65535) return { ok: false, message: `"${text}": the port is 1 to 65535` };
  const reserved = NOT_UNICAST.find((b) => cidrContains(b.cidr, address));
  if (reserved) return { ok: false, message: `${host} is not a unicast address (${reserved.text}, ${reserved.why})` };
  return { ok: true, address: host, port: n };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The entries of `list` that parse, with their index; the schema reports the others. */
function parsedEntries<T>(list: unknown, parse: (s: string) => T | undefined): { i: number; text: string; value: T }[] {
  if (!Array.isArray(list)) return [];
  return list.flatMap((text, i) => {
    const value = typeof text === 'string' ? parse(text) : undefined;
    return value === undefined ? [] : [{ i, text: text as string, value }];
  });
}

const cidrOrUndefined = (s: string) => {
  const p = parseCidr(s);
  return p.ok ? p.cidr : undefined;
};

/**
 * `agent.network` against itself and the host's role (from its hosts[] entry). Takes the agent
 * section as zod saw it, possibly with other keys invalid, so every problem is found in one
 * pass: a key that does not parse is skipped here (the schema names it).
 */
export function checkAgentNetwork(agent: unknown, role: unknown): ConfigProblem[] {
  const a = isRecord(agent) ? agent : {};
  const net = isRecord(a.network) ? a.network : {};
  const problems: ConfigProblem[] = [];
  const P = 'agent.network';
  const range = typeof net.range === 'string' ? cidrOrUndefined(net.range) : undefined;
  const rangeText = range && `${P}.range (${formatCidr(range)})`;

  if (role === 'build' && Array.isArray(net.productionCidrs) && net.productionCidrs.length > 0) {
    problems.push({ path: `${P}.productionCidrs`, message: 'a build host never reaches production: productionCidrs is only for a host with role deploy' });
  }
  const prod = parsedEntries(net.productionCidrs, cidrOrUndefined);
  for (const [k, p] of prod.entries()) {
    const path = `${P}.productionCidrs.${p.i}`;
    const earlier = prod.slice(0, k).find((q) => cidrsOverlap(q.value, p.value));
    if (earlier) {
      const same = earlier.value.base === p.value.base && earlier.value.prefixLen === p.value.prefixLen;
      problems.push({ path, message: `${p.text} ${same ? 'is listed twice' : 'overlaps'} (${P}.productionCidrs.${earlier.i}: ${earlier.text})` });
    }
    if (range && cidrsOverlap(range, p.value)) {
      problems.push({ path, message: `${p.text} overlaps ${rangeText}, where the VMs' links are cut from` });
    }
    const never = NEVER_PRODUCTION.find((b) => cidrsOverlap(b.cidr, p.value));
    if (never) problems.push({ path, message: `${p.text} overlaps ${never.text} (${never.why}), which guests never reach` });
  }

  const dns = isRecord(net.dns) ? net.dns : {};
  for (const u of parsedEntries(dns.upstreams, (s) => {
    const p = parseDnsUpstream(s);
    return p.ok ? p : undefined;
  })) {
    if (range && cidrContains(range, parseIpv4(u.value.address)!)) {
      problems.push({
        path: `${P}.dns.upstreams.${u.i}`,
        message: `${u.value.address} is inside ${rangeText}, where the VMs' links are cut from; an upstream is a server the host's forwarder asks`,
      });
    }
  }
  return problems;
}

/**
 * The VM range against the host's own networks (`ip -j addr`: each address with its prefix,
 * `192.168.1.10/24`). Overlap would route a LAN's or a VPN's addresses into the VMs' links.
 * IPv6 entries are skipped (guests get no IPv6). The caller leaves out Hangar's own taps
 * (`hg-*`): their /30s are cut from the range. A malformed entry is the caller's bug: TypeError.
 */
export function checkRangeAgainstHost(range: string, hostCidrs: readonly string[]): ConfigProblem[] {
  const path = 'agent.network.range';
  const r = parseCidr(range);
  if (!r.ok) return [{ path, message: r.message }];
  const seen = new Set<string>();
  const problems: ConfigProblem[] = [];
  for (const entry of hostCidrs) {
    if (entry.includes(':')) continue;
    const p = parseInterfaceCidr(entry);
    if (!p.ok) throw new TypeError(p.message);
    const net = formatCidr(p.cidr);
    if (!cidrsOverlap(r.cidr, p.cidr) || seen.has(net)) continue;
    seen.add(net);
    problems.push({ path, message: `${range} overlaps this host's network ${net} (address ${entry}): pick a range no network of this host uses` });
  }
  return problems;
}
