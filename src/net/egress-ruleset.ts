/**
 * The nftables ruleset for guest egress, rendered as text for `nft -f -`. Pure: the isolation
 * layer (isolation.ts: no inbound, no LAN, no metadata, the deploy host's production subnet)
 * renders its own counters, sets and chains and hands them in through `chains`, so this file
 * stays the one place that owns the table and its atomic replacement.
 */

export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'hangar';

export interface EgressRulesetInput {
  /** The VMs' private range, e.g. 10.213.0.0/16. */
  range: string;
  /** Masquerade only out of this interface (the host's uplink); any interface when absent. */
  outInterface?: string;
  /** Extra table-level blocks (`chain forward { … }`, `set guests { … }`, `counter x {}`) for the same table: isolation.ts's seam. */
  chains?: string[];
}

const IFNAME = /^[A-Za-z0-9_.:-]{1,15}$/;
const CIDR = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;

/**
 * `table … {}` then `delete table …` then the table: one nft transaction that replaces
 * Hangar's table whether or not it existed, and never touches anyone else's rules.
 */
export function renderEgressRuleset(input: EgressRulesetInput): string {
  if (!CIDR.test(input.range)) throw new TypeError(`not an IPv4 CIDR: ${input.range}`);
  if (input.outInterface !== undefined && !IFNAME.test(input.outInterface)) throw new TypeError(`bad interface name: ${input.outInterface}`);
  const out = input.outInterface ? ` oifname "${input.outInterface}"` : '';
  const table = `${NFT_FAMILY} ${NFT_TABLE}`;
  return [
    `table ${table} {}`,
    `delete table ${table}`,
    `table ${table} {`,
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    // VM-to-VM is not egress; everything else from the range leaves with the host's address.
    `    ip saddr ${input.range} ip daddr != ${input.range}${out} masquerade`,
    '  }',
    ...(input.chains ?? []).map((c) => c.replace(/^/gm, '  ')),
    '}',
    '',
  ].join('\n');
}
