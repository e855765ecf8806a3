#!/usr/bin/env bash
# The test command (`npm test`): set up what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
npm run --silent build
# The tests are TypeScript too: type-check them (vitest only strips types).
npx tsc -p test/tsconfig.json
exec npx vitest run --config test/vitest.config.ts "$@"
