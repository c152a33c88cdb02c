"""What xl and xm agree on: the keys both formats read and write, mapped to and from the model.

xl.cfg(5) grew out of xend's xm format, and libvirt converts both through one common layer; so do
we. ``xl.py`` and ``xm.py`` only add what differs: how the guest type is named, where an HVM guest's
kernel goes, the disk spec syntax, the name of the PV nic type and the xl-only keys. Values follow
libvirt's conversion so that ``domxml-from-native`` output compares equal with libvirt's.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from libxl.domain.formats import vifspec
from libxl.domain.formats.pcispec import parse_pci_spec
from libxl.domain.formats.xlcfg import Setting, SettingsReader, Value
from libxl.domain.model import (
    CPUSET,
    LIFECYCLE_ACTIONS,
    MAX_KIB,
    CharDev,
    Clock,
    Disk,
    Domain,
    Graphics,
    Hostdev,
    Input,
    PCIAddress,
    Seclabel,
    Sound,
    Timer,
    USBDevice,
    VcpuPin,
    Video,
    canonical_uuid,
)
from libxl.errors import ConfigError

#: Where libvirt's Xen driver looks for firmware (``/LIBXL_FIRMWARE_DIR`` in its tests).
FIRMWARE_DIR = "/usr/lib/xen/boot"
HVMLOADER = f"{FIRMWARE_DIR}/hvmloader"
VNC_BASE_PORT = 5900

_BOOT_OF_LETTER = {"a": "fd", "c": "hd", "d": "cdrom", "n": "network"}
_LETTER_OF_BOOT = {dev: letter for letter, dev in _BOOT_OF_LETTER.items()}
_TSC_MODES = {"native": "native", "always_emulate": "emulate", "native_paravirt": "paravirt",
              "default": None}
_TSC_MODE_OF = {mode: name for name, mode in _TSC_MODES.items() if mode}
#: libxl_tsc_mode's integer values, which xl accepts for tsc_mode in place of the names.
_TSC_MODE_NUMBERS = {"0": "default", "1": "always_emulate", "2": "native", "3": "native_paravirt"}
#: xl ``vga`` -> ``<video><model type>``; xl.cfg(5) 4.17.
_VIDEO_OF_VGA = {"stdvga": "vga", "cirrus": "cirrus", "none": "none", "qxl": "qxl"}
_VGA_OF_VIDEO = {model: vga for vga, model in _VIDEO_OF_VGA.items()}
#: soundhw models qemu-xen takes in Xen 4.17 -> libvirt ``<sound model>`` (Intel HDA is libvirt's
#: ich6); adlib, cs4231a and gus have no libvirt model.
_SOUND_OF_SOUNDHW = {"sb16": "sb16", "es1370": "es1370", "ac97": "ac97", "pcspk": "pcspk", "hda": "ich6"}
_SOUNDHW_OF_SOUND = {model: hw for hw, model in _SOUND_OF_SOUNDHW.items()}
_SOUNDHW_ONLY = ("adlib", "cs4231a", "gus")


@dataclass(frozen=True)
class Unread:
    """A setting, or part of one (``detail``), that reading left behind: a conversion drops it."""
    key: str
    line: int | None
    detail: str = ""


class Cfg(SettingsReader):
    """Typed access to parsed settings; every error names the file, the line and the key.

    Every key read is remembered, so ``unused`` lists what the reader left behind: the keys a
    conversion dropped, reported to the user instead of silently lost.
    """

    def __init__(self, settings: dict[str, Setting], file: str | None) -> None:
        self.settings, self.file = settings, file
        self.read: set[str] = set()
        self.left: list[Unread] = []

    def leave(self, key: str, detail: str) -> None:
        """Record a part of ``key``'s value that the model has no place for (a PCI option...)."""
        self.left.append(Unread(key, self.line(key), detail))

    def unused(self) -> list[Unread]:
        """Settings no reader asked for, in file order, then the parts of values left behind."""
        whole = [Unread(key, s.line) for key, s in self.settings.items() if key not in self.read]
        return whole + self.left

    def has(self, key: str) -> bool:
        return key in self.settings

    def str(self, key: str) -> str | None:
        value = self.raw(key)
        if isinstance(value, list):
            raise self.error(key, "expected a single value, got a list")
        return None if value is None else str(value)

    def int(self, key: builtins.str) -> int | None:
        value = self.raw(key)
        if value is None or isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,4300}\s*", value):
            return int(value)
        raise self.error(key, f"expected a whole number, got {value!r}")

    def bool(self, key: builtins.str) -> bool | None:
        value = self.int(key)
        return None if value is None else value != 0

    def strlist(self, key: builtins.str) -> list[builtins.str]:
        """A list of strings; a lone string counts as a one-item list, as xl allows."""
        value = self.raw(key)
        if value is None:
            return []
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, list) for v in items):
            raise self.error(key, "expected a list of strings, got a nested list")
        return [str(v) for v in items]

    def item_error(self, key: builtins.str, item: builtins.str, err: Exception) -> ConfigError:
        return self.error(key, f"{item!r}: {err}")


