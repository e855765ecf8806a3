import { createHash } from 'node:crypto';
import { queueName } from './keys.js';

/**
 * The Redis ACL of one host's agent: only its pools' BullMQ queues. Pure: `hangar host add`
 * sends these rules over its admin connection (main/host-acl.ts); the tests read them from tables.
 *
 * BullMQ keeps every key of a queue under `<prefix>:<queueName>:` (its meta, id counter, lists,
 * sorted sets, events stream and each job's hash, lock and logs), and its Lua scripts touch only
 * those; Redis checks the keys a script touches against the caller's patterns too. Hangar's own
 * keys are `<prefix>:<word>:…` where no word starts with `pool-`, and a pool name is followed by
 * `:` in the pattern, so `build` never matches `build-arm`.
 */
export interface HostAcl {
  user: string;
  /** Glob patterns of the keys it may read and write (`~…`). */
  keyPatterns: string[];
  /** Glob patterns of the Pub/Sub channels it may use (`&…`); BullMQ 5+ uses none, kept as narrow. */
  channelPatterns: string[];
  /** Command rules in order, later ones winning. */
  commands: string[];
}

/**
 * Every command but administration and the dangerous ones (CONFIG, KEYS, FLUSH*, DEBUG, CLIENT
 * LIST/KILL, ACL, MONITOR…), less a few that reach past key patterns: SCAN and RANDOMKEY list
 * key names (another pool's job ids) without a key check, FUNCTION loads code for every
 * client, SCRIPT FLUSH/KILL/DEBUG break or stall the control's scripts. BullMQ's Worker needs INFO (it reads
 * the server's version at connect), which is in @dangerous. Scripts (EVALSHA, EVAL, SCRIPT
 * LOAD) stay: every BullMQ operation is one, and ACL checks each command and key inside them.
 */
export const HOST_COMMAND_RULES: readonly string[] = [
  '+@all',
  '-@admin',
  '-@dangerous',
  '+info',
  '-scan',
  '-randomkey',
  '-function',
  '-fcall',
  '-fcall_ro',
  '-script|flush',
  '-script|kill',
  '-script|debug',
];

export const hostAclUser = (host: string): string => `hangar-host-${host}`;

/** A glob's special characters escaped: prefixes and pool names cannot hold them today, but a pattern must never widen. */
const globLiteral = (s: string): string => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);

export function hostAcl(opts: { prefix: string; host: string; pools: readonly string[] }): HostAcl {
  const pools = [...new Set(opts.pools)].sort();
  const patterns = pools.map((pool) => `${globLiteral(opts.prefix)}:${globLiteral(queueName(pool))}:*`);
  return { user: hostAclUser(opts.host), keyPatterns: patterns, channelPatterns: patterns, commands: [...HOST_COMMAND_RULES] };
}

/**
 * The `ACL SETUSER` arguments after the user name. `reset` first (off, no password, no keys, no
 * channels, no commands), so running it again replaces an earlier user rather than adding to it;
 * the password goes as `>…` over the connection, never on a command line.
 */
export function setUserRules(acl: HostAcl, password: string): string[] {
  return [
    'reset',
    'resetkeys',
    'resetchannels',
    ...acl.keyPatterns.map((p) => `~${p}`),
    ...acl.channelPatterns.map((p) => `&${p}`),
    ...acl.commands,
    // The password's sha256 (`#`), as Redis keeps it: the password itself never reaches Redis,
    // so no MONITOR, slowlog or ACL LOG could ever show it.
    `#${createHash('sha256').update(password).digest('hex')}`,
    'on',
  ];
}
