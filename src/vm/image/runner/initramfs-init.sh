#!/bin/sh
# Hangar runner-image initramfs /init (busybox sh, PID 1 until switch_root).
#
# Debian's cloud kernel builds virtio as modules, so the root disk (/dev/vda on virtio-blk)
# cannot be mounted before they are loaded. This loads them (and virtio_net and qemu_fw_cfg,
# which stay loaded for systemd), mounts /dev/vda read-write (the VM's own copy-on-write
# overlay: the base image is never written) and hands PID 1 to systemd on it.
echo HANGAR-GUEST-INIT
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

fail() {
  echo "hangar-initramfs: $*" >&2
  poweroff -f
  sleep 5
  exit 1 # PID 1 exiting panics the kernel; panic=-1 and QEMU's -no-reboot end the VM
}

for m in virtio_ring virtio virtio_mmio virtio_blk failover net_failover virtio_net qemu_fw_cfg; do
  insmod "/lib/modules/$m.ko" || echo "hangar-initramfs: cannot load $m" >&2
done

root=/dev/vda
i=0
while [ ! -b "$root" ]; do
  i=$((i + 1))
  [ "$i" -le 100 ] || fail "no root disk $root after 10 s"
  sleep 0.1
done
mkdir -p /newroot
mount -t ext4 -o rw "$root" /newroot || fail "cannot mount $root"
[ -e /newroot/lib/systemd/systemd ] || fail "$root has no /lib/systemd/systemd"

mount --move /dev /newroot/dev
umount /sys
umount /proc
exec switch_root /newroot /sbin/init
