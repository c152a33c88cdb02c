"""Domain model -> libxl ``libxl_domain_config`` JSON, the way libvirt's libxl driver builds it.

The output is the dict that ``libxl_domain_config_to_json`` would print for the config libvirt
hands to libxl: both backends (real libxl via ``libxl_domain_config_from_json`` and the simulated
host) take it as is. Like libxl's printer it leaves out values that equal libxl's defaults, so a
field present here is a field the domain definition asked for. ``libxl_defbool`` values are the
strings ``"True"``/``"False"``; bitmaps are lists of set bit numbers; keyed unions are written as
``"<keyvar>.<member>"`` keys (``"type.hvm"``), as libxl's JSON does.

Everything here is a pure function of the model, so the reconciler's hotplug path can reuse
``build_disk`` / ``build_nic`` and always hand libxl the same device shape as at creation.
"""

from __future__ import annotations

import re
from typing import Any

from libxl.domain.formats.cpuid import CPUID_BITS, CpuidError, legacy_leaf
from libxl.domain.formats.cpuid import to_json as cpuid_json
from libxl.domain.formats.diskspec import network_target
from libxl.domain.formats.vifspec import DEFAULT_RATE_INTERVAL_USECS, parse_vif_rate
from libxl.domain.model import (
    CPU,
    NIL_UUID_REFUSAL,
    CharDev,
    Disk,
    Domain,
    Graphics,
    Interface,
    PCIAddress,
    Video,
    cpu_beyond_xen,
    is_nil_uuid,
    too_many_vcpus,
)
from libxl.errors import ConfigError
from libxl.frontends.unbuildable import check_buildable

JSON = dict[str, Any]

TRUE, FALSE = "True", "False"

#: libvirt's lifecycle actions -> libxl_action_on_shutdown (``destroy`` is libxl's default).
_ACTIONS = {
    "destroy": None, "restart": "restart", "preserve": "preserve",
    "rename-restart": "restart_rename", "coredump-destroy": "coredump_destroy",
    "coredump-restart": "coredump_restart",
}
#: ``<boot dev>`` -> the letters of libxl's ``u.hvm.boot`` string.
_BOOT = {"hd": "c", "cdrom": "d", "fd": "a", "network": "n"}
#: ``<driver type>`` -> libxl_disk_format.
_DISK_FORMATS = {"raw": "raw", "aio": "raw", "qcow": "qcow", "qcow2": "qcow2", "vhd": "vhd", "qed": "qed"}
#: ``<video model>`` -> (libxl_vga_interface_type, the least video RAM qemu-xen accepts, KiB).
_VGA = {"cirrus": ("cirrus", 8192), "vga": ("std", 16384), "qxl": ("qxl", 131072), "none": ("none", 0)}
#: libvirt's default video RAM for Xen guests (the original PV framebuffer size), KiB.
_XEN_DEFAULT_VRAM = 4096
#: ``<timer name='tsc' mode>`` -> libxl_tsc_mode.
_TSC_MODES = {"auto": None, "native": "native", "emulate": "always_emulate", "paravirt": "native_paravirt"}
#: ``<timer name='pit' tickpolicy>`` -> libxl_timer_mode (the xl.cfg(5) descriptions line up).
_TIMER_MODES = {"delay": "delay_for_missed_ticks", "catchup": "no_delay_for_missed_ticks",
                "merge": "no_missed_ticks_pending", "discard": "one_missed_tick_pending"}
#: ``<sound model>`` -> the card name qemu-xen's soundhw takes in Xen 4.17.
_SOUNDHW = {"sb16": "sb16", "es1370": "es1370", "ac97": "ac97", "pcspk": "pcspk", "ich6": "hda"}
#: USB controller models -> the USB version qemu emulates for an HVM guest.
_USB_VERSIONS = {"piix3-uhci": 1, "piix4-uhci": 1, "ehci": 2, "ich9-ehci1": 2, "nec-xhci": 3, "qemu-xhci": 3}
#: Paravirtual USB controller models -> libxl usbctrl version.
_QUSB_VERSIONS = {"qusb1": 1, "qusb2": 2}

