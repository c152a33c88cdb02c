"""The config builder, field class by field class, on hand-built domain models."""

from __future__ import annotations

import pytest

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
    Loader,
    NumaCell,
    PCIAddress,
    Timer,
    VCpu,
    Video,
)
from libxl.errors import ConfigError
from libxl.frontends.libvirt import build_config, build_disk, build_nic, parse_cpuset, shadow_memkb


def pv(**kw) -> Domain:
    kw.setdefault("os", OS(type="linux", kernel="/boot/vmlinuz"))
    return Domain(name="g", uuid="039e9ee6-4a84-3055-4c81-8ba426ae2656", memory_kib=524288, **kw)


def hvm(**kw) -> Domain:
    kw.setdefault("os", OS(type="hvm"))
    return Domain(name="h", memory_kib=1048576, **kw)


# ---- c_info -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "os_type, expected", [("linux", "pv"), ("xen", "pv"), ("hvm", "hvm"), ("xenpvh", "pvh")]
)
def test_domain_type_picks_exactly_one_matching_variant(os_type, expected):
    dom = pv(os=OS(type=os_type, kernel="/k"))
    cfg = build_config(dom)
    assert cfg["c_info"]["type"] == expected
    assert [k for k in cfg["b_info"] if k.startswith("type.")] == [f"type.{expected}"]


@pytest.mark.parametrize("hap, expected", [(None, None), (True, "True"), (False, "False")])
def test_hap_is_tristate(hap, expected):
    assert build_config(hvm(features=Features(hap=hap)))["c_info"].get("hap") == expected


@pytest.mark.parametrize(
    "state, mode, expected",
    [("on", None, "enabled"), ("on", "sync_pt", "sync_pt"), ("off", None, "disabled"), (None, None, None)],
)
def test_passthrough(state, mode, expected):
    feats = Features(xen_passthrough=state, xen_passthrough_mode=mode)
    assert build_config(hvm(features=feats))["c_info"].get("passthrough") == expected


def test_xsdata_lands_in_c_info_and_is_copied():
    marker = {"xenreconcile-owner": "agent-1"}
    cfg = build_config(pv(), xsdata=marker)
    assert cfg["c_info"]["xsdata"] == marker and cfg["c_info"]["xsdata"] is not marker
    assert "xsdata" not in build_config(pv())["c_info"]


# ---- vcpus and memory ----------------------------------------------------------------------


@pytest.mark.parametrize("count, current, avail", [(4, None, [0, 1, 2, 3]), (4, 2, [0, 1]), (1, None, [0])])
def test_vcpus(count, current, avail):
    b_info = build_config(pv(vcpu=VCpu(count=count, current=current)))["b_info"]
    assert b_info["max_vcpus"] == count and b_info["avail_vcpus"] == avail


def test_memory_and_shadow():
    b_info = build_config(pv(current_memory_kib=262144, vcpu=VCpu(count=2)))["b_info"]
    assert (b_info["max_memkb"], b_info["target_memkb"]) == (524288, 262144)
    assert b_info["shadow_memkb"] == 4 * (256 * 2 + 2 * 512) == shadow_memkb(524288, 2)


@pytest.mark.parametrize(
    "dom, element",
    [
        (pv(vcpu=VCpu(count=2, current=3)), "<vcpu current>"),
        (pv(current_memory_kib=10**9), "<currentMemory>"),
        (Domain(name="x", os=OS(kernel="/k")), "<memory>"),
    ],
)
def test_impossible_sizes_are_refused(dom, element):
    with pytest.raises(ConfigError) as err:
        build_config(dom)
    assert err.value.element == element


@pytest.mark.parametrize("text, bits", [("0-3", [0, 1, 2, 3]), ("0-3,^2,8", [0, 1, 3, 8]), ("5", [5])])
def test_cpuset(text, bits):
    assert parse_cpuset(text) == bits


@pytest.mark.parametrize("text", ["a", "3-1", "1,,2"])
def test_bad_cpuset(text):
    with pytest.raises(ConfigError):
        parse_cpuset(text)


