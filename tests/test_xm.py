"""Legacy xm configs: what differs from xl (builder, HVM kernel = loader, extra/root, xm disks)."""

from __future__ import annotations

import pytest

from libxl.domain.formats.xl import parse_xl
from libxl.domain.formats.xlcfg import parse_cfg
from libxl.domain.formats.xm import format_xm, parse_xm
from libxl.errors import ConfigError

HVM = """name = "g"
memory = 394
maxmem = 579
vcpus = 1
builder = "hvm"
kernel = "/usr/lib/xen/boot/hvmloader"
boot = "d"
hpet = 1
vnc = 1
vncunused = 0
vncdisplay = 4
serial = "file:/tmp/serial.log"
parallel = "tcp:127.0.0.1:7777"
usb = 1
usbdevice = "tablet"
disk = [ "phy:/dev/vg/g,hda,w", "file:/root/boot.iso,hdc:cdrom,r", ",hdd:cdrom,r" ]
vif = [ "mac=00:16:3e:66:92:9c,bridge=xenbr1,type=netfront" ]
"""

PV = """name = "p"
memory = 512
vcpus = 2
bootloader = "/usr/bin/pygrub"
bootargs = "-q"
root = "/dev/xvda2"
extra = "console=hvc0"
vfb = [ "type=vnc,vncunused=1,vnclisten=127.0.0.1,vncpasswd=123poi" ]
disk = [ "tap:aio:/root/some.img,xvda,w" ]
"""


def settings(text: str) -> dict:
    return {k: s.value for k, s in parse_cfg(text).items()}


def test_hvm_kernel_is_the_loader_and_features_default_on() -> None:
    dom = parse_xm(HVM)
    assert (dom.os.type, dom.os.loader.path, dom.os.loader.type, dom.os.kernel) == \
        ("hvm", "/usr/lib/xen/boot/hvmloader", "rom", None)
    assert (dom.features.pae, dom.features.acpi, dom.features.apic) == (True, True, True)
    assert dom.clock.timers[0].name == "hpet" and dom.clock.timers[0].present == "yes"
    gfx = dom.devices.graphics[0]
    assert (gfx.port, gfx.autoport) == (5904, False)
    assert [(d.driver_name, d.device, d.source) for d in dom.devices.disks] == \
        [("phy", "disk", "/dev/vg/g"), ("file", "cdrom", "/root/boot.iso"), ("phy", "cdrom", None)]
    assert dom.devices.interfaces[0].model == "netfront"
    assert dom.devices.serials[0].source_path == "/tmp/serial.log"
    assert dom.devices.parallels[0].source_host == "127.0.0.1"
    assert [(i.type, i.bus) for i in dom.devices.inputs] == [("tablet", "usb")]


def test_pv_root_and_extra_become_the_cmdline() -> None:
    dom = parse_xm(PV)
    assert (dom.os.cmdline, dom.bootloader, dom.bootloader_args) == ("root=/dev/xvda2 console=hvc0",
                                                                    "/usr/bin/pygrub", "-q")
    assert (dom.devices.disks[0].driver_name, dom.devices.disks[0].driver_type) == ("tap", "raw")
    assert dom.devices.graphics[0].passwd == "123poi"


@pytest.mark.parametrize("text", [HVM, PV])
def test_round_trip(text: str) -> None:
    dom = parse_xm(text)
    assert parse_xm(format_xm(dom)) == dom


def test_writer_uses_xm_spellings() -> None:
    hvm = settings(format_xm(parse_xm(HVM)))
    assert hvm["kernel"] == "/usr/lib/xen/boot/hvmloader" and hvm["builder"] == "hvm"
    assert hvm["disk"] == ["phy:/dev/vg/g,hda,w", "file:/root/boot.iso,hdc:cdrom,r", ",hdd:cdrom,r"]
    assert hvm["vif"] == ["mac=00:16:3e:66:92:9c,bridge=xenbr1,type=netfront"]
    assert (hvm["vncunused"], hvm["vncdisplay"], hvm["usbdevice"]) == (0, 4, "tablet")
    pv = settings(format_xm(parse_xm(PV)))
    assert pv["extra"] == "root=/dev/xvda2 console=hvc0" and "cmdline" not in pv
    assert pv["disk"] == ["tap:aio:/root/some.img,xvda,w"]


def test_xl_reads_the_same_guest_the_same_way_where_formats_agree() -> None:
    shared = 'name = "s"\nmemory = 64\nvcpus = 1\nvif = [ "mac=00:16:3e:00:00:01,bridge=br0" ]\n'
    assert parse_xl(shared) == parse_xm(shared)


def test_errors() -> None:
    with pytest.raises(ConfigError, match=r"x.cfg:1: builder: unknown builder 'pvh'"):
        parse_xm('builder = "pvh"\nname = "a"\nmemory = 1\n', file="x.cfg")
    with pytest.raises(ConfigError, match=r"x.cfg:3: disk: 'phy:/x': expected 'source,vdev,mode'"):
        parse_xm('name = "a"\nmemory = 1\ndisk = [ "phy:/x" ]\n', file="x.cfg")
    pvh = parse_xl('name = "a"\nmemory = 1\ntype = "pvh"\n')
    with pytest.raises(ConfigError, match="PVH"):
        format_xm(pvh)
