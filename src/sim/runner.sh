#!/bin/sh
# Hangar sim runner, busybox-compatible POSIX sh (src/sim/runner.ts is the same in Node).
#
#   runner.sh CONFIG_FILE    CONFIG_FILE holds the encoded JIT config (base64 of KEY=value lines);
#                            "-" reads it from stdin (the guest's /init pipes it in). Never pass
#                            the config on a command line.
#
# Polls the sim for its one job, runs the script it is given with sh in a scratch directory,
# renewing the job's lock every HANGAR_SIM_RENEW_SECONDS while it runs (actions/runner renews
# every 60 s; a job whose renewals stop is failed as "lost communication with the server"),
# posts the exit code and the output (last MiB), and exits with the job's exit code.
# Exit 70: the sim refused this runner (retired or already used). Needs: base64, wget, timeout.
# busybox wget's -T segfaults, so every wget runs under `timeout` instead.
set -u

POLL_SECONDS=${HANGAR_SIM_POLL_SECONDS:-1}
HTTP_TIMEOUT=${HANGAR_SIM_HTTP_TIMEOUT:-30}
RENEW_SECONDS=${HANGAR_SIM_RENEW_SECONDS:-5}
case $RENEW_SECONDS in
  ''|*[!0-9]*|0*) echo "runner.sh: HANGAR_SIM_RENEW_SECONDS must be a whole number of seconds above 0, got '$RENEW_SECONDS'" >&2; exit 1 ;;
esac

src=${1:?usage: runner.sh CONFIG_FILE}
dir=$(mktemp -d "${TMPDIR:-/tmp}/hangar-sim-runner.XXXXXX") || exit 1
renew_pid=
stop_renewing() {
  [ -n "$renew_pid" ] || return 0
  kill "$renew_pid" 2>/dev/null
  wait "$renew_pid" 2>/dev/null
  renew_pid=
}
trap 'stop_renewing; rm -rf "$dir"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$src" = "-" ]; then base64 -d > "$dir/config"; else base64 -d < "$src" > "$dir/config"; fi || {
  echo "runner.sh: cannot decode the JIT config" >&2; exit 1; }
HANGAR_SIM_URL= RUNNER_ID= RUNNER_NAME= RUNNER_TOKEN=
. "$dir/config"
rm -f "$dir/config"
exec < /dev/null   # the job gets no stdin (it held the config)
[ -n "$HANGAR_SIM_URL" ] && [ -n "$RUNNER_TOKEN" ] || { echo "runner.sh: not a sim JIT config" >&2; exit 1; }

# The token goes in a header only, never in argv of a long-lived process or in a log.
get_job() {
  timeout "$HTTP_TIMEOUT" wget -q -O "$dir/job.sh" --header "Authorization: RunnerToken $RUNNER_TOKEN" \
    "$HANGAR_SIM_URL/_runner/job"
}

refusals=0
while :; do
  rm -f "$dir/job.sh"
  if get_job; then
    [ -s "$dir/job.sh" ] && break          # 200: a job; 204 leaves the file empty
    refusals=0
  else
    # 401/410 (this runner is done for) and network trouble look alike to wget; a live sim
    # answers 204 quickly, so several failures in a row with a reachable sim mean "refused".
    refusals=$((refusals + 1))
    [ "$refusals" -ge 5 ] && { echo "runner.sh: $RUNNER_NAME refused or sim unreachable" >&2; exit 70; }
  fi
  sleep "$POLL_SECONDS"
done

job_id=$(sed -n 's/^HANGAR_SIM_JOB_ID=\([0-9][0-9]*\)$/\1/p' "$dir/job.sh" | head -n 1)
[ -n "$job_id" ] || { echo "runner.sh: job script without a job id" >&2; exit 1; }

# In the background while the job runs. Every sleep and wget is a child it waits for, so on TERM
# it kills that child and exits: nothing is left running once the job is done.
renew_loop() {
  child=
  trap '[ -z "$child" ] || kill "$child" 2>/dev/null; exit 0' TERM
  while :; do
    sleep "$RENEW_SECONDS" & child=$!
    wait "$child"
    timeout "$HTTP_TIMEOUT" wget -q -O /dev/null --header "Authorization: RunnerToken $RUNNER_TOKEN" \
      --post-data "" "$HANGAR_SIM_URL/_runner/jobs/$job_id/renew" & child=$!
    # Refused (the job was cancelled or lost) or unreachable: say so, keep trying while the job runs.
    wait "$child" || echo "runner.sh: could not renew job $job_id" >&2
    child=
  done
}
renew_loop < /dev/null > /dev/null &
renew_pid=$!

mkdir "$dir/work"
(cd "$dir/work" && sh "$dir/job.sh") > "$dir/output" 2>&1
rc=$?
stop_renewing
tail -c 1048576 "$dir/output" > "$dir/output.tail"

timeout "$HTTP_TIMEOUT" wget -q -O /dev/null --header "Authorization: RunnerToken $RUNNER_TOKEN" \
  --header "Content-Type: text/plain" --post-file "$dir/output.tail" \
  "$HANGAR_SIM_URL/_runner/jobs/$job_id/result?exit=$rc" || { echo "runner.sh: could not report job $job_id" >&2; exit 1; }
exit "$rc"
