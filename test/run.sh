#!/usr/bin/env bash
# The test command (`npm test`): set up what is missing, build, run every lane (test/vitest.config.ts),
# print the time of each, and end with one plain line, "N passed, N failed", that any CI can read.
# `npm test -- ARGS` (a file, -t NAME…) runs one vitest run over all lanes with ARGS, files one at a time.
set -euo pipefail
cd "$(dirname "$0")/.."
run=$(mktemp -d "${TMPDIR:-/tmp}/hangar-test-run.XXXXXX")
trap 'rm -rf "$run"' EXIT
# The lanes' shared scratch: the run's one KVM probe is kept here (test/helpers/accel-probe.ts).
export HANGAR_TEST_RUN_DIR=$run
times=()
timed() { # NAME COMMAND…: runs it, records its wall time
  local name=$1 start=$SECONDS
  shift
  "$@"
  times+=("$name $((SECONDS - start))s")
}

timed setup bash test/setup.sh
# The build and the tests' type-check (vitest only strips types) are two tsc runs: one per core.
build_and_check() {
  npm run --silent build & local b=$!
  npx tsc -p test/tsconfig.json & local c=$!
  local rc=0
  wait $b || rc=1
  wait $c || rc=1
  return $rc
}
timed build+typecheck build_and_check

vitest=(npx vitest run --config test/vitest.config.ts --reporter=default)
lane() { # NAME [VITEST ARGS…]: one vitest run; its JSON report, exit code and time go to $run/NAME.*
  local name=$1 start=$SECONDS rc=0 started
  started=$(date +%s)
  shift
  "${vitest[@]}" --reporter=json --outputFile="$run/$name.json" "$@" || rc=$?
  echo "$rc" > "$run/$name.rc"
  echo "$((SECONDS - start))" > "$run/$name.secs"
  # For a profile of the run (CPU, VMs) by lane: each lane's start and end, as epoch seconds.
  if [ -n "${HANGAR_TEST_LANE_TIMES:-}" ]; then
    echo "$name $started $(date +%s)" >> "$HANGAR_TEST_LANE_TIMES"
    cp "$run/$name.json" "$HANGAR_TEST_LANE_TIMES.$name.json" 2>/dev/null || true
  fi
  return 0
}

if [ $# -gt 0 ]; then
  lane all "$@"
  lanes=(all)
else
  # unit and integration: files in parallel (each test its own Redis prefix, ports of its own),
  # and beside the VM lanes: integration mostly waits (retries, rate limits, Redis restarts).
  # Their output is printed once they are done, so the VM lanes' output stays readable.
  ( lane unit --project unit --fileParallelism --maxWorkers=2
    lane integration --project integration --fileParallelism --maxWorkers=4 ) > "$run/beside.log" 2>&1 &
  beside=$!
  # system: root, VMs, one file at a time. e2e: whole fleets, each with its own namespaces, Redis
  # and runner slice (an agent cleans only its own slice), so HANGAR_E2E_WORKERS=2 runs two files
  # at a time: the lane is half waiting (time caps, BullMQ's stalled checks, the sim runner's
  # polls): 426 s → 283–295 s, the CPU 51 % → 81 % busy. Not the default: in one of two such runs
  # two isolation tests' guests took over their 6 s to resolve a name (docs/benchmarks.md).
  lane system --project system
  e2e_workers=${HANGAR_E2E_WORKERS:-1}
  if [ "$e2e_workers" -gt 1 ]; then lane e2e --project e2e --fileParallelism --maxWorkers="$e2e_workers"; else lane e2e --project e2e; fi
  wait $beside || true
  cat "$run/beside.log"
  lanes=(unit integration system e2e)
fi

for l in "${lanes[@]}"; do times+=("$l $(cat "$run/$l.secs")s"); done
times+=("total ${SECONDS}s")
[ ${#lanes[@]} -gt 1 ] && beside_note=" (unit, then integration, ran beside system, then e2e, ${e2e_workers} files at a time)" || beside_note=''
printf 'time per lane:'; printf ' %s |' "${times[@]}" | sed 's/ |$//'; echo "$beside_note"
node -e '
  const fs = require("fs");
  const [dir, ...lanes] = process.argv.slice(1);
  let passed = 0, failed = 0, skipped = 0, broken = [];
  for (const l of lanes) {
    const rc = Number(fs.readFileSync(`${dir}/${l}.rc`, "utf8"));
    let r = null;
    try { r = JSON.parse(fs.readFileSync(`${dir}/${l}.json`, "utf8")); } catch {}
    if (r) { passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests; }
    // A lane that failed with no failed test: a file that did not load, a setup that threw, an unhandled error.
    if (rc !== 0 && (!r || r.numFailedTests === 0)) broken.push(l);
  }
  // Where the VM lanes spend their time: their slowest files (the figures issue 10 argues from).
  for (const l of lanes.filter((x) => x === "system" || x === "e2e")) {
    let r = null;
    try { r = JSON.parse(fs.readFileSync(`${dir}/${l}.json`, "utf8")); } catch {}
    if (!r) continue;
    const files = r.testResults.map((f) => ({ name: f.name.replace(/^.*\/test\//, "test/"), s: (f.endTime - f.startTime) / 1000 })).sort((a, b) => b.s - a.s);
    console.log(`${l} files by time: ${files.map((f) => `${f.name} ${f.s.toFixed(0)}s`).join(", ")}`);
  }
  if (broken.length) console.log(`lanes that failed outside their tests (see above): ${broken.join(", ")}`);
  console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$run" "${lanes[@]}"
for l in "${lanes[@]}"; do [ "$(cat "$run/$l.rc")" = 0 ] || exit 1; done
