"""xend s-expressions (import only)."""

from __future__ import annotations

import pytest

from libxl.domain.formats.sxpr import parse_sexpr, parse_sxpr
from libxl.errors import ConfigError

HVM = """(domain (domid 3)(name 'fv')(memory 400)(maxmem 512)(vcpus 2)\\
(uuid 'b5d70dd275cdaca517769660b059d8bc')(on_poweroff 'destroy')(on_reboot 'restart')\\
(image (hvm (kernel '/usr/lib/xen/boot/hvmloader')(device_model '/usr/bin/qemu-dm')(boot dc)\\
(acpi 1)(pae 1)(vnc 1)(keymap ja)(localtime 1)(serial (pty /dev/ttyS1))(soundhw 'all')(usbdevice tablet)))\\
(device (vbd (dev 'ioemu:hda')(uname 'phy:/dev/vg/fv')(mode 'w')))\\
(device (tap2 (dev 'hdc:cdrom')(uname 'tap2:aio:/iso')(mode 'r')))\\
(device (vif (mac '00:16:3e:1b:b1:47')(bridge 'xenbr0')(ip '192.0.2.1')(rate '10240KB/s')))\\
(device (pci (dev (domain 0x0001)(bus 0x0c)(slot 0x1b)(func 0x2)))))
"""

PV = """(domain
    (name pv)
    (memory 256)
    (bootloader /usr/bin/pygrub)
    (bootloader_args )
    (cpu_time 1.5)
    (image (linux (kernel /k)(ramdisk /i)(args 'ro quiet')))
    (device (vfb (type vnc)(vncunused 0)(vncdisplay 25)(vnclisten 0.0.0.0)))
"""


def test_hvm_guest() -> None:
    dom = parse_sxpr(HVM)
    assert (dom.id, dom.name, dom.uuid) == (3, "fv", "b5d70dd2-75cd-aca5-1776-9660b059d8bc")
    assert (dom.memory_kib, dom.current_memory_kib, dom.vcpu.count) == (512 * 1024, 400 * 1024, 2)
    assert (dom.os.type, dom.os.loader.path, dom.os.kernel, dom.os.boot) == \
        ("hvm", "/usr/lib/xen/boot/hvmloader", None, ["cdrom", "hd"])
    assert dom.devices.emulator == "/usr/bin/qemu-dm" and dom.clock.basis == "localtime"
    assert [(s.type, s.target_port) for s in dom.devices.serials] == [("pty", 0), ("dev", 1)]
    assert [s.model for s in dom.devices.sounds] == ["sb16", "es1370"]
    assert [(d.target_dev, d.driver_name, d.device) for d in dom.devices.disks] == \
        [("hda", "phy", "disk"), ("hdc", "tap2", "cdrom")]
    nic = dom.devices.interfaces[0]
    assert (nic.source_bridge, nic.target_dev, nic.ips[0].address, nic.bandwidth_out_average) == \
        ("xenbr0", "vif3.0", "192.0.2.1", 10240)
    assert str(dom.devices.hostdevs[0].address) == "0001:0c:1b.2"
    assert dom.devices.graphics[0].keymap == "ja"


def test_pv_guest_with_missing_final_paren_and_runtime_fields() -> None:
    dom = parse_sxpr(PV)
    assert (dom.os.type, dom.os.kernel, dom.os.initrd, dom.os.cmdline) == ("linux", "/k", "/i", "ro quiet")
    assert (dom.bootloader, dom.bootloader_args) == ("/usr/bin/pygrub", None)
    assert (dom.devices.graphics[0].port, dom.devices.graphics[0].listen) == (5925, "0.0.0.0")


def test_hvm_with_loader_keeps_kernel_for_direct_boot() -> None:
    dom = parse_sxpr("(domain (name a)(memory 1)(image (hvm (kernel /k)(loader /l))))")
    assert (dom.os.kernel, dom.os.loader.path) == ("/k", "/l")


def test_sexpr_reader() -> None:
    assert parse_sexpr("(a (b 'c d') \"e\") trailing") == ["a", ["b", "c d"], "e"]


@pytest.mark.parametrize(("text", "message"), [
    (")", "s.sxp:1: unbalanced ')'"),
    ("", "s.sxp: empty input: expected (domain ...)"),
    ("(vm (name a))", "s.sxp: expected (domain ...)"),
    ("(domain (memory 1))", "s.sxp: name: missing (name ...)"),
    ("(domain (name a))", "s.sxp: memory: missing (memory ...)"),
    ("(domain (name a)(memory lots))", "s.sxp: memory: expected a whole number, got 'lots'"),
    ("(domain (name a)(memory 1)(device (vbd (uname phy:/x)(mode w))))",
     "s.sxp: device vbd: no target device"),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_sxpr(text, file="s.sxp")
    assert str(info.value) == message
