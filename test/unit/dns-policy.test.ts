import { describe, expect, test } from 'vitest';
import { dnsDecision, isDnsPattern, normalizeName, type DnsDecision, type Egress } from '../../src/net/dns-policy.js';

const allowlist = (...allow: string[]): Egress => ({ mode: 'allowlist', allow });
const pool = allowlist('github.com', '*.actions.githubusercontent.com', 'Registry.NPMJS.org.', '*.pkg.github.com');

describe('dnsDecision', () => {
  test.each<[string, string, Egress, DnsDecision]>([
    ['internet mode allows any name', 'anything.example', { mode: 'internet' }, 'allow'],
    ['internet mode allows the root', '', { mode: 'internet' }, 'allow'],
    ['an exact name', 'github.com', pool, 'allow'],
    ['an exact name, other letter case', 'GitHub.COM', pool, 'allow'],
    ['an exact name with the root dot', 'github.com.', pool, 'allow'],
    ['a pattern written in capitals with a trailing dot', 'registry.npmjs.org', pool, 'allow'],
    ['an exact name does not cover its sub-domains', 'api.github.com', pool, 'deny'],
    ['an exact name is not a suffix match', 'evilgithub.com', pool, 'deny'],
    ['a wildcard: one label below', 'pipelines.actions.githubusercontent.com', pool, 'allow'],
    ['a wildcard: two labels below', 'a.b.actions.githubusercontent.com', pool, 'allow'],
    ['a wildcard does not match its apex', 'actions.githubusercontent.com', pool, 'deny'],
    ['a wildcard needs a label boundary', 'evilactions.githubusercontent.com', pool, 'deny'],
    ['a wildcard, mixed case and trailing dot', 'NPM.Pkg.GitHub.com.', pool, 'allow'],
    ['an unlisted name', 'example.com', pool, 'deny'],
    ['the listed name as a prefix of another zone', 'github.com.evil.example', pool, 'deny'],
    ['an empty allowlist denies everything', 'github.com', allowlist(), 'deny'],
    ['the root in allowlist mode', '', pool, 'deny'],
    ['the root dot alone in allowlist mode', '.', pool, 'deny'],
    ['an empty label is not a name', 'x..actions.githubusercontent.com', pool, 'deny'],
    ['a label over 63 characters', `${'a'.repeat(64)}.actions.githubusercontent.com`, pool, 'deny'],
    ['an invalid pattern matches nothing', 'a.com', allowlist('*'), 'deny'],
    ['a wildcard over a TLD matches nothing', 'a.com', allowlist('*.com'), 'deny'],
    ['a wildcard inside a label matches nothing', 'ab.example.com', allowlist('a*.example.com'), 'deny'],
  ])('%s', (_n, name, egress, want) => expect(dnsDecision(name, egress)).toBe(want));
});

describe('isDnsPattern', () => {
  test.each<[string, boolean]>([
    ['github.com', true],
    ['*.actions.githubusercontent.com', true],
    ['_dmarc.example.com', true],
    ['localhost', true],
    ['Example.COM.', true],
    ['*', false],
    ['*.', false],
    ['*.com', false],
    ['a*.example.com', false],
    ['*.*.example.com', false],
    ['a..b', false],
    ['-bad.example.com', false],
    ['has space.example.com', false],
    ['', false],
    [`${'a'.repeat(64)}.com`, false],
  ])('%s → %s', (p, want) => expect(isDnsPattern(p)).toBe(want));
});

test('normalizeName lowers case and drops one root dot', () => {
  expect(normalizeName('WWW.Example.COM.')).toBe('www.example.com');
  expect(normalizeName('example.com')).toBe('example.com');
});
