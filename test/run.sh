#!/usr/bin/env bash
# The test command (`npm test`): set up what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
npm run --silent build
# The tests are TypeScript too: type-check them (vitest only strips types).
npx tsc -p test/tsconfig.json
results=$(mktemp)
trap 'rm -f "$results"' EXIT
set +e
npx vitest run --config test/vitest.config.ts --reporter=default --reporter=json --outputFile="$results" "$@"
rc=$?
set -e
# One plain closing line ("N passed, N failed") that any CI can read.
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (r.numPendingTests ? `, ${r.numPendingTests} skipped` : ""));' "$results" || true
exit $rc