@dataclass(frozen=True)
class Dialect:
    """How xl and xm differ inside the shared keys."""
    name: str  # xl | xm
    netfront_type: str  # the vif `type=` that means a PV nic: xl "vif", xm "netfront"
    parse_disk: Callable[[str], Disk]
    format_disk: Callable[[Disk], str]
    cmdline_key: str  # PV kernel arguments: xl "cmdline", xm "extra"


# ---- reading ---------------------------------------------------------------------------------

def parse_common(cfg: Cfg, dialect: Dialect, os_type: str) -> Domain:
    name = cfg.str("name")
    if not name:
        raise ConfigError("missing 'name'", file=cfg.file, element="name")
    dom = Domain(name=name)
    dom.os.type = os_type
    if cfg.has("uuid"):
        try:
            dom.uuid = canonical_uuid(cfg.str("uuid") or "")
        except ValueError as err:
            raise cfg.error("uuid", str(err)) from None
    _read_memory(cfg, dom)
    _read_vcpus(cfg, dom)
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        action = cfg.str(event)
        if action is not None:
            if action not in LIFECYCLE_ACTIONS:
                raise cfg.error(event, f"unknown action {action!r}")
            setattr(dom, event, action)
    if (label := cfg.str("seclabel")) is not None:
        dom.seclabel = Seclabel(type="static", model="xen", relabel="no", label=label)
    version = cfg.str("device_model_version")
    if version not in (None, "qemu-xen"):
        raise cfg.error("device_model_version", f"{version!r} is not supported: Xen 4.17 hosts run "
                                                "qemu-xen only (qemu-xen-traditional is gone)")
    dom.bootloader = cfg.str("bootloader")
    dom.bootloader_args = cfg.str("bootargs")
    dom.clock = _read_clock(cfg, dom.os.is_hvm)
    if dom.os.is_hvm:
        _read_hvm(cfg, dom)
    dom.devices.emulator = cfg.str("device_model_override")
    dom.devices.disks = [item(cfg, "disk", spec, dialect.parse_disk) for spec in cfg.strlist("disk")]
    dom.devices.interfaces = [
        item(cfg, "vif", spec, lambda s: vifspec.parse_vif(s, dialect.netfront_type))
        for spec in cfg.strlist("vif")]
    for spec in cfg.strlist("pci"):
        hostdev, left = item(cfg, "pci", spec, pci_hostdev)
        dom.devices.hostdevs.append(hostdev)
        for part in left:
            cfg.leave("pci", f"{spec!r}: {part}")
    _read_graphics(cfg, dom)
    return dom


T = TypeVar("T")


def item(cfg: Cfg, key: str, text: str, parse: Callable[[str], T]) -> T:
    try:
        return parse(text)
    except ValueError as err:
        raise cfg.item_error(key, text, err) from None


def _read_memory(cfg: Cfg, dom: Domain) -> None:
    memory, maxmem = cfg.int("memory"), cfg.int("maxmem")
    if memory is None and maxmem is None:
        raise ConfigError("missing 'memory'", file=cfg.file, element="memory")
    current = memory if memory is not None else maxmem
    top = maxmem if maxmem is not None else memory
    assert current is not None and top is not None
    if current < 0 or top < current:
        raise cfg.error("maxmem", f"maxmem ({top} MiB) is below memory ({current} MiB)")
    if top * 1024 > MAX_KIB:
        raise cfg.error("maxmem" if maxmem is not None else "memory", f"over libxl's limit of {MAX_KIB} KiB")
    dom.memory_kib, dom.current_memory_kib = top * 1024, current * 1024


