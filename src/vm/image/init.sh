#!/bin/sh
# Hangar test-image /init (busybox sh, PID 1). Runs one job, then powers the VM off.
#
# The host hands files in through fw_cfg (never the kernel command line, which any guest
# process can read in /proc/cmdline, and never argv on the host):
#   opt/hangar/net  KEY=value words: IP=10.0.0.2/30 GW=10.0.0.1 DNS=10.0.0.1[,…] MTU=1500
#                   META=http://10.0.0.1:8169 (the agent's metadata endpoint)
#   opt/hangar/cmd  a shell script to run instead of the runner (tests: sleep, fork bomb, …)
# The runner's JIT config is no file: once the network is up it is fetched from $META/v1/jit
# (fetch_jit, guest-net.sh), kept in a shell variable and piped to runner.sh (exit 78: none).
# Markers on the console, one per line, for the agent and the benchmark:
#   HANGAR-GUEST-INIT, HANGAR-RUNNER-START, HANGAR-RUNNER-EXIT <code>
echo HANGAR-GUEST-INIT
META='' GATE='' GATE_WAIT=''
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TMPDIR=/tmp

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# The cloud kernel builds virtio as modules; each needs the ones before it.
for m in virtio_ring virtio virtio_mmio virtio_blk failover net_failover virtio_net qemu_fw_cfg; do
  insmod "/lib/modules/$m.ko" || echo "hangar-init: cannot load $m" >&2
done

F=/sys/firmware/qemu_fw_cfg/by_name/opt/hangar

# setup_net: the first NIC from opt/hangar/net; fetch_jit (guest-net.sh, shared by both images).
TAG=hangar-init
. /hangar/net.sh

ip link set lo up
[ -r "$F/net/raw" ] && setup_net

cd /tmp || exit 1
if [ -r "$F/cmd/raw" ]; then
  echo HANGAR-RUNNER-START
  sh "$F/cmd/raw" < /dev/null
  rc=$?
elif fetch_jit; then
  echo HANGAR-RUNNER-START
  # runner.sh reads the config from its stdin (printf is a builtin: no process has it in argv),
  # never from argv, the environment or this console. The job-started hook is the gate, as on
  # a real runner.
  printf '%s\n' "$JIT" | ACTIONS_RUNNER_HOOK_JOB_STARTED=/hangar/job-started.sh HANGAR_METADATA_URL=${META:-} HANGAR_GATE_TIMEOUT=${GATE_WAIT:-30} \
    /hangar/runner.sh -
  rc=$?
  JIT=''
else
  echo "hangar-init: no opt/hangar/cmd and no JIT config from the metadata endpoint" >&2
  rc=78
fi
echo "HANGAR-RUNNER-EXIT $rc"
sync
# Wait until the serial port has sent what the job wrote: poweroff -f drops the tty's unsent
# output (seen under load: a console's last ~6 KB missing). busybox stty sets the mode with
# TCSADRAIN, which returns once the transmitter is empty; bounded, as the host may not read.
timeout 5 stty -F /dev/console "$(stty -F /dev/console -g 2>/dev/null)" 2>/dev/null || true
poweroff -f
# Still here? Exiting PID 1 panics the kernel; panic=-1 plus QEMU's -no-reboot ends the VM.
exit "$rc"
