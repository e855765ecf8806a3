import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';

/**
 * The operator's docs say which test shows each defence (`test/path.test.ts` "its name", a name
 * ending in "…" being the start of one) and link each other: every cited file must exist with
 * that name in it, and every relative link must resolve, or the docs promise what nobody checks.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const DOCS = join(ROOT, 'docs');
const docs = readdirSync(DOCS).filter((f) => f.endsWith('.md')).map((f) => ({ file: `docs/${f}`, text: readFileSync(join(DOCS, f), 'utf8') }));

interface Citation { doc: string; file: string; names: string[] }

/** `test/….test.ts` and the quoted names right after it, separated by commas. */
export function citations(doc: string, text: string): Citation[] {
  const out: Citation[] = [];
  for (const m of text.matchAll(/`(test\/[^`\s]+\.test\.ts)`((?:,?\s*"[^"\n]+")*)/g)) {
    const names = [...(m[2] ?? '').matchAll(/"([^"\n]+)"/g)].map((n) => n[1]!);
    out.push({ doc, file: m[1]!, names });
  }
  return out;
}

/** Whether a test file has a test (or describe) named so: exact text, or its start when the name ends in "…". */
export function hasTestNamed(source: string, name: string): boolean {
  const text = source.replace(/\\(['"`])/g, '$1');
  const prefix = name.endsWith('…');
  const wanted = prefix ? name.slice(0, -1).trimEnd() : name;
  for (const q of ["'", '"', '`']) {
    if (text.includes(`${q}${wanted}${prefix ? '' : q}`)) return true;
  }
  return false;
}

/** Relative link targets of a markdown text: `[text](target)`, without a scheme or a bare anchor. */
export function relativeLinks(text: string): string[] {
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!).filter((t) => !/^[a-z]+:/i.test(t) && !t.startsWith('#'));
}

const all = docs.flatMap((d) => citations(d.file, d.text));

describe('docs cite tests that exist', () => {
  test('docs/security.md cites at least 60 tests by name (the check below is not vacuous)', () => {
    const named = all.filter((c) => c.doc === 'docs/security.md').flatMap((c) => c.names);
    expect(named.length).toBeGreaterThanOrEqual(60);
  });

  test('the name check is real: an invented name, or a name cut short without "…", is not found', () => {
    const src = "test('a wrong pin: refused, saying which', async () => {});\ntest('the VM\\'s own request', () => {});";
    expect(hasTestNamed(src, 'a wrong pin: refused, saying which')).toBe(true);
    expect(hasTestNamed(src, 'a wrong pin…')).toBe(true);
    expect(hasTestNamed(src, "the VM's own request")).toBe(true);
    expect(hasTestNamed(src, 'a wrong pin')).toBe(false);
    expect(hasTestNamed(src, 'a right pin…')).toBe(false);
  });

  test.each(all.map((c) => [`${c.doc} → ${c.file}`, c] as const))('%s', (_label, c) => {
    const path = join(ROOT, c.file);
    expect(existsSync(path), `${c.doc} cites ${c.file}, which does not exist`).toBe(true);
    const source = readFileSync(path, 'utf8');
    const missing = c.names.filter((n) => !hasTestNamed(source, n));
    expect(missing, `${c.doc} cites tests ${c.file} does not have`).toEqual([]);
  });
});

describe('relative links in docs/*.md resolve', () => {
  test.each(docs.map((d) => [d.file, d] as const))('%s', (_file, d) => {
    const broken = relativeLinks(d.text).filter((t) => !existsSync(resolve(DOCS, decodeURI(t.split('#')[0]!))));
    expect(broken).toEqual([]);
  });
});