# ---- boot: PV, PVH, HVM firmware -------------------------------------------------------------


def test_pv_without_kernel_gets_pygrub_and_split_args():
    cfg = build_config(pv(os=OS(type="linux"), bootloader_args="-q --entry=1"))
    assert cfg["b_info"]["type.pv"] == {"bootloader": "pygrub", "bootloader_args": ["-q", "--entry=1"]}


def test_pv_direct_kernel_with_root():
    dom = pv(os=OS(type="linux", kernel="/k", initrd="/i", root="/dev/xvda1", cmdline="quiet"))
    b_info = build_config(dom)["b_info"]
    assert (b_info["kernel"], b_info["ramdisk"], b_info["cmdline"]) == ("/k", "/i", "root=/dev/xvda1 quiet")
    assert b_info["type.pv"] == {}


def test_pv_e820_host():
    assert build_config(pv(features=Features(xen_e820_host=True)))["b_info"]["type.pv"]["e820_host"] == "True"


def test_pvh_bootloader_is_refused():
    with pytest.raises(ConfigError, match="PVH"):
        build_config(pv(os=OS(type="xenpvh", kernel="/k"), bootloader="pygrub"))


@pytest.mark.parametrize(
    "os_, expected",
    [
        (
            OS(type="hvm", loader=Loader(path="/ovmf.bin", type="pflash")),
            {"bios": "ovmf", "system_firmware": "/ovmf.bin"},
        ),
        (OS(type="hvm", firmware="efi"), {"bios": "ovmf"}),
        (OS(type="hvm", loader=Loader(path="/usr/lib/xen/boot/hvmloader")), {}),
    ],
)
def test_hvm_firmware(os_, expected):
    hvm_info = build_config(hvm(os=os_))["b_info"]["type.hvm"]
    assert {k: hvm_info[k] for k in ("bios", "system_firmware") if k in hvm_info} == expected


@pytest.mark.parametrize(
    "boot, letters", [([], "c"), (["cdrom", "hd"], "dc"), (["network"], "n"), (["fd"], "a")]
)
def test_boot_order(boot, letters):
    assert build_config(hvm(os=OS(type="hvm", boot=boot)))["b_info"]["type.hvm"]["boot"] == letters


def test_acpi_slic_table_and_refusal_of_others():
    dom = hvm(os=OS(type="hvm", acpi_tables=[AcpiTable("slic", "/slic.dat")]))
    assert build_config(dom)["b_info"]["type.hvm"]["acpi_firmware"] == "/slic.dat"
    with pytest.raises(ConfigError, match="slic"):
        build_config(hvm(os=OS(type="hvm", acpi_tables=[AcpiTable("msdm", "/m")])))


def test_hvm_feature_flags_are_always_explicit():
    b_info = build_config(hvm(features=Features(acpi=True)))["b_info"]
    assert (b_info["acpi"], b_info["apic"], b_info["type.hvm"]["pae"]) == ("True", "False", "False")
    assert "acpi" not in build_config(pv())["b_info"]


# ---- viridian, cpuid, nested virtualisation ---------------------------------------------------


@pytest.mark.parametrize(
    "features, bits",
    [
        ({"synic": "on", "stimer": "on", "tlbflush": "on", "ipi": "on"}, [0, 2, 3, 4, 6, 7, 8, 9]),
        ({"relaxed": "on"}, [0, 2, 3, 6]),
        ({"vapic": "on", "frequencies": "off"}, [0, 2, 3, 5, 6]),
    ],
)
def test_viridian_enable_bitmap(features, bits):
    dom = hvm(features=Features(hyperv=Hyperv(mode="custom", features=features)))
    assert build_config(dom)["b_info"]["type.hvm"]["viridian_enable"] == bits


