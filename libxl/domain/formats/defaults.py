"""libvirt's post-parse defaults for Xen guests: what ``virsh domxml-from-native`` adds on its own.

A native config says only what differs from xl's defaults; libvirt's XML spells the implicit parts
out (the xenbus controller, an IDE controller and drive addresses for IDE disks, PS/2 or Xen input
devices, the Xen balloon, a PV console, a video card for graphics, the machine type...). Adding them
here, after parsing and before formatting, keeps the parsers literal and gives the same XML as
libvirt. ``with_defaults`` returns a new model and never overwrites what the input said.
"""

from __future__ import annotations

import copy
import string

from libxl.domain.formats.xencommon import HVMLOADER
from libxl.domain.model import CharDev, Controller, Disk, Domain, Input, Listen, Loader, Video

ARCH = "x86_64"
_MACHINE = {"hvm": "xenfv", "xenpvh": "xenpvh", "linux": "xenpv", "xen": "xenpv"}
#: Default video RAM (KiB) per model, as libvirt's Xen driver sets it.
_VRAM = {"cirrus": 8192, "vga": 16384, "xen": 4096, "qxl": 65536}
#: Disk bus by target name prefix.
_BUS_OF_PREFIX = (("xvd", "xen"), ("hd", "ide"), ("sd", "scsi"), ("fd", "fdc"), ("vd", "virtio"))
#: Units per bus and buses per controller, for drive addresses (libvirt's numbering).
_DRIVE_LAYOUT = {"ide": (2, 2), "fdc": (2, 1), "scsi": (7, 1), "sata": (1, 6)}


def default_vram(model: str) -> int | None:
    """The video RAM (KiB) libvirt gives a ``<video>`` model that does not say."""
    return _VRAM.get(model)


def with_defaults(dom: Domain, *, libxl_driver: bool = False) -> Domain:
    """``dom`` with libvirt's implicit parts; ``libxl_driver`` adds what libvirt's libxl driver
    (the one behind ``xen-xl``) fills in on top: the ``xen`` backend of PCI host devices."""
    out = copy.deepcopy(dom)
    _os(out)
    _devices(out)
    if libxl_driver:
        for hostdev in out.devices.hostdevs:
            if hostdev.type == "pci" and hostdev.driver_name is None:
                hostdev.driver_name = "xen"
    return out


def _os(dom: Domain) -> None:
    if dom.vcpu.placement is None:
        dom.vcpu.placement = "static"
    os = dom.os
    os.arch = os.arch or ARCH
    os.machine = os.machine or _MACHINE.get(os.type)
    if os.is_hvm:
        if os.loader is None:
            os.loader = Loader(path=HVMLOADER, type="rom")
        elif os.loader.type is None:
            os.loader.type = "rom"
        if not os.boot:
            os.boot = ["hd"]
    elif dom.clock.offset == "utc" and dom.clock.adjustment is None:
        dom.clock.adjustment = "reset"


def disk_bus(disk: Disk, hvm: bool) -> str:
    """The bus libvirt assumes from the target name: xvdX is xen, hdX ide, sdX scsi (HVM only)."""
    if not hvm:
        return "xen"
    for prefix, bus in _BUS_OF_PREFIX:
        if disk.target_dev.startswith(prefix):
            return bus
    return "xen"


def _disk_index(name: str) -> int:
    """``hda`` -> 0, ``sdz`` -> 25, ``sdaa`` -> 26 (libvirt's disk name numbering); -1 if unknown."""
    prefix = next((p for p, _ in _BUS_OF_PREFIX if name.startswith(p)), None)
    letters = name[len(prefix):] if prefix else ""
    if not letters or not all(ch in string.ascii_lowercase for ch in letters):
        return -1
    index = 0
    for ch in letters:
        index = index * 26 + (ord(ch) - ord("a") + 1)
    return index - 1


def _drive_address(disk: Disk) -> dict[str, str] | None:
    layout = _DRIVE_LAYOUT.get(disk.target_bus or "")
    index = _disk_index(disk.target_dev)
    if layout is None or index < 0:
        return None
    units, buses = layout
    return {"type": "drive", "controller": str(index // (units * buses)),
            "bus": str(index // units % buses), "target": "0", "unit": str(index % units)}


def _devices(dom: Domain) -> None:
    devs, hvm = dom.devices, dom.os.is_hvm
    for disk in devs.disks:
        disk.target_bus = disk.target_bus or disk_bus(disk, hvm)
        if disk.address is None:
            disk.address = _drive_address(disk)
    if not any(c.type == "xenbus" for c in devs.controllers):
        devs.controllers.insert(0, Controller("xenbus"))
    for bus in ("ide", "scsi", "fdc", "sata"):
        used = sorted({int(d.address["controller"]) for d in devs.disks
                       if d.target_bus == bus and d.address and "controller" in d.address})
        have = {c.index for c in devs.controllers if c.type == bus}
        devs.controllers += [Controller(bus, index=i) for i in used if i not in have]
    for port, dev in enumerate(devs.serials):
        dev.target_port = port if dev.target_port is None else dev.target_port
    for port, dev in enumerate(devs.parallels):
        dev.target_port = port if dev.target_port is None else dev.target_port
    if not devs.consoles:
        if not hvm:
            devs.consoles.append(CharDev(type="pty", target_type="xen", target_port=0))
        elif devs.serials:
            console = copy.deepcopy(devs.serials[0])
            console.target_type, console.target_port = "serial", devs.serials[0].target_port or 0
            devs.consoles.append(console)
    bus = "ps2" if hvm else "xen"
    for kind in ("mouse", "keyboard"):
        if not any(i.type == kind and i.bus == bus for i in devs.inputs):
            devs.inputs.append(Input(kind, bus))
    for gfx in devs.graphics:
        if gfx.type in ("vnc", "spice"):
            if gfx.type == "vnc" and gfx.autoport is None:
                gfx.autoport = gfx.port is None or gfx.port < 0
            if gfx.autoport and gfx.type == "vnc":
                gfx.port = -1
            if not gfx.listens:
                gfx.listens = [Listen(address=gfx.listen)]
    if devs.graphics and not devs.videos:
        devs.videos.append(Video(model="cirrus" if hvm else "xen"))
    for i, video in enumerate(devs.videos):
        video.vram = video.vram if video.vram is not None else _VRAM.get(video.model)
        video.heads = video.heads or 1
        video.primary = video.primary or i == 0
    if devs.memballoon is None:
        devs.memballoon = "xen"


__all__ = ["ARCH", "with_defaults", "disk_bus", "default_vram"]
