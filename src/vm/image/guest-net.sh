# Hangar guest network set-up, sourced by the job script of either image (the test image's /init,
# busybox sh; the runner image's hangar-runner, dash) before it defines nothing else of the kind.
# Expects F (the fw_cfg folder of opt/hangar) and TAG (the caller's name, for its messages).
#
# opt/hangar/net holds KEY=value words: IP=10.0.0.2/30 GW=10.0.0.1 DNS=10.0.0.1[,…] MTU=1500
# META=http://10.0.0.1:8169 (the agent's metadata endpoint on the gateway; the job-start gate).
# `ip=` on the kernel command line does nothing with this kernel, so the first NIC is set up here.
setup_net() {
  IP='' GW='' DNS='' MTU='' META=''
  for kv in $(cat "$F/net/raw"); do
    case $kv in
      IP=*) IP=${kv#IP=} ;;
      GW=*) GW=${kv#GW=} ;;
      DNS=*) DNS=${kv#DNS=} ;;
      MTU=*) MTU=${kv#MTU=} ;;
      META=*) META=${kv#META=} ;;
    esac
  done
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
