#!/bin/sh
# Runs inside the new dom0 root filesystem (chroot): builds the test guest's files in
# /var/lib/xr-e2e/ (uncompressed kernel, because libxc decompressing a bzImage under TCG costs
# seconds per create) and the dom0 defaults the tests rely on.
set -eu
dir=/var/lib/xr-e2e
mkdir -p "$dir" /var/log/xen/console
kver=$(ls /lib/modules | sort -V | tail -1)
python3 - "/boot/vmlinuz-$kver" "$dir/vmlinux" <<'PY'
import gzip, lzma, subprocess, sys
data = open(sys.argv[1], "rb").read()
magics = [(b"\x1f\x8b\x08", lambda b: gzip.GzipFile(fileobj=__import__("io").BytesIO(b)).read()),
          (b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor().decompress(b)),
          (b"\x28\xb5\x2f\xfd", lambda b: subprocess.run(["zstd", "-dc"], input=b, capture_output=True).stdout)]
for magic, unpack in magics:
    at = data.find(magic)
    while at >= 0:
        try:
            elf = unpack(data[at:])
        except Exception:
            elf = b""
        if elf[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(elf)
            sys.exit(0)
        at = data.find(magic, at + 1)
sys.exit("mkguest: no ELF kernel found inside " + sys.argv[1])
PY
cp "$dir/vmlinux" "$dir/vmlinux-alt"
work=$(mktemp -d)
mkdir -p "$work/bin" "$work/proc" "$work/sys" "$work/dev" "$work/lib/modules"
cp /bin/busybox "$work/bin/busybox"
cp /usr/local/sbin/guest-init "$work/init"
chmod +x "$work/init"
for m in xen-blkfront xen-netfront; do
  f=$(find "/lib/modules/$kver" -name "$m.ko*" | head -1)
  case "$f" in
    *.ko) cp "$f" "$work/lib/modules/" ;;
    *.ko.xz) xz -dc "$f" > "$work/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$work/lib/modules/$m.ko" ;;
  esac
done
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) > "$dir/guest-initrd.gz"
rm -rf "$work"
truncate -s 64M "$dir/disk1.img" "$dir/disk2.img"
printf 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"\n' > /etc/default/xen
# libvirtd (peer comparison boot) fails on its QEMU driver in this dom0: keep only the Xen driver.
rm -f /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so

echo "mkguest: guest kernel $kver, initramfs $(wc -c < "$dir/guest-initrd.gz") bytes"
