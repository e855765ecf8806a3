import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Shell scripts that go into the guest live next to the TypeScript (`src/vm/image/init.sh`,
 * `src/sim/runner.sh`), but tsc copies only .ts output to dist/. Look under the folder this
 * module runs from first, then under the sibling src/ of a dist/ build.
 */
export function sourceAsset(relFromSrc: string): string {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'); // src/ or dist/
  const candidates = [join(root, relFromSrc), join(root, '..', 'src', relFromSrc)];
  return candidates.find((p) => existsSync(p)) ?? candidates[0]!;
}
