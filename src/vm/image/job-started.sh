#!/bin/sh
# Hangar's job-started hook (ACTIONS_RUNNER_HOOK_JOB_STARTED), baked into every guest image.
#
# The runner runs it in "Set up runner", before the job's first step, with the default GITHUB_*
# variables; a non-zero exit fails the job without running a step. It asks the agent, through
# the metadata endpoint on this VM's gateway (HANGAR_METADATA_URL), whether the job GitHub gave
# this runner may run here. The agent knows which VM asks from the connection itself; what is
# sent here are hints for finding the job on GitHub, and the answer comes from GitHub's facts.
# Fail closed: no answer, a broken answer, anything but "allow" → the job fails, with the reason.
# POSIX sh: busybox (test image) or dash/bash (runner image); curl or busybox wget.
set -u
TIMEOUT=${HANGAR_GATE_TIMEOUT:-30}

refuse() {
  echo "Hangar refused this job at start: $1"
  [ -z "${2:-}" ] || echo "  $2"
  echo "  (the job-start gate: see README, 'How a job runs'; the run is cancelled when the job itself is refused)"
  exit 1
}

url=${HANGAR_METADATA_URL:-}
[ -n "$url" ] || refuse "no-metadata-endpoint" "HANGAR_METADATA_URL is not set in the runner's environment"

body="repository=${GITHUB_REPOSITORY:-}
run_id=${GITHUB_RUN_ID:-}
run_attempt=${GITHUB_RUN_ATTEMPT:-}
job=${GITHUB_JOB:-}
runner_name=${RUNNER_NAME:-}
"
# GitHub runs a .sh hook with `bash -e`: every failure below is caught, never an early exit.
rc=0
if command -v curl >/dev/null 2>&1; then
  answer=$(curl -fsS --max-time "$TIMEOUT" -H 'Content-Type: text/plain' --data-binary "$body" "$url/v1/job-started" 2>&1) || rc=$?
else
  answer=$(timeout "$TIMEOUT" wget -q -O - --header 'Content-Type: text/plain' --post-data "$body" "$url/v1/job-started" 2>&1) || rc=$?
fi
[ "$rc" -eq 0 ] || refuse "agent-unreachable" "no answer from the Hangar agent at $url within ${TIMEOUT} s (exit $rc)"

first=$(printf '%s\n' "$answer" | head -n 1) || first=''
case $first in
  allow)
    echo "Hangar: this job may run on this runner"
    exit 0 ;;
  "deny "*)
    refuse "${first#deny }" "$(printf '%s\n' "$answer" | sed -n 2p | cut -c1-300)" ;;
  *)
    refuse "bad-answer" "the agent's answer was not a decision" ;;
esac
