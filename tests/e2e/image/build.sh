#!/usr/bin/env bash
# Builds the e2e host: Xen's hypervisor as an ELF QEMU can multiboot, the Debian dom0 kernel and
# initrd, and the dom0 root filesystem as an ext4 image made without mounting anything (mke2fs -d).
#   build.sh OUT_DIR DEB_CACHE_DIR
# The result is written to OUT_DIR.tmp and renamed to OUT_DIR only when complete, so a cache entry
# never holds half an image. The test guest (same kernel, busybox initramfs) is built inside the
# root filesystem because `xl create` reads it from dom0's own disk.
set -euo pipefail
out=${1:?usage: build.sh OUT_DIR DEB_CACHE_DIR}
debs=${2:?usage: build.sh OUT_DIR DEB_CACHE_DIR}
here=$(cd "$(dirname "$0")" && pwd)
tmp="$out.tmp"
rm -rf "$tmp"
mkdir -p "$tmp" "$debs"
rootfs="$tmp/rootfs"

packages=$(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' | paste -sd, -)

# Use the machine's own apt sources (whatever mirror or proxy it is set up with).
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || { echo "build.sh: no apt sources on this machine" >&2; exit 1; }

mode=root
[ "$(id -u)" -eq 0 ] || mode=unshare

mmdebstrap --variant=minbase --mode="$mode" --format=directory --quiet \
  --include="$packages" \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --skip=download/empty \
  --setup-hook='mkdir -p "$1/usr/share/initramfs-tools/modules.d" "$1/var/cache/apt/archives"' \
  --setup-hook='printf "virtio_pci\nvirtio_blk\next4\n" > "$1/usr/share/initramfs-tools/modules.d/xenreconcile-e2e"' \
  --setup-hook="sync-in $debs /var/cache/apt/archives/" \
  --customize-hook="copy-in $here/guest-init $here/mkguest.sh $here/dom0-setup.sh /usr/local/sbin/" \
  --customize-hook="copy-in $here/xr-e2e-control.service /etc/systemd/system/" \
  --customize-hook='chroot "$1" /bin/sh /usr/local/sbin/mkguest.sh' \
  --customize-hook='chroot "$1" /bin/sh /usr/local/sbin/dom0-setup.sh' \
  --customize-hook="sync-out /var/cache/apt/archives $debs" \
  bookworm "$rootfs" "${sources[@]}"

# The boot files live outside the image: QEMU loads them directly.
xen_gz=$(ls "$rootfs"/boot/xen-4.17-amd64.gz)
gunzip -c "$xen_gz" > "$tmp/xen.elf"
cp "$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -1)" "$tmp/vmlinuz"
cp "$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -1)" "$tmp/initrd.img"
rm -f "$rootfs"/var/cache/apt/archives/*.deb

# Sparse image; the root filesystem is ~1 GiB, the rest is room for the tests' files.
mke2fs -q -t ext4 -L xr-e2e-dom0 -d "$rootfs" "$tmp/dom0.ext4" 3G
rm -rf "$rootfs"
rm -rf "$out"
mv "$tmp" "$out"
echo "build.sh: image ready in $out"