def test_viridian_passthrough_and_unknown_feature():
    dom = hvm(features=Features(hyperv=Hyperv(mode="passthrough")))
    # all 64 bits, as libvirt's viridian-passthrough.json (tests/data/libvirt-extra)
    assert build_config(dom)["b_info"]["type.hvm"]["viridian_enable"] == list(range(64))
    with pytest.raises(ConfigError, match="bogus"):
        build_config(hvm(features=Features(hyperv=Hyperv(features={"bogus": "on"}))))


def test_cpuid_masks_skip_hw_virt_and_optional():
    cpu = CPU(
        mode="host-passthrough",
        features=[
            CpuFeature("pni", "forbid"),
            CpuFeature("vmx", "forbid"),
            CpuFeature("tsc", "require"),
            CpuFeature("avx2", "disable"),
            CpuFeature("x2apic", "optional"),
        ],
    )
    b_info = build_config(hvm(cpu=cpu))["b_info"]
    assert b_info["cpuid"] == [
        {"leaf": 1, "ecx": "x" * 31 + "0", "edx": "x" * 27 + "1xxxx"},
        {"leaf": 7, "subleaf": 0, "ebx": "x" * 26 + "0xxxxx"},
    ]
    assert b_info["nested_hvm"] == "False"


def test_legacy_cpuid_strings():
    cpu = CPU(cpuid_legacy=["0x80000001:ecx=" + "x" * 31 + "1"])
    assert build_config(hvm(cpu=cpu))["b_info"]["cpuid"] == [{"leaf": 0x80000001, "ecx": "x" * 31 + "1"}]
    with pytest.raises(ConfigError, match="cpuid"):
        build_config(hvm(cpu=CPU(cpuid_legacy=["1:foo=1"])))


@pytest.mark.parametrize(
    "cpu, nested",
    [
        (None, None),
        (CPU(mode="host-model"), None),
        (CPU(mode="host-passthrough"), "True"),
        (CPU(mode="host-passthrough", features=[CpuFeature("svm", "disable")]), "False"),
    ],
)
def test_nested_hvm(cpu, nested):
    assert build_config(hvm(cpu=cpu))["b_info"].get("nested_hvm") == nested


def test_unknown_cpu_feature():
    with pytest.raises(ConfigError, match="frobnicate"):
        build_config(hvm(cpu=CPU(features=[CpuFeature("frobnicate")])))


def test_vnuma_nodes_with_default_distances():
    cells = [NumaCell(0, "0-1", 524288), NumaCell(1, "2-3", 524288)]
    nodes = build_config(hvm(vcpu=VCpu(count=4), cpu=CPU(numa=cells)))["b_info"]["vnuma_nodes"]
    assert nodes == [
        {"memkb": 524288, "distances": [10, 20], "vcpus": [0, 1]},
        {"memkb": 524288, "distances": [20, 10], "vcpus": [2, 3]},
    ]


# ---- clock and timers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "clock, expected",
    [
        (Clock(offset="utc"), {}),
        (Clock(offset="localtime"), {"localtime": "True"}),
        (Clock(offset="localtime", adjustment="3600"), {"localtime": "True", "rtc_timeoffset": 3600}),
        (Clock(offset="variable", adjustment="-60", basis="utc"), {"rtc_timeoffset": -60}),
        (Clock(offset="variable", adjustment="0", basis="utc"), {}),
        (Clock(timers=[Timer("tsc", mode="emulate")]), {"tsc_mode": "always_emulate"}),
        (Clock(timers=[Timer("tsc", mode="auto")]), {}),
    ],
)
def test_clock(clock, expected):
    b_info = build_config(hvm(clock=clock))["b_info"]
    assert {k: b_info[k] for k in ("localtime", "rtc_timeoffset", "tsc_mode") if k in b_info} == expected


def test_hvm_timers():
    clock = Clock(timers=[Timer("hpet", present="no"), Timer("pit", tickpolicy="catchup")])
    hvm_info = build_config(hvm(clock=clock))["b_info"]["type.hvm"]
    assert (hvm_info["hpet"], hvm_info["timer_mode"]) == ("False", "no_delay_for_missed_ticks")


