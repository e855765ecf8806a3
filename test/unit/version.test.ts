import { readFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { versionString } from '../../src/main/version.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

test.each([
  ['a build that knew its commit', { commit: '0123456789ab' }, `${pkg.version} (0123456789ab)`],
  ['a build from a dirty tree', { commit: '0123456789ab-dirty' }, `${pkg.version} (0123456789ab-dirty)`],
  ['a build without git', { commit: null }, pkg.version],
  ['no build-info file (run from src/)', undefined, pkg.version],
])('%s', (_name, info, want) => {
  const read = (u: URL) => {
    if (u.pathname.endsWith('/package.json')) return readFileSync(u, 'utf8');
    if (info === undefined) throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
    return JSON.stringify(info);
  };
  expect(versionString(read)).toBe(want);
});
