/**
 * IPv4 addresses and CIDRs as numbers, for config validation and anything else that must
 * compare networks without I/O. Results are values: a parse that fails says why, so config
 * can report every bad entry at once with its path.
 *
 * Stricter than `inet_aton`: four decimal octets, no leading zeros (`010.0.0.1` is octal to
 * some tools and decimal to others, so it is refused rather than guessed).
 */

export interface Cidr {
  /** The network address as an unsigned 32-bit number. */
  base: number;
  prefixLen: number;
}

export type CidrParse = { ok: true; cidr: Cidr } | { ok: false; message: string };

const OCTET = /^(0|[1-9][0-9]{0,2})$/;

/** The address as a number, or undefined when it is not a dotted-quad IPv4 address. */
export function parseIpv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p) && Number(p) <= 255)) return undefined;
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function formatCidr(c: Cidr): string {
  return `${formatIpv4(c.base)}/${c.prefixLen}`;
}

function split(text: string): { address: number; prefixLen: number } | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const address = parseIpv4(text.slice(0, slash));
  const len = text.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9][0-9]?)$/.test(len) || Number(len) > 32) return undefined;
  return { address, prefixLen: Number(len) };
}

const hostBits = (address: number, prefixLen: number) => address % 2 ** (32 - prefixLen);

/** A network in CIDR form (`10.1.0.0/16`). Host bits set is an error that names the network meant. */
export function parseCidr(text: string): CidrParse {
  const s = split(text);
  if (!s) return { ok: false, message: `expected an IPv4 CIDR like 10.1.0.0/16, got "${text}"` };
  const extra = hostBits(s.address, s.prefixLen);
  if (extra !== 0) {
    return { ok: false, message: `${text} has host bits set; did you mean ${formatCidr({ base: s.address - extra, prefixLen: s.prefixLen })}?` };
  }
  return { ok: true, cidr: { base: s.address, prefixLen: s.prefixLen } };
}

/** An interface address (`192.168.1.10/24`, as `ip addr` shows it): the network it sits on. */
export function parseInterfaceCidr(text: string): CidrParse {
  const s = split(text);
  if (!s) return { ok: false, message: `expected an IPv4 address with a prefix like 192.168.1.10/24, got "${text}"` };
  return { ok: true, cidr: { base: s.address - hostBits(s.address, s.prefixLen), prefixLen: s.prefixLen } };
}

/** How many addresses the network holds (2^(32 − prefix)). */
export function cidrSize(c: Cidr): number {
  return 2 ** (32 - c.prefixLen);
}

export function cidrContains(c: Cidr, address: number): boolean {
  return address >= c.base && address < c.base + cidrSize(c);
}

/** Two CIDRs overlap exactly when one contains the other's network address. */
export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b.base) || cidrContains(b, a.base);
}
