#!/bin/sh
# Hangar runner-image job script: ExecStart of hangar-runner.service, as root.
#
# The host hands files in through fw_cfg (never the kernel command line, which every guest
# process can read in /proc/cmdline). The sysfs files are mode 0400, root's:
#   opt/hangar/net  KEY=value words: IP=10.0.0.2/30 GW=10.0.0.1 DNS=10.0.0.1[,…] MTU=1500
#                   META=http://10.0.0.1:8169 (the agent's metadata endpoint)
# The runner's JIT config (base64, from GitHub's generate-jitconfig; a secret) is no file: once
# the network is up it is fetched from $META/v1/jit (fetch_jit, net.sh), which answers once.
# Markers on the console, one per line, for the agent:
#   HANGAR-RUNNER-START, HANGAR-RUNNER-EXIT <code>
# Exit codes of its own: 75 the network could not be configured, 78 there is no JIT config.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

F=/sys/firmware/qemu_fw_cfg/by_name/opt/hangar
META='' GATE='' GATE_WAIT=''
RUNNER_USER=runner
RUNNER_DIR=/home/runner/actions-runner

# The initramfs loaded it; load it here too, in case this root is booted some other way.
[ -d "$F" ] || modprobe qemu_fw_cfg 2>/dev/null || true

# setup_net: the first NIC from opt/hangar/net; fetch_jit (guest-net.sh, shared by both images).
TAG=hangar-runner
. /usr/local/lib/hangar/net.sh

ip link set lo up
rc=0
if [ -r "$F/net/raw" ] && ! setup_net; then
  rc=75
elif ! fetch_jit; then
  echo "hangar-runner: no JIT config from the metadata endpoint: nothing to run" >&2
  rc=78
else
  cd "$RUNNER_DIR" || exit 1
  echo HANGAR-RUNNER-START
  # The JIT config reaches the runner in its environment, which the runner reads as its
  # --jitconfig argument (ACTIONS_RUNNER_INPUT_<ARG>, actions/runner CommandSettings) and then
  # removes from the environment it hands to jobs. Never on a command line: argv is readable
  # by every user in /proc/<pid>/cmdline; /proc/<pid>/environ only by the process's own user
  # and root. Only this root shell holds it (a variable); no copy is written to disk by us.
  # ACTIONS_RUNNER_HOOK_JOB_STARTED: the runner runs Hangar's gate before the job's first step
  # (GitHub's runner hooks); HANGAR_METADATA_URL is where the gate asks (from opt/hangar/net).
  ACTIONS_RUNNER_INPUT_JITCONFIG=$JIT \
  ACTIONS_RUNNER_HOOK_JOB_STARTED=/usr/local/lib/hangar/job-started.sh HANGAR_METADATA_URL=${META:-} HANGAR_GATE_TIMEOUT=${GATE_WAIT:-30} \
  HOME=/home/runner USER=$RUNNER_USER LOGNAME=$RUNNER_USER SHELL=/bin/bash \
    setpriv --reuid="$RUNNER_USER" --regid="$RUNNER_USER" --init-groups ./run.sh < /dev/null
  rc=$?
  JIT=''
fi
echo "HANGAR-RUNNER-EXIT $rc"
sync
# hangar-runner.service powers the VM off when this script ends (SuccessAction/FailureAction).
exit 0
