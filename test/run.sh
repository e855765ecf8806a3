#!/usr/bin/env bash
# The test command (`npm test`): set up what is missing, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash test/setup.sh
npm run --silent build
exec npx vitest run --config test/vitest.config.ts "$@"
