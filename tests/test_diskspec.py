"""xl-disk-configuration(5) specs and the legacy xm disk form."""

from __future__ import annotations

import pytest

from libxl.domain.formats.diskspec import (
    format_xl_disk,
    format_xm_disk,
    parse_disk_spec,
    parse_xl_disk,
    parse_xm_disk,
)
from libxl.domain.model import Disk


def test_positional_full() -> None:
    d = parse_xl_disk("/dev/vg/guest,raw,hda,rw")
    assert (d.type, d.driver_name, d.driver_type, d.source, d.target_dev, d.readonly) == \
        ("file", "qemu", "raw", "/dev/vg/guest", "hda", False)


def test_positional_with_empty_slots_takes_defaults() -> None:
    spec = parse_disk_spec("/dev/vg/guest,,hda")
    assert (spec.target, spec.format, spec.vdev, spec.access) == ("/dev/vg/guest", None, "hda", None)
    assert parse_xl_disk("/x,,hdb,,").driver_type == "raw"


def test_keyed_form_and_target_takes_the_rest_with_commas() -> None:
    d = parse_xl_disk("format=qcow2, vdev=xvdb, access=ro, backendtype=phy, target=/a,b=c,d")
    assert (d.type, d.driver_name, d.driver_type, d.source, d.readonly) == \
        ("block", "phy", "qcow2", "/a,b=c,d", True)


@pytest.mark.parametrize("spec", ["/root/image.iso,,hdc,cdrom", "/root/image.iso,,hdc,,cdrom",
                                  "/root/image.iso,raw,hdc,devtype=cdrom",
                                  "format=raw, vdev=hdc, access=ro, devtype=cdrom, target=/root/image.iso",
                                  "raw:/root/image.iso,hdc:cdrom,ro"])
def test_equivalent_cdrom_forms_from_the_man_page(spec: str) -> None:
    d = parse_xl_disk(spec)
    assert (d.device, d.source, d.target_dev, d.readonly, d.driver_type) == \
        ("cdrom", "/root/image.iso", "hdc", True, "raw")


def test_cdrom_without_target_has_no_media() -> None:
    d = parse_xl_disk("format=raw,vdev=hdd,access=ro,devtype=cdrom")
    assert d.is_cdrom and d.source is None and d.readonly


@pytest.mark.parametrize(("spec", "driver", "dtype", "kind"), [
    ("phy:/dev/sda,xvda,w", "phy", "raw", "block"),
    ("file:/img,xvda,w", "qemu", "raw", "file"),
    ("tap:aio:/img,xvda,w", "tap", "raw", "file"),
    ("tap:qcow:/img,xvda,w", "tap", "qcow", "file"),
    ("tap2:tapdisk:aio:/img,xvda,w", "tap", "raw", "file"),
])
def test_deprecated_prefixes(spec: str, driver: str, dtype: str, kind: str) -> None:
    d = parse_xl_disk(spec)
    assert (d.driver_name, d.driver_type, d.type, d.target_dev) == (driver, dtype, kind, "xvda")
    assert d.source in ("/dev/sda", "/img")


def test_script_discard_backend_and_shared_access() -> None:
    d = parse_xl_disk("vdev=xvda,access=!,script=block-iscsi,discard,backend=drv,target=iqn.x")
    assert (d.script, d.discard, d.backend_domain, d.shareable) == ("block-iscsi", "unmap", "drv", True)
    assert parse_xl_disk("/x,,xvda,no-discard").discard == "ignore"


@pytest.mark.parametrize(("spec", "problem"), [
    ("/x,raw", "no vdev"), ("/x,bogus,hda", "unknown disk format"), ("/x,raw,hda,rw,extra", "too many"),
    ("vdev=hda,vdev=hdb", "twice"), ("vdev=hda,colour=red", "unknown disk parameter"),
    ("/x,,hda,maybe", "unknown access"), ("/x,,hda,backendtype=nfs", "unknown backendtype"),
])
def test_bad_specs(spec: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_disk_spec(spec)


@pytest.mark.parametrize("disk", [
    Disk(type="block", driver_name="phy", driver_type="raw", source="/dev/sda", target_dev="hda"),
    Disk(type="file", driver_name="qemu", driver_type="qcow2", source="/i,with,commas", target_dev="xvdb"),
    Disk(type="file", device="cdrom", driver_name="qemu", driver_type="raw", target_dev="hdc", readonly=True),
    Disk(type="file", driver_name="tap", driver_type="vhd", source="/v", target_dev="xvdc", shareable=True,
         script="s", discard="ignore", backend_domain="d"),
])
def test_xl_format_round_trips(disk: Disk) -> None:
    assert parse_xl_disk(format_xl_disk(disk)) == disk


@pytest.mark.parametrize(("spec", "expect"), [
    ("phy:/dev/HostVG/g,hda,w", ("block", "phy", "raw", "/dev/HostVG/g", "hda", "disk", False)),
    ("file:/root/boot.iso,hdc:cdrom,r", ("file", "file", "raw", "/root/boot.iso", "hdc", "cdrom", True)),
    ("tap:aio:/root/some.img,xvda,w", ("file", "tap", "raw", "/root/some.img", "xvda", "disk", False)),
    ("tap2:aio:/root/some.img,xvda,w", ("file", "tap2", "raw", "/root/some.img", "xvda", "disk", False)),
    (",hdc:cdrom,r", ("block", "phy", "raw", None, "hdc", "cdrom", True)),
    ("/dev/sdb,ioemu:hdb,w", ("block", "phy", "raw", "/dev/sdb", "hdb", "disk", False)),
])
def test_xm_disks(spec: str, expect: tuple) -> None:
    d = parse_xm_disk(spec)
    assert (d.type, d.driver_name, d.driver_type, d.source, d.target_dev, d.device, d.readonly) == expect
    assert parse_xm_disk(format_xm_disk(d)) == d


def test_xm_shared_mode_and_errors() -> None:
    assert parse_xm_disk("phy:/dev/x,xvda,w!").shareable
    with pytest.raises(ValueError, match="mode"):
        parse_xm_disk("phy:/dev/x,xvda,rx")
    with pytest.raises(ValueError, match="source,vdev,mode"):
        parse_xm_disk("phy:/dev/x")