def test_timezone_offset_is_refused():
    with pytest.raises(ConfigError, match="timezone"):
        build_config(hvm(clock=Clock(offset="timezone", timezone="Europe/Paris")))


# ---- graphics, video, serial, usb -------------------------------------------------------------


def test_headless_hvm():
    cfg = build_config(hvm())
    h = cfg["b_info"]["type.hvm"]
    assert (h["nographic"], h["vga"], h["vnc"], h["sdl"]) == (
        "True",
        {"kind": "none"},
        {"enable": "False"},
        {"enable": "False"},
    )
    assert "vfbs" not in cfg and "video_memkb" not in cfg["b_info"]


def test_vnc_hvm_gets_default_cirrus_and_a_vfb():
    g = Graphics(type="vnc", port=5901, autoport=False, listen="0.0.0.0", passwd="pw", keymap="de")
    cfg = build_config(hvm(devices=Devices(graphics=[g])))
    vnc = {"enable": "True", "listen": "0.0.0.0", "passwd": "pw", "display": 1, "findunused": "False"}
    assert cfg["b_info"]["type.hvm"]["vnc"] == vnc and cfg["b_info"]["type.hvm"]["keymap"] == "de"
    assert cfg["b_info"]["type.hvm"]["vga"] == {"kind": "cirrus"} and cfg["b_info"]["video_memkb"] == 8192
    assert cfg["vfbs"] == [{"vnc": vnc, "sdl": {"enable": "False"}, "keymap": "de"}] and cfg["vkbs"] == [{}]


@pytest.mark.parametrize(
    "video, kind, memkb",
    [
        (Video("vga"), "std", 16384),
        (Video("cirrus", vram=32768), "cirrus", 32768),
        (Video("none"), "none", None),
    ],
)
def test_video(video, kind, memkb):
    b_info = build_config(hvm(devices=Devices(graphics=[Graphics()], videos=[video])))["b_info"]
    assert b_info["type.hvm"]["vga"] == {"kind": kind} and b_info.get("video_memkb") == memkb


def test_spice_and_sdl():
    gfx = [Graphics(type="spice", port=5930, mouse_mode="client"), Graphics(type="sdl", display=":0")]
    cfg = build_config(hvm(devices=Devices(graphics=gfx)))
    h = cfg["b_info"]["type.hvm"]
    assert h["spice"] == {"enable": "True", "port": 5930, "disable_ticketing": "True", "agent_mouse": "True"}
    assert h["sdl"] == {"enable": "True", "display": ":0"} and h["vnc"] == {"enable": "False"}
    assert cfg["vfbs"] == [{"vnc": {"enable": "False"}, "sdl": {"enable": "True", "display": ":0"}}]


@pytest.mark.parametrize(
    "dev, spec",
    [
        (CharDev("pty"), "pty"),
        (CharDev("file", source_path="/l"), "file:/l"),
        (CharDev("dev", source_path="/d"), "/d"),
        (
            CharDev("tcp", source_mode="bind", source_host="0.0.0.0", source_service="7"),
            "tcp:0.0.0.0:7,server,nowait",
        ),
        (CharDev("tcp", source_host="h", source_service="7", protocol="telnet"), "telnet:h:7"),
        (CharDev("udp", source_mode="connect", source_service="9"), "udp::9@:0"),
        (
            CharDev("udp", source_host="b", source_service="1", connect_host="c", connect_service="2"),
            "udp:c:2@b:1",
        ),
        (CharDev("unix", source_mode="connect", source_path="/s"), "unix:/s"),
    ],
)
def test_serial_specs(dev, spec):
    assert build_config(hvm(devices=Devices(serials=[dev])))["b_info"]["type.hvm"]["serial"] == spec


def test_serial_list_and_console_fallback():
    two = build_config(hvm(devices=Devices(serials=[CharDev("pty"), CharDev("null")])))["b_info"]["type.hvm"]
    assert two["serial_list"] == ["pty", "null"] and "serial" not in two
    console = build_config(hvm(devices=Devices(consoles=[CharDev("pty", target_type="serial")])))
    assert console["b_info"]["type.hvm"]["serial"] == "pty"


