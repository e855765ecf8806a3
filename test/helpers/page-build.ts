import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard page's browser tests load the page `npm run build` made (dist/dashboard/page/),
 * as the control serves it; vitest compiles only the Node side. Fails with what to do when the
 * build is missing or older than a source of the page, rather than testing a stale page.
 */
const SRC = fileURLToPath(new URL('../../src/dashboard/page/', import.meta.url));
const DIST = fileURLToPath(new URL('../../dist/dashboard/page/', import.meta.url));

export function expectPageBuilt(): void {
  const built = (name: string): number => {
    try {
      return statSync(join(DIST, name)).mtimeMs;
    } catch {
      return -1;
    }
  };
  const stale: string[] = [];
  for (const name of readdirSync(SRC)) {
    if (name === 'tsconfig.json') continue;
    const out = name.endsWith('.ts') ? name.replace(/\.ts$/, '.js') : name;
    if (built(out) < statSync(join(SRC, name)).mtimeMs) stale.push(name);
  }
  if (stale.length) throw new Error(`the dashboard page in dist/ is missing or older than ${stale.join(', ')}: run \`npm run build\` first`);
}
