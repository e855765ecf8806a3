import { readFileSync } from 'node:fs';

/**
 * `hangar --version`: the package's version, and the git commit it was built from when the build
 * knew it (src/main/build-info.mjs writes dist/build-info.json). Nothing asks git at run time.
 */
export function versionString(read: (url: URL) => string = (u) => readFileSync(u, 'utf8')): string {
  const { version } = JSON.parse(read(new URL('../../package.json', import.meta.url))) as { version: string };
  let commit: unknown = null;
  try {
    commit = (JSON.parse(read(new URL('../build-info.json', import.meta.url))) as { commit?: unknown }).commit;
  } catch {
    // Run from src/ (tsx), or a build without the file: the version alone.
  }
  return typeof commit === 'string' && commit !== '' ? `${version} (${commit})` : version;
}
