/**
 * A host's guest networking: one tap per VM, addressed from its /30, and masquerade out.
 * Every operation is idempotent and touches only what Hangar named (taps `hg-…`, the nft
 * table `inet hangar`), so crash cleanup at agent start can run them blindly.
 */
import { writeFile } from 'node:fs/promises';
import { guestLink, guestMac, tapName, TAP_NAME } from './addressing.js';
import { NFT_FAMILY, NFT_TABLE, renderEgressRuleset } from './egress-ruleset.js';
import { run } from './run.js';

export interface HostNetworkOptions {
  /** Run everything inside this network namespace (tests); the host's own when absent. */
  netns?: string;
  /** Private range the VMs' /30 links are cut from. */
  range?: string;
  mtu?: number;
  /** Resolvers the guest is told to use. Public ones: the isolation rules will forbid the LAN's. */
  dns?: string[];
}

export interface Tap {
  tap: string;
  /** For the guest's NIC (QEMU `-device virtio-net-device,mac=…`). */
  mac: string;
  hostIp: string;
  guestIp: string;
  prefixLen: number;
  gateway: string;
  dns: string[];
  mtu: number;
}

export interface CreateTapInput {
  vmId: string;
  /** The VM's slot: picks its /30. Two live VMs must not share one. */
  index: number;
  /** Owner (user name or uid) so QEMU running unprivileged may open the tap. */
  user?: string;
  group?: string;
}

export interface HostNetwork {
  createTap(input: CreateTapInput): Promise<Tap>;
  /** Removes a Hangar tap; unknown is success. Refuses names that are not Hangar's. */
  destroyTap(name: string): Promise<void>;
  /** Hangar's taps on this host (by name), for crash cleanup. */
  listTaps(): Promise<string[]>;
  /** ip_forward on and Hangar's nft table in place (masquerade for the range). */
  ensureEgress(opts?: { outInterface?: string; chains?: string[] }): Promise<void>;
  /** Removes Hangar's nft table; leaves ip_forward alone (others may rely on it). */
  removeEgress(): Promise<void>;
}

export const DEFAULT_RANGE = '10.213.0.0/16';
export const DEFAULT_DNS = ['1.1.1.1', '9.9.9.9'];

export function createHostNetwork(opts: HostNetworkOptions = {}): HostNetwork {
  const ns = opts.netns;
  const range = opts.range ?? DEFAULT_RANGE;
  const mtu = opts.mtu ?? 1500;
  const dns = opts.dns ?? DEFAULT_DNS;
  const ip = (args: string[], check = true) => run(ns, 'ip', args, { check });
  const linkExists = async (name: string) => (await ip(['link', 'show', 'dev', name], false)).ok;

  return {
    async createTap({ vmId, index, user, group }) {
      const tap = tapName(vmId);
      const link = guestLink(range, index);
      if (!(await linkExists(tap))) {
        const owner = [...(user ? ['user', user] : []), ...(group ? ['group', group] : [])];
        await ip(['tuntap', 'add', 'dev', tap, 'mode', 'tap', ...owner]);
      }
      await ip(['link', 'set', 'dev', tap, 'mtu', String(mtu), 'up']);
      // replace, not add: a second create for the same VM converges instead of failing.
      await ip(['addr', 'flush', 'dev', tap]);
      await ip(['addr', 'replace', `${link.hostIp}/${link.prefixLen}`, 'dev', tap]);
      return { tap, mac: guestMac(vmId), hostIp: link.hostIp, guestIp: link.guestIp, prefixLen: link.prefixLen, gateway: link.hostIp, dns, mtu };
    },

    async destroyTap(name) {
      if (!TAP_NAME.test(name)) throw new TypeError(`${name} is not a Hangar tap name`);
      if (await linkExists(name)) await ip(['link', 'del', 'dev', name]);
    },

    async listTaps() {
      const { stdout } = await ip(['-j', '-d', 'link', 'show']);
      const links = JSON.parse(stdout || '[]') as Array<{ ifname: string; linkinfo?: { info_kind?: string } }>;
      return links.filter((l) => TAP_NAME.test(l.ifname) && l.linkinfo?.info_kind === 'tun').map((l) => l.ifname).sort();
    },

    async ensureEgress({ outInterface, chains } = {}) {
      await enableForwarding(ns);
      const ruleset = renderEgressRuleset({ range, ...(outInterface ? { outInterface } : {}), ...(chains ? { chains } : {}) });
      await run(ns, 'nft', ['-f', '-'], { input: ruleset });
    },

    async removeEgress() {
      if ((await run(ns, 'nft', ['list', 'table', NFT_FAMILY, NFT_TABLE], { check: false })).ok) {
        await run(ns, 'nft', ['delete', 'table', NFT_FAMILY, NFT_TABLE]);
      }
    },
  };
}

/** ip_forward is per network namespace: inside one, it must be set from inside. */
export async function enableForwarding(ns: string | undefined): Promise<void> {
  if (ns) await run(ns, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1']);
  else await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
}
