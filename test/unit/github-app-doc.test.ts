import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { APP_EVENTS, PERMISSION_NEEDS } from '../../src/domain/app-manifest.js';

/** docs/github-app.md's permission table says what the manifest asks for: no more, no less, with the same access. */
const doc = readFileSync(new URL('../../docs/github-app.md', import.meta.url), 'utf8');

describe('docs/github-app.md', () => {
  test('its permission table is the manifest\'s permissions and access', () => {
    const rows = [...doc.matchAll(/^\| `([a-z_]+)` \| (read|write) \|/gm)].map((m) => `${m[1]}:${m[2]}`).sort();
    expect(rows).toEqual(PERMISSION_NEEDS.map((p) => `${p.permission}:${p.access}`).sort());
  });

  test('it names the manifest\'s events', () => {
    for (const e of APP_EVENTS) expect(doc).toContain(`**\`${e}\`**`);
  });
});
