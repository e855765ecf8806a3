/**
 * A pool's egress allowlist: what an entry may be, and the flat list of names the agent's DNS
 * forwarder answers for. Names, not addresses: the forwarder resolves only listed names and
 * lets out what they resolve to, so an address on the list could never be reached by name.
 *
 * An entry is one of
 * - a domain, `registry.npmjs.org`: that name only;
 * - a wildcard, `*.pkg.github.com`: the names below it (not `pkg.github.com` itself; list both
 *   when both are needed). One leading `*.` only, and not over a whole top-level domain;
 * - a preset, `github` (no dot): the hosts in egress-presets.ts.
 * Matched case-insensitively.
 */
import { closest } from './did-you-mean.js';
import { EGRESS_PRESET_NAMES, EGRESS_PRESETS } from './egress-presets.js';

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const PRESET_LIKE = /^[a-z0-9-]+$/;

function isDomain(name: string): boolean {
  const labels = name.split('.');
  return name.length <= 253 && labels.length >= 2 && labels.every((l) => LABEL.test(l));
}

/** Why `entry` cannot be on an allowlist, or undefined when it can. */
export function checkAllowEntry(entry: string): string | undefined {
  const e = entry.toLowerCase();
  if (!e.includes('.') && PRESET_LIKE.test(e)) {
    if (presetHosts(e)) return undefined;
    const near = closest(e, EGRESS_PRESET_NAMES);
    return `unknown preset "${entry}" (known: ${EGRESS_PRESET_NAMES.join(', ')})${near ? `; did you mean "${near}"?` : ''}`;
  }
  if (e.includes('://') || e.includes('/')) return `"${entry}" is a URL; an entry is a name (registry.npmjs.org): it covers every path and port`;
  if (e.includes(':')) return `"${entry}" has a port; an entry is a name and covers every port`;
  const wild = e.startsWith('*.');
  const name = wild ? e.slice(2) : e;
  if (name.includes('*')) return `"${entry}": a wildcard is one leading "*." only, as in *.pkg.github.com`;
  if (wild && PRESET_LIKE.test(name)) return `"${entry}" covers a whole top-level domain; name the domain below it (*.example.${name})`;
  if (!isDomain(name)) {
    return `expected a domain (registry.npmjs.org), a wildcard (*.pkg.github.com) or a preset (${EGRESS_PRESET_NAMES.join(', ')}), got "${entry}"`;
  }
  if (/^[0-9]+$/.test(name.slice(name.lastIndexOf('.') + 1))) {
    return `"${entry}" is an address; an allowlist holds names, and lets out what they resolve to`;
  }
  return undefined;
}

/**
 * The names an allowlist lets out: presets expanded in place, lowercased, each name once, in
 * the order first listed. Throws on an entry config validation would have refused.
 */
export function expandAllowlist(entries: readonly string[]): string[] {
  const out = new Set<string>();
  for (const entry of entries) {
    const why = checkAllowEntry(entry);
    if (why) throw new TypeError(why);
    const e = entry.toLowerCase();
    for (const name of presetHosts(e) ?? [e]) out.add(name.toLowerCase());
  }
  return [...out];
}

/** Own keys only: an entry named "constructor" is not a preset. */
function presetHosts(name: string): readonly string[] | undefined {
  return Object.hasOwn(EGRESS_PRESETS, name) ? EGRESS_PRESETS[name] : undefined;
}