def _read_vcpus(cfg: Cfg, dom: Domain) -> None:
    vcpus, maxvcpus = cfg.int("vcpus"), cfg.int("maxvcpus")
    count = maxvcpus if maxvcpus is not None else (vcpus if vcpus is not None else 1)
    if count < 1 or (vcpus is not None and vcpus < 1):
        raise cfg.error("vcpus", "vcpus must be at least 1")
    if vcpus is not None and vcpus > count:
        raise cfg.error("vcpus", f"vcpus ({vcpus}) exceeds maxvcpus ({count})")
    dom.vcpu.count = count
    if vcpus is not None and vcpus != count:
        dom.vcpu.current = vcpus
    cpus = cfg.raw("cpus")
    if isinstance(cpus, list):
        # xl.cfg(5): a list pins vCPU i to its i-th item, and only the vCPUs listed.
        for index, spec in enumerate(cfg.strlist("cpus")):
            if not CPUSET.fullmatch(spec):
                raise cfg.error("cpus", f"item {index} {spec!r} is not a cpu list this agent reads "
                                        "(numbers and ranges; node: and socket: forms are not supported)")
            dom.vcpupin.append(VcpuPin(index, spec))
    elif cpus is not None:
        dom.vcpu.cpuset = str(cpus) or None  # `cpus = ""` pins nothing, like an absent key
    dom.cputune_shares = cfg.int("cpu_weight")


def _read_clock(cfg: Cfg, hvm: bool) -> Clock:
    localtime = bool(cfg.bool("localtime"))
    if hvm:
        offset = cfg.int("rtc_timeoffset") or 0
        return Clock(offset="variable", adjustment=str(offset), basis="localtime" if localtime else "utc")
    return Clock(offset="localtime" if localtime else "utc", adjustment="reset")


def _read_hvm(cfg: Cfg, dom: Domain) -> None:
    feats = dom.features
    # HVM features default to on when absent, as xend and libvirt have it.
    feats.pae, feats.acpi, feats.apic = (cfg.bool(k) is not False for k in ("pae", "acpi", "apic"))
    feats.hap = cfg.bool("hap")
    if feats.hap:
        feats.hap = True
    feats.viridian = bool(cfg.bool("viridian"))
    tsc = cfg.str("tsc_mode")
    if tsc is not None:
        tsc = _TSC_MODE_NUMBERS.get(tsc, tsc)  # the legacy integers xl still takes (with a warning)
        if tsc not in _TSC_MODES:
            raise cfg.error("tsc_mode", f"unknown tsc_mode {tsc!r}")
        if _TSC_MODES[tsc]:
            dom.clock.timers.append(Timer("tsc", present="yes", mode=_TSC_MODES[tsc]))
    hpet = cfg.bool("hpet")
    if hpet is not None:
        dom.clock.timers.append(Timer("hpet", present="yes" if hpet else "no"))
    boot = cfg.str("boot") or ""
    for letter in boot:
        if letter not in _BOOT_OF_LETTER:
            raise cfg.error("boot", f"unknown boot device {letter!r} (expected a, c, d or n)")
        dev = _BOOT_OF_LETTER[letter]
        if dev not in dom.os.boot:
            dom.os.boot.append(dev)
    dom.devices.serials = _chardevs(cfg, "serial")
    dom.devices.parallels = _chardevs(cfg, "parallel")
    sounds = cfg.str("soundhw")
    if sounds:
        models = ["sb16", "es1370"] if sounds == "all" else [s.strip() for s in sounds.split(",")]
        for model in filter(None, models):
            if model in _SOUNDHW_ONLY:
                cfg.leave("soundhw", model)
            elif model in _SOUND_OF_SOUNDHW:
                dom.devices.sounds.append(Sound(_SOUND_OF_SOUNDHW[model]))
            else:
                raise cfg.error("soundhw", f"unknown sound card {model!r} (expected "
                                           f"{', '.join([*_SOUND_OF_SOUNDHW, *_SOUNDHW_ONLY])})")
    _read_video(cfg, dom)
    if cfg.bool("usb") or cfg.has("usbdevice"):
        for kind in cfg.strlist("usbdevice"):
            host = re.fullmatch(r"host:(\d+)\.(\d+)", kind)
            if host:  # a host device by bus.address: libvirt's <hostdev type='usb'>
                dom.devices.usb_hostdevs.append(USBDevice(bus=int(host[1]), device=int(host[2])))
            elif kind in ("mouse", "tablet", "keyboard"):
                dom.devices.inputs.append(Input(kind, "usb"))
            elif kind.startswith("host:"):
                cfg.leave("usbdevice", f"{kind} (by vendor:product)")
            else:
                raise cfg.error("usbdevice", f"unsupported usbdevice {kind!r}")


