/**
 * Pure addressing for guest links: one /30 per VM cut from a private range by slot index
 * (network, host side, guest side, broadcast), a tap name derived from the VM id, and a MAC
 * for the guest. No I/O here, so the agent, reconcile and tests can all compute the same thing.
 */
import { createHash } from 'node:crypto';

export const TAP_PREFIX = 'hg-';
/** `hg-` + 12 hex digits = 15 characters, the kernel's IFNAMSIZ limit (16 with the NUL). */
export const TAP_NAME = /^hg-[0-9a-f]{12}$/;
export const LINK_PREFIX_LEN = 30;

export interface Cidr {
  base: number;
  prefixLen: number;
}

export interface GuestLink {
  /** The /30 in CIDR form, e.g. 10.213.0.4/30. */
  subnet: string;
  hostIp: string;
  guestIp: string;
  prefixLen: number;
}

export function ipToInt(ip: string): number {
  const parts = ip.split('.');
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) throw new TypeError(`not an IPv4 address: ${ip}`);
  return parts.reduce((n, p) => n * 256 + Number(p), 0);
}

export function intToIp(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export function parseCidr(cidr: string): Cidr {
  const [ip, len] = cidr.split('/');
  const prefixLen = Number(len);
  if (ip === undefined || !/^\d{1,2}$/.test(len ?? '') || prefixLen > 32) throw new TypeError(`not an IPv4 CIDR: ${cidr}`);
  const base = ipToInt(ip);
  if (base % 2 ** (32 - prefixLen) !== 0) throw new TypeError(`${cidr} has host bits set; did you mean ${intToIp(base - (base % 2 ** (32 - prefixLen)))}/${prefixLen}?`);
  return { base, prefixLen };
}

/** How many VM links fit in `range`. */
export function linkCount(range: string): number {
  const { prefixLen } = parseCidr(range);
  return prefixLen > LINK_PREFIX_LEN ? 0 : 2 ** (LINK_PREFIX_LEN - prefixLen);
}

/** The index-th /30 of `range`: .0 network, .1 host (the guest's gateway), .2 guest, .3 broadcast. */
export function guestLink(range: string, index: number): GuestLink {
  const { base } = parseCidr(range);
  const count = linkCount(range);
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new RangeError(`link index ${index} is outside ${range} (room for ${count})`);
  const net = base + index * 4;
  return { subnet: `${intToIp(net)}/${LINK_PREFIX_LEN}`, hostIp: intToIp(net + 1), guestIp: intToIp(net + 2), prefixLen: LINK_PREFIX_LEN };
}

function digest(vmId: string): Buffer {
  return createHash('sha256').update(vmId).digest();
}

/** A tap name for the VM: stable (crash cleanup can recompute it) and recognisably Hangar's. */
export function tapName(vmId: string): string {
  return TAP_PREFIX + digest(vmId).toString('hex').slice(0, 12);
}

/** A locally administered unicast MAC for the guest (first octet 0x02), stable per VM id. */
export function guestMac(vmId: string): string {
  const d = digest(`mac:${vmId}`);
  return ['02', ...[...d.subarray(0, 5)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
