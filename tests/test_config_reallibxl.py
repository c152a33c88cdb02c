"""Every field class the builder can emit survives the real libxl's JSON parser.

The corpus and example round trips (tests/test_real_libxl.py) only cover what those files use; these
two guests use every branch of libxl/frontends/libvirt.py at once (keyed unions such as ``connection.socket``
and ``type.hostdev``, bitmaps, cpuid masks, enums), so a misspelt key or enum value (libxl drops
unknown keys silently and refuses bad enums) shows up here. Runs under the LD_PRELOAD shim.
"""

from __future__ import annotations

import pytest
import realxl

from libxl.domain.model import (
    CPU,
    OS,
    AcpiTable,
    CharDev,
    Clock,
    Controller,
    CpuFeature,
    Devices,
    Disk,
    Domain,
    Features,
    Graphics,
    Hostdev,
    Hyperv,
    Input,
    Interface,
    IPAddress,
    NumaCell,
    PCIAddress,
    Sound,
    Timer,
    USBDevice,
    VCpu,
    Video,
)
from libxl.frontends.libvirt import build_config

pytestmark = pytest.mark.reallibxl

_MISSING = realxl.libxl_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

HVM = Domain(
    name="kitchen-sink-hvm",
    memory_kib=1048576,
    os=OS(type="hvm", boot=["cdrom", "hd"], acpi_tables=[AcpiTable("slic", "/slic.dat")]),
    features=Features(
        acpi=True,
        apic=True,
        pae=True,
        hap=True,
        viridian=True,
        hyperv=Hyperv(features={"vapic": "on", "synic": "on"}),
        xen_passthrough="on",
        xen_passthrough_mode="sync_pt",
    ),
    cpu=CPU(
        mode="host-passthrough",
        features=[CpuFeature("avx2", "disable"), CpuFeature("lm", "require")],
        numa=[NumaCell(0, "0-1", 524288), NumaCell(1, "2-3", 524288)],
        cpuid_legacy=["0x80000008:eax=" + "x" * 32],
    ),
    clock=Clock(
        offset="localtime",
        adjustment="60",
        timers=[Timer("tsc", mode="native"), Timer("hpet", present="yes"), Timer("pit", tickpolicy="delay")],
    ),
    vcpu=VCpu(count=4, current=2, cpuset="0-3"),
    cputune_shares=300,
    commandline=["-d", "guest_errors"],
    on_crash="coredump-restart",
    devices=Devices(
        emulator="/usr/lib/xen/bin/qemu-system-i386",
        graphics=[
            Graphics(type="spice", port=5901, passwd="pw", mouse_mode="client", clipboard_copypaste=True),
            Graphics(type="vnc", port=5905, autoport=False, listen="127.0.0.1", keymap="de"),
        ],
        videos=[Video("vga", vram=16384)],
        serials=[CharDev("pty"), CharDev("tcp", source_mode="bind", source_host="::", source_service="4555")],
        sounds=[Sound("ac97")],
        inputs=[Input("tablet", "usb")],
        controllers=[
            Controller("usb", model="qemu-xhci"),
            Controller("usb", model="qusb2", ports=4),
            Controller("xenbus", max_event_channels=2047, max_grant_frames=64),
        ],
        channels=[
            CharDev("pty", target_name="org.qemu.guest_agent.0"),
            CharDev("unix", source_path="/run/ch.sock", target_name="ch1"),
        ],
        usb_hostdevs=[USBDevice(1, 2)],
        disks=[
            Disk(
                source="/img.qcow2",
                target_dev="hda",
                driver_name="qemu",
                driver_type="qcow2",
                discard="unmap",
                backend_domain="storage",
            ),
            Disk(device="cdrom", target_dev="hdc"),
        ],
        interfaces=[
            Interface(
                source_bridge="br0",
                mac="00:16:3e:00:00:01",
                model="e1000",
                ips=[IPAddress("192.0.2.1")],
                target_dev="vif-sink",
                bandwidth_out_average=100,
                backend_domain="netdom",
            ),
            Interface(type="hostdev", source_address={"bus": "0x0a", "slot": "0x10"}),
        ],
        hostdevs=[Hostdev(address=PCIAddress(1, 2, 3, 4), write_filtering=False)],
    ),
)
PV = Domain(
    name="kitchen-sink-pv",
    memory_kib=65536,
    os=OS(type="linux"),
    bootloader_args="-q --entry=1",
    features=Features(xen_e820_host=True),
    on_poweroff="rename-restart",
    on_crash="preserve",
    devices=Devices(
        graphics=[Graphics(type="sdl", display=":0", xauth="/root/.Xauthority")],
        disks=[
            Disk(
                type="block",
                source="/dev/vg/pv",
                target_dev="xvda",
                driver_name="phy",
                readonly=True,
                script="block-iscsi",
            )
        ],
        interfaces=[Interface(type="ethernet", rate="10Mb/s@20ms", script="vif-route")],
    ),
)
PVH = Domain(
    name="kitchen-sink-pvh", memory_kib=65536, os=OS(type="xenpvh", kernel="/k", cmdline="console=hvc0")
)


@pytest.mark.parametrize("dom", [HVM, PV, PVH], ids=lambda d: d.name)
def test_every_field_survives_libxl(dom):
    config = build_config(dom, xsdata={"xenreconcile-owner": "test"})
    (answer,) = realxl.roundtrip([config])
    assert "error" not in answer, answer
    assert realxl.lost_fields(config, answer["json"]) == []