#: libxl_viridian_enlightenment bit numbers.
_VIRIDIAN_BITS = {
    "base": 0, "freq": 1, "time_ref_count": 2, "reference_tsc": 3, "hcall_remote_tlb_flush": 4,
    "apic_assist": 5, "crash_ctl": 6, "synic": 7, "stimer": 8, "hcall_ipi": 9,
    "ex_processor_masks": 10, "no_vp_limit": 11, "cpu_hotplug": 12,
}
#: Width of libxl's viridian_enable bitmap as libvirt allocates it (``<hyperv mode='passthrough'>``).
_VIRIDIAN_MASK_BITS = 64
#: Enabled whenever ``<hyperv>`` is: Xen's base set covers relaxed timing, vpindex and spinlocks,
#: and the time sources and crash MSRs have no libvirt element of their own.
_VIRIDIAN_ALWAYS = ("base", "time_ref_count", "reference_tsc", "crash_ctl")
#: ``<hyperv>`` features -> the Xen viridian group that implements them (None: part of base).
_HYPERV_GROUPS = {
    "relaxed": None, "vpindex": None, "spinlocks": None, "vapic": "apic_assist", "frequencies": "freq",
    "synic": "synic", "stimer": "stimer", "tlbflush": "hcall_remote_tlb_flush", "ipi": "hcall_ipi",
    "evmcs": None, "runtime": None, "reset": None, "vendor_id": None, "reenlightenment": None,
}

#: Hardware virtualisation flags: libxl exposes them through ``nested_hvm``, never through cpuid.
_HW_VIRT = ("vmx", "svm")


