#!/bin/sh
# Runs inside the new dom0 root filesystem (chroot), after mkguest.sh: dom0 boots with systemd as
# PID 1. The host's 9p shares come from fstab, the control channel is a unit, and the modules the
# scenarios need before any udev event asks for them (loop devices, the bridge, Xen's backends)
# are loaded at boot. Xen's daemons and xendomains are Debian's sysv scripts, run by systemd.
set -eu
cat >> /etc/fstab <<'FSTAB'
/dev/vda / ext4 rw,errors=remount-ro 0 1
src /mnt/src 9p trans=virtio,version=9p2000.L,msize=262144,ro 0 0
deb /mnt/deb 9p trans=virtio,version=9p2000.L,msize=262144,ro 0 0
out /mnt/out 9p trans=virtio,version=9p2000.L,msize=262144 0 0
FSTAB
mkdir -p /mnt/src /mnt/deb /mnt/out
printf '%s\n' loop bridge xen-blkback xen-netback xen-gntdev xen-gntalloc xen-evtchn xen-privcmd \
  > /etc/modules-load.d/xr-e2e.conf
echo xr-e2e-dom0 > /etc/hostname
systemctl enable xr-e2e-control.service
echo "dom0-setup: systemd $(systemctl --version | head -1)"
