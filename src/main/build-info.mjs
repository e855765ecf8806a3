// After tsc: dist/build-info.json with the git commit the build was made from, so `hangar
// --version` can name it without git at run time. No git, or not a checkout: no commit, no error.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const git = (...args) => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
let commit = null;
try {
  commit = git('rev-parse', '--short=12', 'HEAD');
  if (git('status', '--porcelain', '--untracked-files=no') !== '') commit += '-dirty';
} catch {
  commit = null;
}
writeFileSync(new URL('../../dist/build-info.json', import.meta.url), `${JSON.stringify({ commit })}\n`);