def shadow_memkb(max_memkb: int, max_vcpus: int) -> int:
    """libxl_get_required_shadow_memory: 256 pages per vcpu plus 2 per MiB of RAM, 4 KiB each."""
    return 4 * (256 * max_vcpus + 2 * (max_memkb // 1024))


def parse_cpuset(text: str, element: str = "cpuset") -> list[int]:
    """libvirt's cpuset syntax (``0-3,^2,8``) -> the sorted bit list of a libxl bitmap."""
    cpus: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\^)?(\d+)(?:-(\d+))?", part)
        if not match:
            raise ConfigError(f"malformed cpu list {text!r}", element=element)
        first, last = int(match[2]), int(match[3] or match[2])
        if last < first:
            raise ConfigError(f"reversed cpu range {part!r}", element=element)
        beyond = cpu_beyond_xen(last)
        if beyond:  # before the range is expanded: "0-300000000" would take gigabytes
            raise ConfigError(beyond, element=element)
        span = set(range(first, last + 1))
        cpus = cpus - span if match[1] else cpus | span
    return sorted(cpus)


def _defbool(value: bool) -> str:
    return TRUE if value else FALSE


def _set(out: JSON, key: str, value: Any) -> None:
    """Store only values libxl would print: None, empty strings and empty containers are its defaults."""
    if value is not None and value != "" and value != [] and value != {}:
        out[key] = value


# ---- c_info ---------------------------------------------------------------------------------

def domain_type(dom: Domain) -> str:
    """libxl_domain_type of the guest: hvm, pvh or pv."""
    if dom.os.is_hvm:
        return "hvm"
    if dom.os.is_pvh:
        return "pvh"
    if dom.os.is_pv:
        return "pv"
    raise ConfigError(f"unsupported os type {dom.os.type!r}", element="<os><type>")


def _create_info(dom: Domain, xsdata: dict[str, str] | None) -> JSON:
    c_info: JSON = {"type": domain_type(dom)}
    if dom.os.is_hvm and dom.features.hap is not None:
        c_info["hap"] = _defbool(dom.features.hap)
    c_info["name"] = dom.name
    if dom.uuid is not None and is_nil_uuid(dom.uuid):
        raise ConfigError(NIL_UUID_REFUSAL, element="<uuid>")
    _set(c_info, "uuid", dom.uuid)
    if dom.seclabel is not None and dom.seclabel.type == "static":
        c_info["ssid_label"] = dom.seclabel.label  # libxl turns it into the XSM ssidref
    passthrough = dom.features.xen_passthrough
    if passthrough == "on":
        c_info["passthrough"] = dom.features.xen_passthrough_mode or "enabled"
    elif passthrough == "off":
        c_info["passthrough"] = "disabled"
    if xsdata:
        c_info["xsdata"] = dict(xsdata)
    return c_info


# ---- b_info ---------------------------------------------------------------------------------

def _viridian(dom: Domain) -> list[int]:
    hyperv = dom.features.hyperv
    if hyperv is None:
        return []
    if hyperv.mode == "passthrough":
        # libvirt sets every bit of libxl's 64-bit enlightenment mask, so groups a newer Xen
        # defines are passed through too.
        return list(range(_VIRIDIAN_MASK_BITS))
    else:
        groups = set(_VIRIDIAN_ALWAYS)
        for name, state in hyperv.features.items():
            if name not in _HYPERV_GROUPS:
                raise ConfigError(f"hyperv feature {name!r} is not supported by Xen",
                                  element=f"<hyperv><{name}>")
            if state == "on" and (group := _HYPERV_GROUPS[name]):
                groups.add(group)
    return sorted(_VIRIDIAN_BITS[g] for g in groups)


def nested_hvm_for(cpu: CPU | None, allowed: bool = True) -> bool | None:
    """host-passthrough offers the host's hardware virtualisation unless vmx/svm is turned off.

    ``allowed`` is libvirt's libxl.conf ``nested_hvm`` (libxl.frontends.hostconf): when the host forbids
    nesting, only an explicitly required vmx/svm feature turns it on.
    """
    if cpu is None or cpu.mode != "host-passthrough":
        return None
    nested = allowed
    for feature in cpu.features:
        if feature.name in _HW_VIRT:
            nested = feature.policy in ("force", "require")
    return nested


def _cpuid(cpu: CPU | None) -> list[JSON]:
    """``<cpu><feature>`` policies as libxl cpuid leaves: 32-char x/0/1 masks, bit 0 rightmost."""
    if cpu is None:
        return []
    leaves: dict[tuple[int, int | None], dict[str, list[str]]] = {}
    for feature in cpu.features:
        if feature.name in _HW_VIRT or feature.policy == "optional":
            continue
        if feature.name not in CPUID_BITS:
            raise ConfigError(f"CPU feature {feature.name!r} is unknown to libxl",
                              element=f"<cpu><feature name='{feature.name}'>")
        leaf, subleaf, register, bit = CPUID_BITS[feature.name]
        masks = leaves.setdefault((leaf, subleaf), {})
        mask = masks.setdefault(register, ["x"] * 32)
        mask[31 - bit] = "1" if feature.policy in ("force", "require") else "0"
    for spec in cpu.cpuid_legacy:
        try:
            legacy_leaf(spec, leaves)
        except CpuidError as err:
            raise ConfigError(str(err), element="cpuid") from None
    return cpuid_json(leaves)


def _vcpu_affinity(dom: Domain) -> list[list[int]]:
    """``<vcpupin>`` as libxl's per-vCPU hard affinity (xl's ``cpus = [ ... ]`` list): one bitmap
    per vCPU from 0, so the pins must cover vCPUs 0..N without a gap (a gap has no libxl form
    short of naming every host CPU)."""
    pins = {pin.vcpu: pin.cpuset for pin in dom.vcpupin}
    if len(pins) != len(dom.vcpupin):
        raise ConfigError("a vCPU is pinned twice", element="<cputune><vcpupin>")
    if pins and sorted(pins) != list(range(len(pins))):
        raise ConfigError(f"vcpupin must pin vCPUs 0..N without gaps, not {sorted(pins)}",
                          element="<cputune><vcpupin>")
    if len(pins) > dom.vcpu.count:
        raise ConfigError(f"vcpupin names vCPU {len(pins) - 1} of {dom.vcpu.count}",
                          element="<cputune><vcpupin>")
    return [parse_cpuset(pins[i], element=f"<vcpupin vcpu='{i}'>") for i in range(len(pins))]


def _vnuma(dom: Domain) -> list[JSON]:
    cells = dom.cpu.numa if dom.cpu else []
    nodes = []
    for cell in cells:
        distances = [cell.distances.get(other.id, 10 if other.id == cell.id else 20) for other in cells]
        nodes.append({"memkb": cell.memory_kib, "distances": distances,
                      "vcpus": parse_cpuset(cell.cpus, element=f"<numa><cell id='{cell.id}' cpus>")})
    return nodes


def _clock(dom: Domain, b_info: JSON, hvm: JSON | None) -> None:
    clock = dom.clock
    if clock.offset == "timezone":
        raise ConfigError("clock offset 'timezone' is not supported by libxl", element="<clock>")
    if clock.adjustment not in (None, "", "reset"):
        try:
            _set(b_info, "rtc_timeoffset", int(clock.adjustment) or None)
        except ValueError:
            raise ConfigError(f"clock adjustment {clock.adjustment!r} is not a number",
                              element="<clock adjustment>") from None
    if clock.offset == "localtime" or clock.basis == "localtime":
        b_info["localtime"] = TRUE
    for timer in clock.timers:
        if timer.name == "tsc" and timer.mode:
            if timer.mode not in _TSC_MODES:
                raise ConfigError(f"unknown tsc mode {timer.mode!r}", element="<timer name='tsc'>")
            _set(b_info, "tsc_mode", _TSC_MODES[timer.mode])
        elif timer.name == "hpet" and hvm is not None and timer.present is not None:
            hvm["hpet"] = _defbool(timer.present == "yes")
        elif timer.name == "pit" and hvm is not None and timer.tickpolicy:
            if timer.tickpolicy not in _TIMER_MODES:
                raise ConfigError(f"unknown tickpolicy {timer.tickpolicy!r}", element="<timer name='pit'>")
            hvm["timer_mode"] = _TIMER_MODES[timer.tickpolicy]


def _cmdline(dom: Domain) -> str | None:
    parts = [f"root={dom.os.root}"] if dom.os.root else []
    if dom.os.cmdline:
        parts.append(dom.os.cmdline)
    return " ".join(parts) or None


def _vnc(g: Graphics) -> JSON:
    vnc: JSON = {"enable": TRUE}
    _set(vnc, "listen", g.listen or next((li.address for li in g.listens if li.address), None))
    _set(vnc, "passwd", g.passwd)
    if g.port is not None and g.port >= 5900 and not g.autoport:
        _set(vnc, "display", g.port - 5900 or None)
    # libvirt reserves the port itself (autoport), so libxl must never hunt for one.
    vnc["findunused"] = FALSE
    return vnc


def _sdl(g: Graphics) -> JSON:
    sdl: JSON = {"enable": TRUE}
    _set(sdl, "display", g.display)
    _set(sdl, "xauthority", g.xauth)
    return sdl


def _vfbs(dom: Domain) -> list[JSON]:
    vfbs = []
    for g in dom.devices.graphics:
        if g.type == "vnc":
            vfb: JSON = {"vnc": _vnc(g), "sdl": {"enable": FALSE}}
        elif g.type == "sdl":
            vfb = {"vnc": {"enable": FALSE}, "sdl": _sdl(g)}
        else:
            continue
        _set(vfb, "keymap", g.keymap)
        vfbs.append(vfb)
    return vfbs


def _spice(g: Graphics) -> JSON:
    spice: JSON = {"enable": TRUE}
    _set(spice, "port", g.port if g.port and g.port > 0 else None)
    _set(spice, "tls_port", g.tls_port if g.tls_port and g.tls_port > 0 else None)
    _set(spice, "host", g.listen or next((li.address for li in g.listens if li.address), None))
    if g.passwd:
        spice["passwd"] = g.passwd
    else:
        spice["disable_ticketing"] = TRUE
    if g.mouse_mode:
        spice["agent_mouse"] = _defbool(g.mouse_mode == "client")
    if g.clipboard_copypaste is not None:
        spice["vdagent"] = TRUE
        spice["clipboard_sharing"] = _defbool(g.clipboard_copypaste)
    return spice


def _video(dom: Domain, b_info: JSON, hvm: JSON) -> None:
    videos = dom.devices.videos
    if not videos and dom.devices.graphics:
        videos = [Video(model="cirrus")]  # libvirt's default video card for graphical HVM guests
    video = next((v for v in videos if v.primary), videos[0] if videos else None)
    if video is None:
        hvm["vga"] = {"kind": "none"}
        return
    if video.model not in _VGA:
        raise ConfigError(f"video model {video.model!r} is not supported by libxl", element="<video><model>")
    kind, least = _VGA[video.model]
    hvm["vga"] = {"kind": kind}
    if least:
        b_info["video_memkb"] = max(video.vram or _XEN_DEFAULT_VRAM, least)


def _serial_spec(dev: CharDev) -> str:
    """A character device as qemu's ``-serial`` argument (what libxl's serial strings are)."""
    kind, path = dev.type, dev.source_path
    if kind in ("null", "stdio", "vc", "pty"):
        return kind
    if kind in ("pipe", "file"):
        return f"{kind}:{path}"
    if kind == "dev":
        return path or ""
    if kind == "udp":
        connect_host, connect_service = dev.connect_host, dev.connect_service
        bind_host, bind_service = dev.source_host, dev.source_service
        if dev.source_mode == "connect" and connect_service is None:
            connect_host, connect_service, bind_host, bind_service = bind_host, bind_service, None, None
        return f"udp:{connect_host or ''}:{connect_service or ''}@{bind_host or ''}:{bind_service or '0'}"
    server = ",server,nowait" if dev.source_mode == "bind" else ""
    if kind == "tcp":
        scheme = "telnet" if dev.protocol == "telnet" else "tcp"
        return f"{scheme}:{dev.source_host or ''}:{dev.source_service or ''}{server}"
    if kind == "unix":
        return f"unix:{path}{server}"
    raise ConfigError(f"serial type {kind!r} is not supported by libxl", element=f"<serial type='{kind}'>")


def _serials(dom: Domain, hvm: JSON) -> None:
    serials = dom.devices.serials or [c for c in dom.devices.consoles if c.target_type in (None, "serial")]
    specs = [_serial_spec(s) for s in serials]
    if len(specs) == 1:
        hvm["serial"] = specs[0]
    elif specs:
        hvm["serial_list"] = specs


def _soundhw(dom: Domain) -> str | None:
    """``<sound>`` models as the soundhw list qemu-xen takes (libvirt's ich6 is its ``hda``)."""
    cards = []
    for sound in dom.devices.sounds:
        if sound.model not in _SOUNDHW:
            raise ConfigError(f"sound model {sound.model!r} is not supported by libxl "
                              f"(one of {', '.join(_SOUNDHW)})", element=f"<sound model='{sound.model}'>")
        cards.append(_SOUNDHW[sound.model])
    return ",".join(cards) or None


def _usb(dom: Domain, hvm: JSON) -> None:
    devices = []
    for inp in dom.devices.inputs:
        if inp.bus == "usb":
            if inp.type not in ("mouse", "tablet", "keyboard"):
                raise ConfigError(f"usb input {inp.type!r} is not supported", element="<input>")
            devices.append(inp.type)
    _set(hvm, "usbdevice_list", devices)
    for ctrl in dom.devices.controllers:
        if ctrl.type == "usb" and ctrl.model in _USB_VERSIONS:
            hvm["usb"] = TRUE
            hvm["usbversion"] = _USB_VERSIONS[ctrl.model]


def _hvm_info(dom: Domain, b_info: JSON) -> JSON:
    hvm: JSON = {}
    os, feats = dom.os, dom.features
    loader = os.loader
    if (loader is not None and loader.type == "pflash") or os.firmware == "efi":
        hvm["bios"] = "ovmf"
        if loader is not None and loader.path:
            hvm["system_firmware"] = loader.path
    hvm["pae"] = _defbool(feats.pae)
    if feats.viridian:
        hvm["viridian"] = TRUE
    _set(hvm, "viridian_enable", _viridian(dom))
    if feats.hpet is not None:
        hvm["hpet"] = _defbool(feats.hpet)
    tables = os.acpi_tables
    if len(tables) > 1 or any(t.type != "slic" for t in tables):
        raise ConfigError("libxl takes one ACPI table, of type 'slic'", element="<os><acpi><table>")
    if tables:
        hvm["acpi_firmware"] = tables[0].path
    graphics = {g.type: g for g in reversed(dom.devices.graphics)}
    if not graphics:
        hvm["nographic"] = TRUE
    _video(dom, b_info, hvm)
    hvm["vnc"] = _vnc(graphics["vnc"]) if "vnc" in graphics else {"enable": FALSE}
    if "vnc" in graphics:
        _set(hvm, "keymap", graphics["vnc"].keymap)
    hvm["sdl"] = _sdl(graphics["sdl"]) if "sdl" in graphics else {"enable": FALSE}
    if "spice" in graphics:
        hvm["spice"] = _spice(graphics["spice"])
    _serials(dom, hvm)
    _set(hvm, "soundhw", _soundhw(dom))
    hvm["boot"] = "".join(_BOOT[b] for b in os.boot if b in _BOOT) or "c"
    _usb(dom, hvm)
    return hvm


def _pv_info(dom: Domain) -> JSON:
    pv: JSON = {}
    bootloader = dom.bootloader
    if not bootloader and not dom.os.kernel:
        bootloader = "pygrub"  # libvirt's choice for a PV guest that names no kernel
    _set(pv, "bootloader", bootloader)
    if dom.bootloader_args:
        pv["bootloader_args"] = dom.bootloader_args.split()
    if dom.features.xen_e820_host:
        pv["e820_host"] = TRUE
    return pv


def _build_info(dom: Domain) -> JSON:
    kind = domain_type(dom)
    if dom.memory_kib <= 0:
        raise ConfigError("the domain needs a positive <memory>", element="<memory>")
    if dom.vcpu.count <= 0:
        raise ConfigError("the domain needs at least one vcpu", element="<vcpu>")
    too_many = too_many_vcpus(dom.vcpu.count, kind)
    if too_many:  # before avail_vcpus is built from it
        raise ConfigError(too_many, element="<vcpu>")
    online = dom.online_vcpus
    if not 0 < online <= dom.vcpu.count:
        raise ConfigError(f"current vcpus {online} not within 1..{dom.vcpu.count}", element="<vcpu current>")
    if dom.target_memory_kib > dom.memory_kib:
        raise ConfigError("<currentMemory> is above <memory>", element="<currentMemory>")
    b_info: JSON = {"max_vcpus": dom.vcpu.count, "avail_vcpus": list(range(online))}
    hard = _vcpu_affinity(dom)
    if dom.vcpu.cpuset:
        # Every vCPU not pinned by <vcpupin> gets <vcpu cpuset>, written per vCPU as xl writes
        # ``cpus=``: libxl 4.17 asserts (libxl_bitmap_copy, killing the agent) on a b_info.cpumap
        # read from JSON that is shorter than the host's cpu bitmap.
        cpus = parse_cpuset(dom.vcpu.cpuset, element="<vcpu cpuset>")
        hard += [cpus] * (dom.vcpu.count - len(hard))
    _set(b_info, "vcpu_hard_affinity", hard)
    _set(b_info, "vnuma_nodes", _vnuma(dom))
    b_info["max_memkb"] = dom.memory_kib
    b_info["target_memkb"] = dom.target_memory_kib
    b_info["shadow_memkb"] = shadow_memkb(dom.memory_kib, dom.vcpu.count)
    hvm = _hvm_info(dom, b_info) if kind == "hvm" else None
    _clock(dom, b_info, hvm)
    for ctrl in dom.devices.controllers:
        if ctrl.type == "xenbus":
            _set(b_info, "event_channels", ctrl.max_event_channels)
            _set(b_info, "max_grant_frames", ctrl.max_grant_frames)
    _set(b_info, "cpuid", _cpuid(dom.cpu))
    if dom.devices.emulator and kind != "pvh":
        b_info["device_model_version"] = "qemu_xen"
        b_info["device_model"] = dom.devices.emulator
    if dom.cputune_shares is not None:
        b_info["sched_params"] = {"weight": dom.cputune_shares}
    nested = nested_hvm_for(dom.cpu)
    if nested is not None:
        b_info["nested_hvm"] = _defbool(nested)
    if kind == "hvm":
        b_info["apic"] = _defbool(dom.features.apic)
        b_info["acpi"] = _defbool(dom.features.acpi)
    _set(b_info, "kernel", dom.os.kernel)
    _set(b_info, "ramdisk", dom.os.initrd)
    _set(b_info, "cmdline", _cmdline(dom))
    _set(b_info, "extra", list(dom.commandline))
    if kind == "pvh" and dom.bootloader:
        raise ConfigError("a PVH guest boots its <kernel> directly; bootloaders are PV only",
                          element="<bootloader>")
    variant = hvm if hvm is not None else _pv_info(dom) if kind == "pv" else {}
    b_info[f"type.{kind}"] = variant
    return b_info


# ---- devices --------------------------------------------------------------------------------

def _disk_format(disk: Disk) -> str:
    fmt = disk.driver_type or "raw"
    if fmt not in _DISK_FORMATS:
        raise ConfigError(f"disk format {fmt!r} is not supported by libxl",
                          element=f"<disk><target dev='{disk.target_dev}'>")
    return _DISK_FORMATS[fmt]


def _disk_source(disk: Disk) -> str | None:
    if disk.type in ("file", "block"):
        return disk.source
    if disk.type == "network" and disk.source_protocol in ("rbd", "nbd"):
        try:
            return network_target(disk)
        except ValueError as err:
            where = f"<disk type='network'><target dev='{disk.target_dev}'>"
            raise ConfigError(str(err), element=where) from None
    raise ConfigError(f"disk type {disk.type!r} ({disk.source_protocol or 'no protocol'}) is not supported",
                      element=f"<disk type='{disk.type}'>")


def build_disk(disk: Disk, dom: Domain) -> JSON:
    """One ``libxl_device_disk``: the same dict for domain creation and for hotplug."""
    where = f"<disk><target dev='{disk.target_dev}'>"
    if not disk.target_dev:
        raise ConfigError("disk has no target dev", element="<disk><target>")
    if disk.device == "floppy":
        raise ConfigError("libxl has no floppy drives", element=where)
    out: JSON = {}
    source = _disk_source(disk)
    _set(out, "pdev_path", source)
    out["vdev"] = disk.target_dev
    driver = disk.driver_name
    if disk.type == "network" or driver in ("qemu", "file", "tap", "tap2"):
        out["backend"] = "qdisk"
    elif driver == "phy":
        if disk.driver_type not in (None, "raw"):
            raise ConfigError(f"the phy driver only takes raw disks, not {disk.driver_type!r}", element=where)
        out["backend"] = "phy"
    elif driver is not None:
        raise ConfigError(f"disk driver {driver!r} is unknown to libxl", element=where)
    out["format"] = _disk_format(disk) if source else "empty"
    _set(out, "script", disk.script)
    _set(out, "backend_domname", disk.backend_domain)
    out["removable"] = 1
    if not disk.readonly and not disk.is_cdrom:
        out["readwrite"] = 1
    if disk.is_cdrom:
        out["is_cdrom"] = 1
    if disk.discard in ("unmap", "ignore"):
        out["discard_enable"] = _defbool(disk.discard == "unmap")
    return out


def _rate(iface: Interface) -> tuple[int, int] | None:
    """(bytes per interval, interval in µs): an xl ``rate=`` kept verbatim wins (it may name its
    own interval), else ``<bandwidth><outbound average>`` (KB/s) over xl's default interval."""
    if iface.rate:
        try:
            rate = parse_vif_rate(iface.rate.strip())
        except ValueError as err:
            raise ConfigError(str(err), element="<interface> rate") from None
        return rate.bytes_per_interval, rate.interval_usecs
    if iface.bandwidth_out_average:
        interval = DEFAULT_RATE_INTERVAL_USECS
        return iface.bandwidth_out_average * 1024 * interval // 1_000_000, interval
    return None


def build_nic(iface: Interface, devid: int, dom: Domain) -> JSON:
    """One ``libxl_device_nic`` with an explicit devid (libxl needs it for the device model)."""
    where = f"<interface type='{iface.type}'>"
    if iface.type not in ("bridge", "ethernet"):
        raise ConfigError(f"interface type {iface.type!r} cannot be a libxl vif "
                          "(use type='bridge'; 'network' needs libvirt's network driver)", element=where)
    out: JSON = {"devid": devid}
    _set(out, "backend_domname", iface.backend_domain)
    _set(out, "model", iface.model)
    _set(out, "mac", iface.mac)
    _set(out, "ip", " ".join(ip.address for ip in iface.ips))
    if iface.type == "bridge":
        if not iface.source_bridge:
            raise ConfigError("bridge interface without <source bridge>", element=where)
        out["bridge"] = iface.source_bridge
        if iface.vlan_tags:  # vif-openvswitch reads the VLANs from the bridge name, as xl writes it
            sep = ":" if iface.vlan_trunk or len(iface.vlan_tags) > 1 else "."
            out["bridge"] += sep + sep.join(str(tag) for tag in iface.vlan_tags)
    _set(out, "ifname", iface.target_dev)
    _set(out, "script", iface.script)
    out["nictype"] = "vif_ioemu" if dom.os.is_hvm and iface.model != "netfront" else "vif"
    rate = _rate(iface)
    if rate:
        out["rate_bytes_per_interval"], out["rate_interval_usecs"] = rate
    return out


def _pcidev(address: PCIAddress, permissive: bool) -> JSON:
    out: JSON = {}
    for key, value in (("func", address.function), ("dev", address.slot), ("bus", address.bus),
                       ("domain", address.domain)):
        if value:
            out[key] = value
    if permissive:
        out["permissive"] = True
    out["rdm_policy"] = "invalid"
    return out


def _pcidevs(dom: Domain) -> list[JSON]:
    out = []
    for iface in dom.devices.interfaces:
        if iface.type == "hostdev":
            if not iface.source_address:
                raise ConfigError("hostdev interface without a PCI <source><address>",
                                  element="<interface type='hostdev'>")
            addr = iface.source_address
            fields = (int(addr.get(k, "0"), 0) for k in ("domain", "bus", "slot", "function"))
            out.append(_pcidev(PCIAddress(*fields), False))
    for hostdev in dom.devices.hostdevs:
        if hostdev.type != "pci":
            raise ConfigError(f"hostdev type {hostdev.type!r} is not supported", element="<hostdev>")
        out.append(_pcidev(hostdev.address, hostdev.write_filtering is False))
    return out


def _channels(dom: Domain) -> list[JSON]:
    out = []
    for ch in dom.devices.channels:
        entry: JSON = {}
        _set(entry, "name", ch.target_name)
        if ch.type == "pty":
            entry["connection.pty"] = {}
        elif ch.type == "unix" and ch.source_path:
            entry["connection.socket"] = {"path": ch.source_path}
        else:
            raise ConfigError(f"channel type {ch.type!r} is not supported by libxl (pty or unix)",
                              element="<channel>")
        out.append(entry)
    return out


def _usb_devices(dom: Domain) -> tuple[list[JSON], list[JSON]]:
    ctrls = []
    for ctrl in dom.devices.controllers:
        if ctrl.type == "usb" and ctrl.model not in (None, "none", *_USB_VERSIONS, *_QUSB_VERSIONS):
            raise ConfigError(f"USB controller model {ctrl.model!r} is unknown to libxl (one of "
                              f"{', '.join([*_USB_VERSIONS, *_QUSB_VERSIONS])})",
                              element=f"<controller type='usb' model='{ctrl.model}'>")
        if ctrl.type == "usb" and ctrl.model in _QUSB_VERSIONS:
            ctrls.append({"type": "qusb", "version": _QUSB_VERSIONS[ctrl.model], "ports": ctrl.ports or 8})
    devs = [{"type.hostdev": {"hostbus": d.bus, "hostaddr": d.device}} for d in dom.devices.usb_hostdevs]
    return ctrls, devs


def build_config(dom: Domain, *, xsdata: dict[str, str] | None = None) -> JSON:
    """The whole ``libxl_domain_config`` for ``dom``; ``xsdata`` lands in ``c_info.xsdata``."""
    check_buildable(dom)
    config: JSON = {"c_info": _create_info(dom, xsdata), "b_info": _build_info(dom)}
    _set(config, "disks", [build_disk(d, dom) for d in dom.devices.disks])
    vifs = [i for i in dom.devices.interfaces if i.type != "hostdev"]
    _set(config, "nics", [build_nic(iface, devid, dom) for devid, iface in enumerate(vifs)])
    _set(config, "pcidevs", _pcidevs(dom))
    vfbs = _vfbs(dom)
    _set(config, "vfbs", vfbs)
    _set(config, "vkbs", [{} for _ in vfbs])
    _set(config, "channels", _channels(dom))
    usbctrls, usbdevs = _usb_devices(dom)
    _set(config, "usbctrls", usbctrls)
    _set(config, "usbdevs", usbdevs)
    for event, default in (("poweroff", "destroy"), ("reboot", "restart"), ("crash", "destroy")):
        action = getattr(dom, f"on_{event}") or default  # libvirt's defaults for absent elements
        if action not in _ACTIONS:
            raise ConfigError(f"unknown lifecycle action {action!r}", element=f"<on_{event}>")
        _set(config, f"on_{event}", _ACTIONS[action])
    return config


__all__ = ["build_config", "build_disk", "build_nic", "shadow_memkb", "parse_cpuset", "domain_type",
           "nested_hvm_for"]