def test_usb_inputs_and_controller():
    devs = Devices(
        inputs=[Input("tablet", "usb"), Input("mouse", "ps2")],
        controllers=[Controller("usb", model="qemu-xhci"), Controller("usb", model="qusb2", ports=4)],
    )
    cfg = build_config(hvm(devices=devs))
    h = cfg["b_info"]["type.hvm"]
    assert (h["usbdevice_list"], h["usb"], h["usbversion"]) == (["tablet"], "True", 3)
    assert cfg["usbctrls"] == [{"type": "qusb", "version": 2, "ports": 4}]


def test_xenbus_limits_and_device_model():
    devs = Devices(
        emulator="/usr/bin/qemu",
        controllers=[Controller("xenbus", max_event_channels=2047, max_grant_frames=64)],
    )
    b_info = build_config(hvm(devices=devs, commandline=["-foo", "bar"], cputune_shares=512))["b_info"]
    assert (b_info["event_channels"], b_info["max_grant_frames"]) == (2047, 64)
    assert (b_info["device_model_version"], b_info["device_model"]) == ("qemu_xen", "/usr/bin/qemu")
    assert b_info["extra"] == ["-foo", "bar"] and b_info["sched_params"] == {"weight": 512}


# ---- disks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "disk, expected",
    [
        (
            Disk(source="/i.img", target_dev="xvda", driver_name="qemu"),
            {
                "pdev_path": "/i.img",
                "vdev": "xvda",
                "backend": "qdisk",
                "format": "raw",
                "removable": 1,
                "readwrite": 1,
            },
        ),
        (
            Disk(type="block", source="/dev/vg/x", target_dev="xvdb", driver_name="phy", readonly=True),
            {"pdev_path": "/dev/vg/x", "vdev": "xvdb", "backend": "phy", "format": "raw", "removable": 1},
        ),
        (
            Disk(source="/q.qcow2", target_dev="hda", driver_type="qcow2", script="/s"),
            {
                "pdev_path": "/q.qcow2",
                "vdev": "hda",
                "format": "qcow2",
                "script": "/s",
                "removable": 1,
                "readwrite": 1,
            },
        ),
        (
            Disk(device="cdrom", source="/cd.iso", target_dev="hdc", driver_name="qemu"),
            {
                "pdev_path": "/cd.iso",
                "vdev": "hdc",
                "backend": "qdisk",
                "format": "raw",
                "removable": 1,
                "is_cdrom": 1,
            },
        ),
        (
            Disk(device="cdrom", source=None, target_dev="hdc"),
            {"vdev": "hdc", "format": "empty", "removable": 1, "is_cdrom": 1},
        ),
        (
            Disk(source="/d", target_dev="xvdc", discard="unmap", backend_domain="stor"),
            {
                "pdev_path": "/d",
                "vdev": "xvdc",
                "format": "raw",
                "removable": 1,
                "readwrite": 1,
                "discard_enable": "True",
                "backend_domname": "stor",
            },
        ),
    ],
)
def test_build_disk(disk, expected):
    assert build_disk(disk, pv()) == expected


@pytest.mark.parametrize(
    "disk, problem",
    [
        (Disk(device="floppy", source="/f", target_dev="fda"), "floppy"),
        (Disk(source="/x", target_dev="xvda", driver_type="vmdk"), "vmdk"),
        (Disk(source="/x", target_dev="xvda", driver_name="phy", driver_type="qcow2"), "raw"),
        (Disk(source="/x", target_dev="xvda", driver_name="weird"), "weird"),
        (Disk(type="volume", source="v", target_dev="xvda"), "volume"),
        (Disk(source="/x"), "target"),
    ],
)
def test_bad_disks(disk, problem):
    with pytest.raises(ConfigError, match=problem):
        build_disk(disk, pv())