def _read_video(cfg: Cfg, dom: Domain) -> None:
    """``vga`` (xl) or ``stdvga`` (xl and xm) and ``videoram`` (MiB) as the ``<video>`` card."""
    vga, std, ram = cfg.str("vga"), cfg.bool("stdvga"), cfg.int("videoram")
    model = None
    if vga is not None:
        if vga not in _VIDEO_OF_VGA:
            raise cfg.error("vga", f"unknown vga {vga!r} (expected {', '.join(_VIDEO_OF_VGA)})")
        model = _VIDEO_OF_VGA[vga]  # xl: vga wins over stdvga
    elif std is not None:
        model = "vga" if std else "cirrus"
    if ram is not None and ram < 0:
        raise cfg.error("videoram", "videoram must not be negative")
    if model is not None or ram is not None:
        dom.devices.videos = [Video(model=model or "cirrus", vram=ram * 1024 if ram else None)]


def format_video(dom: Domain, dialect: Dialect) -> list[tuple[str, Value]]:
    """The primary ``<video>`` card as ``vga``/``stdvga`` and ``videoram`` when it is not libvirt's
    default (a cirrus card with its default video RAM)."""
    from libxl.domain.formats.defaults import default_vram

    video = next((v for v in dom.devices.videos if v.primary), dom.devices.videos[0]) \
        if dom.devices.videos else None
    if video is None or not dom.os.is_hvm:
        return []
    out: list[tuple[str, Value]] = []
    if video.model != "cirrus" and video.model in _VGA_OF_VIDEO:
        if dialect.name == "xl":
            out.append(("vga", _VGA_OF_VIDEO[video.model]))
        elif video.model == "vga":
            out.append(("stdvga", 1))
    if video.vram is not None and video.vram != default_vram(video.model):
        out.append(("videoram", video.vram // 1024))
    return out


def _chardevs(cfg: Cfg, key: str) -> list[CharDev]:
    """``serial``/``parallel``: one spec or a list; ``"none"`` holds a port but adds no device."""
    devs = []
    for port, spec in enumerate(cfg.strlist(key)):
        if spec != "none":
            dev = item(cfg, key, spec, parse_chardev)
            dev.target_port = port
            devs.append(dev)
    return devs


def parse_chardev(spec: str) -> CharDev:
    """qemu-style character device: pty, null, vc, stdio, file:, pipe:, /dev/..., tcp:, telnet:,
    udp:, unix:."""
    kind, colon, rest = spec.partition(":")
    if not colon:
        if spec.startswith("/"):
            return CharDev(type="dev", source_path=spec)
        if spec in ("pty", "null", "vc", "stdio"):
            return CharDev(type=spec)
        raise ValueError(f"unknown character device {spec!r}")
    if kind in ("file", "pipe", "dev"):
        return CharDev(type=kind, source_path=rest)
    if kind in ("tcp", "telnet"):
        addr, *flags = rest.split(",")
        host, _, service = addr.rpartition(":")
        return CharDev(type="tcp", source_mode="bind" if "server" in flags else "connect",
                       source_host=host or None, source_service=service,
                       protocol="telnet" if kind == "telnet" else "raw")
    if kind == "udp":
        connect, _, bind = rest.partition("@")
        chost, _, cservice = connect.rpartition(":")
        dev = CharDev(type="udp", connect_host=chost or None, connect_service=cservice)
        if bind:
            bhost, _, bservice = bind.rpartition(":")
            dev.source_mode, dev.source_host, dev.source_service = "bind", bhost or None, bservice
        return dev
    if kind == "unix":
        path, *flags = rest.split(",")
        return CharDev(type="unix", source_mode="bind" if "server" in flags else "connect", source_path=path)
    raise ValueError(f"unknown character device type {kind!r}")


def format_chardev(dev: CharDev) -> str:
    if dev.type in ("pty", "null", "vc", "stdio"):
        return dev.type
    if dev.type == "dev":
        return dev.source_path or ""
    if dev.type in ("file", "pipe"):
        return f"{dev.type}:{dev.source_path}"
    if dev.type == "tcp":
        scheme = "telnet" if dev.protocol == "telnet" else "tcp"
        flags = ",server,nowait" if dev.source_mode == "bind" else ""
        return f"{scheme}:{dev.source_host or ''}:{dev.source_service}{flags}"
    if dev.type == "udp":
        text = f"udp:{dev.connect_host or ''}:{dev.connect_service}"
        if dev.source_service:
            text += f"@{dev.source_host or ''}:{dev.source_service}"
        return text
    if dev.type == "unix":
        return f"unix:{dev.source_path}" + (",server,nowait" if dev.source_mode == "bind" else "")
    raise ValueError(f"character device type {dev.type!r} has no xl/xm form")


def parse_pci(spec: str) -> Hostdev:
    """xl-pci-configuration(5) as a ``<hostdev>`` (the options: ``pci_hostdev``)."""
    return pci_hostdev(spec)[0]


def pci_hostdev(spec: str) -> tuple[Hostdev, list[str]]:
    """The host device of an xl ``pci`` spec (read by ``libxl.domain.formats.pcispec``, shared with the xl
    front end) and the parts domain XML has no place for: a ``@VSLOT`` and every option but
    ``permissive`` (libvirt's ``writeFiltering='no'``)."""
    pci = parse_pci_spec(spec)
    if pci.func is None:
        raise ValueError("every function of a device (.*) has no domain XML form; list the functions")
    dev = Hostdev(managed=False, address=PCIAddress(pci.domain, pci.bus, pci.dev, pci.func))
    left = [f"@{pci.vslot:x}"] if pci.vslot is not None else []
    for key, value in pci.options.items():
        if key == "permissive":
            dev.write_filtering = False if value else None
        else:
            left.append(f"{key}={int(value)}")
    left += [f"{k}={v}" for k, v in (("rdm_policy", pci.rdm_policy), ("name", pci.name)) if v is not None]
    return dev, left


def parse_vfb(spec: str) -> Graphics:
    opts = vifspec.split_spec(spec)
    kind = opts.get("type") or ("sdl" if opts.get("sdl") == "1" else "vnc")
    if kind == "sdl":
        return Graphics(type="sdl", display=opts.get("display"), xauth=opts.get("xauthority"))
    if kind != "vnc":
        raise ValueError(f"unknown vfb type {kind!r}")
    display = opts.get("vncdisplay")
    return _vnc(opts.get("vncunused", "1") != "0", int(display) if display else None,
                opts.get("vnclisten"), opts.get("vncpasswd"), opts.get("keymap"))


def _vnc(unused: bool, display: int | None, listen: str | None, passwd: str | None,
         keymap: str | None) -> Graphics:
    auto = unused or display is None
    # An empty value ("vnclisten=") says nothing, as the writer (which skips empty values) assumes.
    return Graphics(type="vnc", autoport=auto, port=-1 if auto else VNC_BASE_PORT + (display or 0),
                    listen=listen or None, passwd=passwd or None, keymap=keymap or None)


def _read_graphics(cfg: Cfg, dom: Domain) -> None:
    """PV guests: the ``vfb`` list, else the vnc/sdl keys. HVM guests: the vnc/sdl keys, which
    drive the emulated display, as libvirt reads them; a ``vfb`` list there stays unread and is
    reported rather than letting it shadow ``vncpasswd``, ``keymap``... (issue 13)."""
    vfbs = [] if dom.os.is_hvm else cfg.strlist("vfb")
    if vfbs:
        dom.devices.graphics = [item(cfg, "vfb", spec, parse_vfb) for spec in vfbs]
        return
    if cfg.bool("vnc"):
        display = cfg.int("vncdisplay")
        dom.devices.graphics.append(_vnc(cfg.bool("vncunused") is not False, display, cfg.str("vnclisten"),
                                         cfg.str("vncpasswd"), cfg.str("keymap")))
    if cfg.bool("sdl"):
        dom.devices.graphics.append(Graphics(type="sdl", display=cfg.str("display"),
                                             xauth=cfg.str("xauthority")))


# ---- writing ---------------------------------------------------------------------------------

def _mib(kib: int) -> int:
    return (kib + 1023) // 1024


def format_head(dom: Domain) -> list[tuple[str, Value]]:
    """name, uuid, memory and vcpus: the opening lines of every xl/xm config libvirt writes."""
    out: list[tuple[str, Value]] = [("name", dom.name)]
    if dom.uuid:
        out.append(("uuid", dom.uuid))
    out += [("maxmem", _mib(dom.memory_kib)), ("memory", _mib(dom.target_memory_kib))]
    if dom.vcpu.current is not None and dom.vcpu.current != dom.vcpu.count:
        out.append(("maxvcpus", dom.vcpu.count))
    out.append(("vcpus", dom.online_vcpus))
    if dom.vcpupin and [p.vcpu for p in dom.vcpupin] == list(range(len(dom.vcpupin))):
        out.append(("cpus", [p.cpuset for p in dom.vcpupin]))  # per vCPU: overrides a cpuset
    elif dom.vcpu.cpuset:
        out.append(("cpus", dom.vcpu.cpuset))
    if dom.cputune_shares is not None:
        out.append(("cpu_weight", dom.cputune_shares))
    if dom.seclabel is not None and dom.seclabel.type == "static" and dom.seclabel.label:
        out.append(("seclabel", dom.seclabel.label))
    return out


def format_hvm_features(dom: Domain) -> list[tuple[str, Value]]:
    f = dom.features
    out: list[tuple[str, Value]] = [("pae", int(f.pae)), ("acpi", int(f.acpi)), ("apic", int(f.apic))]
    if f.hap is not None:
        out.append(("hap", int(f.hap)))
    out.append(("viridian", int(f.viridian)))
    for timer in dom.clock.timers:
        if timer.name == "tsc" and timer.mode in _TSC_MODE_OF:
            out.append(("tsc_mode", _TSC_MODE_OF[timer.mode]))
        elif timer.name == "hpet":
            out.append(("hpet", int(timer.present != "no")))
    return out


def format_clock(dom: Domain) -> list[tuple[str, Value]]:
    clock = dom.clock
    if dom.os.is_hvm:
        localtime = clock.basis == "localtime" or clock.offset == "localtime"
        adjustment = clock.adjustment if clock.adjustment not in (None, "reset") else "0"
        return [("rtc_timeoffset", int(adjustment or 0)), ("localtime", int(localtime))]
    return [("localtime", int(clock.offset == "localtime"))]


def format_lifecycle(dom: Domain) -> list[tuple[str, Value]]:
    return [(event, getattr(dom, event)) for event in ("on_poweroff", "on_reboot", "on_crash")
            if getattr(dom, event)]


def format_vnc_sdl(dom: Domain) -> list[tuple[str, Value]]:
    """HVM graphics as top-level keys (``sdl``, ``vnc``, ``vncunused``...)."""
    sdl = next((g for g in dom.devices.graphics if g.type == "sdl"), None)
    vnc = next((g for g in dom.devices.graphics if g.type == "vnc"), None)
    out: list[tuple[str, Value]] = [("sdl", int(sdl is not None))]
    if sdl is not None:
        out += [(k, v) for k, v in (("display", sdl.display), ("xauthority", sdl.xauth)) if v]
    out.append(("vnc", int(vnc is not None)))
    if vnc is not None:
        auto = vnc.autoport is not False and (vnc.port is None or vnc.port < 0 or bool(vnc.autoport))
        out.append(("vncunused", int(auto)))
        if not auto and vnc.port is not None:
            out.append(("vncdisplay", vnc.port - VNC_BASE_PORT))
        listen = _listen_address(vnc)
        for key, value in (("vnclisten", listen), ("vncpasswd", vnc.passwd), ("keymap", vnc.keymap)):
            if value:
                out.append((key, value))
    return out


def _listen_address(gfx: Graphics) -> str | None:
    return gfx.listen or next((lst.address for lst in gfx.listens if lst.address), None)


def format_vfb(gfx: Graphics) -> str:
    if gfx.type == "sdl":
        parts = ["type=sdl"] + [f"{k}={v}" for k, v in (("display", gfx.display),
                                                      ("xauthority", gfx.xauth)) if v]
        return ",".join(parts)
    if gfx.type != "vnc":
        raise ValueError(f"graphics type {gfx.type!r} has no vfb form")
    auto = gfx.autoport is not False and (gfx.port is None or gfx.port < 0 or bool(gfx.autoport))
    parts = ["type=vnc", f"vncunused={int(auto)}"]
    if not auto and gfx.port is not None:
        parts.append(f"vncdisplay={gfx.port - VNC_BASE_PORT}")
    for key, value in (("vnclisten", _listen_address(gfx)), ("vncpasswd", gfx.passwd),
                       ("keymap", gfx.keymap)):
        if value:
            parts.append(f"{key}={value}")
    return ",".join(parts)


def format_body(dom: Domain, dialect: Dialect) -> list[tuple[str, Value]]:
    """The keys xl and xm write alike after the guest's features: clock, lifecycle actions, device
    model, graphics (vnc/sdl keys for HVM, ``vfb`` for PV) and the devices."""
    devs = dom.devices
    out = format_clock(dom) + format_lifecycle(dom)
    if devs.emulator:
        out.append(("device_model_override", devs.emulator))
    if dom.os.is_hvm:
        out += format_vnc_sdl(dom)
    elif devs.graphics:
        out.append(("vfb", [checked(format_vfb, g) for g in devs.graphics]))
    return out + format_devices(dom, dialect)


def format_devices(dom: Domain, dialect: Dialect) -> list[tuple[str, Value]]:
    """vif, pci, serial/parallel/soundhw/usb (HVM), then disk: the device keys both formats share."""
    devs = dom.devices
    out: list[tuple[str, Value]] = []
    if devs.interfaces:
        out.append(("vif", [checked(vifspec.format_vif, nic, dialect.netfront_type)
                            for nic in devs.interfaces]))
    if devs.hostdevs:
        out.append(("pci", [str(hd.address) + (",permissive=1" if hd.write_filtering is False else "")
                            for hd in devs.hostdevs if hd.type == "pci"]))
    if dom.os.is_hvm:
        for key, ports in (("parallel", devs.parallels), ("serial", devs.serials)):
            specs: list[Value] = [checked(format_chardev, dev) for dev in ports]
            out.append((key, specs if len(specs) > 1 else (specs[0] if specs else "none")))
        sounds = [_SOUNDHW_OF_SOUND[s.model] for s in devs.sounds if s.model in _SOUNDHW_OF_SOUND]
        if sounds:
            out.append(("soundhw", ",".join(sounds)))
        out += format_video(dom, dialect)
    return out


def format_usb_inputs(dom: Domain) -> list[tuple[str, Value]]:
    usb: list[Value] = [inp.type for inp in dom.devices.inputs if inp.bus == "usb"]
    if not usb:
        return []
    return [("usb", 1), ("usbdevice", usb if len(usb) > 1 else usb[0])]


def format_disks(dom: Domain, dialect: Dialect) -> list[tuple[str, Value]]:
    if not dom.devices.disks:
        return []
    return [("disk", [checked(dialect.format_disk, d) for d in dom.devices.disks])]


def checked(fn: Callable[..., str], *args: object) -> str:
    try:
        return fn(*args)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def boot_letters(dom: Domain) -> str:
    return "".join(_LETTER_OF_BOOT[d] for d in dom.os.boot if d in _LETTER_OF_BOOT) or "c"


def read_cmdline(cfg: Cfg) -> str | None:
    """``cmdline`` wins; otherwise ``root=`` and ``extra`` are joined the way xend did."""
    if cfg.has("cmdline"):
        return cfg.str("cmdline")
    root, extra = cfg.str("root"), cfg.str("extra")
    parts = ([f"root={root}"] if root else []) + ([extra] if extra else [])
    return " ".join(parts) or None


def read_kernel(cfg: Cfg, dom: Domain) -> None:
    dom.os.kernel, dom.os.initrd, dom.os.cmdline = cfg.str("kernel"), cfg.str("ramdisk"), read_cmdline(cfg)


def format_kernel(dom: Domain, cmdline_key: str) -> list[tuple[str, Value]]:
    cmdline = dom.os.cmdline
    if dom.os.root:
        cmdline = f"root={dom.os.root}" + (f" {cmdline}" if cmdline else "")
    return [(k, v) for k, v in (("kernel", dom.os.kernel), ("ramdisk", dom.os.initrd),
                                (cmdline_key, cmdline)) if v]


__all__ = ["FIRMWARE_DIR", "HVMLOADER", "Unread", "Cfg", "Dialect", "parse_common", "parse_chardev",
           "format_chardev", "parse_pci", "pci_hostdev", "format_video", "parse_vfb",
           "format_head", "format_hvm_features",
           "format_clock", "format_lifecycle", "format_vnc_sdl", "format_vfb", "format_devices",
           "format_usb_inputs", "format_disks", "boot_letters", "read_cmdline", "read_kernel",
           "format_kernel"]
