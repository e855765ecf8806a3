/**
 * Which names a pool's guests may resolve. Pure: the DNS forwarder asks it for every question,
 * config validates patterns with `isDnsPattern` (and expands presets such as `github` into plain
 * patterns before they reach here).
 *
 * A pattern is an exact name (`registry.npmjs.org`) or a wildcard over sub-domains
 * (`*.actions.githubusercontent.com`). A wildcard does not match its apex: `*.example.com`
 * allows `a.example.com` and `a.b.example.com`, not `example.com` — list the apex too if it is
 * wanted, so that allowing a zone's hosts never silently allows the zone's own name. Names and
 * patterns compare case-insensitively, and a trailing dot (the root) is ignored on either side.
 */
export type Egress = { mode: 'internet' } | { mode: 'allowlist'; allow: readonly string[] };

export type DnsDecision = 'allow' | 'deny';

const LABEL = /^(?!-)[a-z0-9_-]{1,63}$/;

/** Lower case, one trailing dot removed: the form names are compared, logged and decided in. */
export function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** True for `host.example.com` and `*.example.com`; false for `*`, `*.com`, `a*.example.com`, `a..b`. */
export function isDnsPattern(pattern: string): boolean {
  const p = normalizeName(pattern);
  const rest = p.startsWith('*.') ? p.slice(2) : p;
  if (rest.length === 0 || rest.length > 253) return false;
  const labels = rest.split('.');
  // A wildcard over a top-level domain (`*.com`) would be the internet by another name.
  if (p.startsWith('*.') && labels.length < 2) return false;
  return labels.every((l) => LABEL.test(l));
}

export function dnsDecision(name: string, egress: Egress): DnsDecision {
  if (egress.mode === 'internet') return 'allow';
  const n = normalizeName(name);
  if (!isName(n)) return 'deny';
  return egress.allow.some((p) => matches(n, p)) ? 'allow' : 'deny';
}

function isName(n: string): boolean {
  return n.length > 0 && n.length <= 253 && n.split('.').every((l) => LABEL.test(l));
}

function matches(name: string, pattern: string): boolean {
  if (!isDnsPattern(pattern)) return false;
  const p = normalizeName(pattern);
  if (!p.startsWith('*.')) return name === p;
  const suffix = p.slice(1); // ".example.com"
  return name.length > suffix.length && name.endsWith(suffix);
}