# ---- nics ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dom, iface, expected",
    [
        (
            pv(),
            Interface(mac="00:16:3e:00:00:01", source_bridge="br0", script="vif-bridge"),
            {
                "devid": 0,
                "mac": "00:16:3e:00:00:01",
                "bridge": "br0",
                "script": "vif-bridge",
                "nictype": "vif",
            },
        ),
        (
            hvm(),
            Interface(source_bridge="br0", model="e1000"),
            {"devid": 0, "model": "e1000", "bridge": "br0", "nictype": "vif_ioemu"},
        ),
        (
            hvm(),
            Interface(source_bridge="br0", model="netfront"),
            {"devid": 0, "model": "netfront", "bridge": "br0", "nictype": "vif"},
        ),
        (
            pv(),
            Interface(type="ethernet", ips=[IPAddress("10.0.0.1"), IPAddress("fe80::1")], target_dev="vif-g"),
            {"devid": 0, "ip": "10.0.0.1 fe80::1", "ifname": "vif-g", "nictype": "vif"},
        ),
        (
            pv(),
            Interface(source_bridge="b", bandwidth_out_average=1000),
            {
                "devid": 0,
                "bridge": "b",
                "nictype": "vif",
                "rate_bytes_per_interval": 51200,
                "rate_interval_usecs": 50000,
            },
        ),
        (
            pv(),
            Interface(source_bridge="b", rate="10Mb/s@20ms"),
            {
                "devid": 0,
                "bridge": "b",
                "nictype": "vif",
                "rate_bytes_per_interval": 25000,
                "rate_interval_usecs": 20000,
            },
        ),
    ],
)
def test_build_nic(dom, iface, expected):
    assert build_nic(iface, 0, dom) == expected


@pytest.mark.parametrize(
    "iface, problem",
    [
        (Interface(type="network", source_network="default"), "network"),
        (Interface(type="bridge"), "bridge"),
        (Interface(source_bridge="b", rate="fast"), "rate"),
    ],
)
def test_bad_nics(iface, problem):
    with pytest.raises(ConfigError, match=problem):
        build_nic(iface, 0, pv())


def test_devids_count_only_vifs_and_hostdev_interfaces_become_pcidevs():
    devs = Devices(
        interfaces=[
            Interface(type="hostdev", source_address={"bus": "0x0a", "slot": "0x10"}),
            Interface(source_bridge="br0"),
            Interface(source_bridge="br1"),
        ],
        hostdevs=[Hostdev(address=PCIAddress(0, 3, 0, 1), write_filtering=False)],
    )
    cfg = build_config(hvm(devices=devs))
    assert [n["devid"] for n in cfg["nics"]] == [0, 1]
    assert cfg["pcidevs"] == [
        {"dev": 16, "bus": 10, "rdm_policy": "invalid"},
        {"func": 1, "bus": 3, "permissive": True, "rdm_policy": "invalid"},
    ]


def test_channels():
    devs = Devices(
        channels=[CharDev("pty", target_name="a"), CharDev("unix", source_path="/s", target_name="b")]
    )
    assert build_config(pv(devices=devs))["channels"] == [
        {"name": "a", "connection.pty": {}},
        {"name": "b", "connection.socket": {"path": "/s"}},
    ]
    with pytest.raises(ConfigError, match="channel"):
        build_config(pv(devices=Devices(channels=[CharDev("tcp")])))


# ---- lifecycle -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actions, expected",
    [
        ({}, {"on_reboot": "restart"}),
        (
            {"on_poweroff": "preserve", "on_reboot": "destroy", "on_crash": "rename-restart"},
            {"on_poweroff": "preserve", "on_crash": "restart_rename"},
        ),
        ({"on_crash": "coredump-restart"}, {"on_reboot": "restart", "on_crash": "coredump_restart"}),
    ],
)
def test_lifecycle_actions(actions, expected):
    cfg = build_config(pv(**actions))
    assert {k: v for k, v in cfg.items() if k.startswith("on_")} == expected


def test_unknown_lifecycle_action():
    with pytest.raises(ConfigError) as err:
        build_config(pv(on_crash="explode"))
    assert err.value.element == "<on_crash>"
