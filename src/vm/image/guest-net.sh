# Hangar guest network set-up and JIT config fetch, sourced by the job script of either image
# (the test image's /init, busybox sh; the runner image's hangar-runner, dash).
# Expects F (the fw_cfg folder of opt/hangar) and TAG (the caller's name, for its messages).
#
# opt/hangar/net holds KEY=value words: IP=10.0.0.2/30 GW=10.0.0.1 DNS=10.0.0.1[,…] MTU=1500
# META=http://10.0.0.1:8169 (the agent's metadata endpoint on the gateway: JIT config, job-start gate)
# GATE=15 (how long the agent waits for the control at the job-start gate: the hook waits that and a
# margin (GATE_WAIT: GATE + 15 s, at least 30 s; HANGAR_GATE_TIMEOUT), so that the agent's answer, not the hook's own timeout, decides).
# `ip=` on the kernel command line does nothing with this kernel, so the first NIC is set up here.
setup_net() {
  IP='' GW='' DNS='' MTU='' META='' GATE=''
  for kv in $(cat "$F/net/raw"); do
    case $kv in
      IP=*) IP=${kv#IP=} ;;
      GW=*) GW=${kv#GW=} ;;
      DNS=*) DNS=${kv#DNS=} ;;
      MTU=*) MTU=${kv#MTU=} ;;
      META=*) META=${kv#META=} ;;
      GATE=*) GATE=${kv#GATE=} ;;
    esac
  done
  # The hook's own bound: the agent's, and room for its GitHub lookups; never under the old 30 s.
  GATE_WAIT=$(( ${GATE:-15} + 15 ))
  [ "$GATE_WAIT" -ge 30 ] || GATE_WAIT=30
  nic=''
  for d in /sys/class/net/*; do
    [ "${d##*/}" = lo ] || { nic=${d##*/}; break; }
  done
  [ -n "$nic" ] || { echo "$TAG: opt/hangar/net given but the VM has no network interface" >&2; return 1; }
  [ -n "$IP" ] || { echo "$TAG: opt/hangar/net has no IP=" >&2; return 1; }
  [ -z "$MTU" ] || ip link set "$nic" mtu "$MTU" || return 1
  ip link set "$nic" up && ip addr add "$IP" dev "$nic" || return 1
  [ -z "$GW" ] || ip route add default via "$GW" || return 1
  : > /etc/resolv.conf
  for d in $(echo "$DNS" | tr ',' ' '); do echo "nameserver $d" >> /etc/resolv.conf; done
}

# fetch_jit: the runner's JIT config from the agent's metadata endpoint ($META/v1/jit, set by
# setup_net) into the shell variable JIT: never a file, argv, or this console. The agent mints
# the runner while the VM boots and holds the request until the config is there; it answers
# once, then 410 Gone, and 404 when no config is coming (the mint was refused). Connection
# failures (the gateway not up yet) are retried for up to HANGAR_JIT_WAIT seconds (120).
# Returns 1 with no config. curl (runner image) or busybox wget under timeout (test image).
fetch_jit() {
  JIT=''
  [ -n "${META:-}" ] || { echo "$TAG: opt/hangar/net has no META=: nowhere to fetch the JIT config from" >&2; return 1; }
  jit_err=/tmp/.hangar-jit-err.$$
  jit_end=$(( $(date +%s) + ${HANGAR_JIT_WAIT:-120} ))
  while [ "$(date +%s)" -lt "$jit_end" ]; do
    if command -v curl >/dev/null 2>&1; then
      JIT=$(curl -fsS --max-time 90 "$META/v1/jit" 2>"$jit_err") || JIT=''
    else
      JIT=$(timeout 90 wget -q -O - "$META/v1/jit" 2>"$jit_err") || JIT=''
    fi
    if [ -n "$JIT" ]; then rm -f "$jit_err"; return 0; fi
    # The agent's own "no": stop asking (the error text is never the config).
    if grep -qE '(^|[^0-9])(404|410)([^0-9]|$)' "$jit_err" 2>/dev/null; then
      echo "$TAG: the agent has no JIT config for this VM: $(head -c 200 "$jit_err")" >&2
      rm -f "$jit_err"
      return 1
    fi
    sleep 1
  done
  echo "$TAG: no JIT config from $META within ${HANGAR_JIT_WAIT:-120} s: $(head -c 200 "$jit_err" 2>/dev/null)" >&2
  rm -f "$jit_err"
  return 1
}
