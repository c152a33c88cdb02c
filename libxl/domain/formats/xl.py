"""xl.cfg(5) guests (libvirt's ``xen-xl`` native format) to and from the domain model.

The keys xl shares with xm live in ``xencommon``; this module adds the guest ``type``, direct
kernel boot for HVM, ``bios``, and the xl-only keys: cpuid/nestedhvm, vnuma, spice, channel, usbctrl,
usbdev, e820_host, passthrough, acpi_firmware, the xenbus limits and device_model_args.
``parse_xl`` returns the model as written; ``libxl.domain.formats.defaults`` adds libvirt's implicit
devices when a caller wants libvirt's full view.
"""

from __future__ import annotations

from libxl.domain.formats import diskspec, vifspec, xencommon
from libxl.domain.formats.cpuid import split_policy
from libxl.domain.formats.xencommon import FIRMWARE_DIR, Cfg, Dialect, Unread
from libxl.domain.formats.xlcfg import Value, format_cfg, parse_cfg
from libxl.domain.model import (
    CPU,
    MAX_KIB,
    RUN_STRATEGIES,
    AcpiTable,
    CharDev,
    Controller,
    CpuFeature,
    Domain,
    Graphics,
    Listen,
    Loader,
    NumaCell,
    USBDevice,
)
from libxl.errors import ConfigError

XL = Dialect(name="xl", netfront_type="vif", parse_disk=diskspec.parse_xl_disk,
             format_disk=diskspec.format_xl_disk, cmdline_key="cmdline")

_TYPES = {"pv": "linux", "pvh": "xenpvh", "hvm": "hvm"}
OVMF = f"{FIRMWARE_DIR}/ovmf.bin"

#: libvirt CPU feature names that libxl's cpuid string spells differently.
_XL_NAME_OF = {"pni": "sse3", "pdpe1gb": "page1gb", "lahf_lm": "lahfsahf", "cmp_legacy": "cmplegacy",
               "cr8legacy": "altmovcr8", "pclmuldq": "pclmulqdq", "ds_cpl": "dscpl",
               "fxsr_opt": "ffxsr", "nodeid_msr": "nodeid", "tsc-deadline": "tsc_deadline"}
_LIBVIRT_NAME_OF = {xl: lv for lv, xl in _XL_NAME_OF.items()}
_POLICY_OF = {"1": "force", "0": "disable", "x": "optional", "k": "require", "s": "require"}
_VALUE_OF = {"force": "1", "require": "k", "optional": "x", "disable": "0", "forbid": "0"}
_NESTED = ("vmx", "svm")


def parse_xl(text: str, file: str | None = None) -> Domain:
    """Read an xl.cfg; raises ConfigError naming file, line and key."""
    return read_xl(text, file)[0]


def read_xl(text: str, file: str | None = None) -> tuple[Domain, list[Unread]]:
    """``parse_xl`` plus the settings the model has no place for (what a conversion drops)."""
    cfg = Cfg(parse_cfg(text, file), file)
    return _domain(cfg), cfg.unused()


def _domain(cfg: Cfg) -> Domain:
    dom = xencommon.parse_common(cfg, XL, _guest_type(cfg))
    xencommon.read_kernel(cfg, dom)
    if dom.os.is_hvm and dom.os.kernel and dom.os.kernel.rsplit("/", 1)[-1] == "hvmloader":
        # An xm habit: xl warns and ignores it (hvmloader is the firmware, not a kernel to boot).
        dom.os.kernel = None
        cfg.leave("kernel", "hvmloader is HVM firmware, which xl ignores here")
    if dom.os.is_hvm:
        bios = cfg.str("bios")
        if bios == "ovmf":
            # libvirt's OVMF loader is the pflash <loader>; its path is xl's bios_path_override.
            path = cfg.str("bios_path_override") or OVMF
            dom.os.loader = Loader(path=path, type="pflash", readonly="yes")
        elif bios not in (None, "seabios", "rombios"):
            raise cfg.error("bios", f"unknown bios {bios!r}")
        if cfg.has("acpi_firmware"):
            dom.os.acpi_tables = [AcpiTable("slic", cfg.str("acpi_firmware") or "")]
        _read_spice(cfg, dom)
    _read_cpu(cfg, dom)
    _read_xen_features(cfg, dom)
    devs = dom.devices
    devs.channels = [xencommon.item(cfg, "channel", s, parse_channel) for s in cfg.strlist("channel")]
    devs.controllers = [xencommon.item(cfg, "usbctrl", s, parse_usbctrl) for s in cfg.strlist("usbctrl")]
    for index, ctl in enumerate(devs.controllers):
        ctl.index = index
    devs.usb_hostdevs += [xencommon.item(cfg, "usbdev", s, parse_usbdev) for s in cfg.strlist("usbdev")]
    events, frames = cfg.int("max_event_channels"), cfg.int("max_grant_frames")
    if events is not None or frames is not None:
        devs.controllers.insert(0, Controller("xenbus", max_event_channels=events, max_grant_frames=frames))
    dom.commandline = cfg.strlist("device_model_args")
    read_agent_keys(cfg, dom)
    return dom


#: The agent's own xl.cfg key. xl reads only the keys it knows and ignores the rest without a word
#: (xl_parse.c looks keys up by name), so the same file still works with ``xl create``.
RUN_STRATEGY_KEY = "xenreconcile_run_strategy"


def read_run_strategy(cfg: Cfg) -> str | None:
    """``xenreconcile_run_strategy``, checked (ConfigError naming file and line), or None when the
    file does not set it. The one place an xl.cfg front end reads the agent's own keys from."""
    strategy = cfg.str(RUN_STRATEGY_KEY)
    if strategy is not None and strategy not in RUN_STRATEGIES:
        raise cfg.error(RUN_STRATEGY_KEY, f"must be one of {', '.join(RUN_STRATEGIES)}, not {strategy!r}")
    return strategy


def read_agent_keys(cfg: Cfg, dom: Domain) -> None:
    """The settings only the agent reads from an xl.cfg, onto the domain model."""
    dom.run_strategy = read_run_strategy(cfg)


def _guest_type(cfg: Cfg) -> str:
    kind = cfg.str("type")
    if kind is not None:
        if kind not in _TYPES:
            raise cfg.error("type", f"unknown guest type {kind!r} (expected pv, pvh or hvm)")
        return _TYPES[kind]
    builder = cfg.str("builder")
    if builder not in (None, "hvm", "generic"):
        raise cfg.error("builder", f"unknown builder {builder!r} (expected hvm or generic)")
    return "hvm" if builder == "hvm" else "linux"


def _read_spice(cfg: Cfg, dom: Domain) -> None:
    if not cfg.bool("spice"):
        return
    host = cfg.str("spicehost")
    port, tls = cfg.int("spiceport"), cfg.int("spicetls_port")
    ticketing = not cfg.bool("spicedisable_ticketing")
    dom.devices.graphics.append(Graphics(
        type="spice", port=port, tls_port=tls, autoport=port is None and tls is None, listen=host,
        listens=[Listen(address=host)] if host else [],
        passwd=cfg.str("spicepasswd") if ticketing else None,
        mouse_mode="client" if cfg.bool("spiceagent_mouse") else "server",
        # xl shares the clipboard through the vdagent only: without it the key does nothing.
        clipboard_copypaste=bool(cfg.bool("spicevdagent") and cfg.bool("spice_clipboard_sharing"))))


def _read_cpu(cfg: Cfg, dom: Domain) -> None:
    # xl.cfg(5) lists nestedhvm among the HVM-only options; on PV it has no meaning nor xl form.
    nested = cfg.bool("nestedhvm") if dom.os.is_hvm else None
    cpuid = cfg.raw("cpuid") or None  # an empty cpuid ("" or []) changes nothing
    if nested is None and cpuid is None and cfg.raw("vnuma") in (None, []):
        return  # an empty vnuma list says nothing: no <cpu> (it would not survive a round trip)
    cpu = dom.cpu = CPU()
    if nested is not None or cpuid is not None:
        cpu.mode = "host-passthrough"
    if isinstance(cpuid, list):
        cpu.cpuid_legacy = cfg.strlist("cpuid")
        for entry in cpu.cpuid_legacy:
            if not _legacy_cpuid_ok(entry):
                raise cfg.error("cpuid", f"malformed legacy cpuid entry {entry!r}")
    elif cpuid is not None:
        cpu.features = xencommon.item(cfg, "cpuid", str(cpuid), parse_cpuid)
    if nested is False:
        cpu.features.append(CpuFeature("vmx", "disable"))
    cpu.numa = _read_vnuma(cfg)


def _legacy_cpuid_ok(entry: str) -> bool:
    leaf, colon, regs = entry.partition(":")
    if not colon or not all(p.strip() for p in leaf.split(",")):
        return False
    for reg in regs.split(","):
        name, eq, bits = reg.partition("=")
        if not eq or name.strip() not in ("eax", "ebx", "ecx", "edx") or len(bits.strip()) != 32 \
                or set(bits.strip()) - set("01xks"):
            return False
    return True


def parse_cpuid(text: str) -> list[CpuFeature]:
    """libxl's ``host,NAME=VALUE,...`` cpuid string (``libxl.domain.formats.cpuid``) -> libvirt CPU
    features."""
    feats: list[CpuFeature] = []
    for name, value in split_policy(text)[1]:
        if name == "host":
            continue
        if value not in _POLICY_OF:
            item = name if value is None else f"{name}={value}"
            raise ValueError(f"malformed cpuid item {item!r} (expected NAME=0|1|x|k|s)")
        feats.append(CpuFeature(_LIBVIRT_NAME_OF.get(name, name), _POLICY_OF[value]))
    return feats


def format_cpuid(features: list[CpuFeature]) -> str | None:
    items = [f"{_XL_NAME_OF.get(f.name, f.name)}={_VALUE_OF[f.policy]}"
             for f in features if f.name not in _NESTED]
    return ",".join(["host", *items]) if items else None


def _read_vnuma(cfg: Cfg) -> list[NumaCell]:
    raw = cfg.raw("vnuma")
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(node, list) for node in raw):
        raise cfg.error("vnuma", "expected a list of lists of 'key=value' strings")
    cells = []
    for index, node in enumerate(raw):
        assert isinstance(node, list)
        opts = dict(str(item).partition("=")[::2] for item in node)
        try:
            distances = [int(d) for d in opts["vdistances"].split(",")] if opts.get("vdistances") else []
            cells.append(NumaCell(id=index, cpus=opts["vcpus"], memory_kib=int(opts["size"]) * 1024,
                                  distances=dict(enumerate(distances))))
            if cells[-1].memory_kib > MAX_KIB:
                raise ValueError(f"size (over {MAX_KIB} KiB)")
        except (KeyError, ValueError) as err:
            raise cfg.error("vnuma", f"node {index}: missing or malformed {err}") from None
    return cells


def _read_xen_features(cfg: Cfg, dom: Domain) -> None:
    dom.features.xen_e820_host = cfg.bool("e820_host")
    mode = cfg.str("passthrough")
    if mode is None:
        return
    if mode not in ("enabled", "disabled", "sync_pt", "share_pt"):
        raise cfg.error("passthrough", f"unknown passthrough {mode!r}")
    dom.features.xen_passthrough = "off" if mode == "disabled" else "on"
    dom.features.xen_passthrough_mode = mode if mode.endswith("_pt") else None


def parse_channel(spec: str) -> CharDev:
    opts = vifspec.split_spec(spec)
    conn = opts.get("connection")
    if conn == "socket":
        if not opts.get("path"):
            raise ValueError("a socket channel needs path=")
        dev = CharDev(type="unix", source_mode="bind", source_path=opts["path"])
    elif conn == "pty":
        dev = CharDev(type="pty")
    else:
        raise ValueError(f"unknown channel connection {conn!r} (expected socket or pty)")
    dev.target_type, dev.target_name = "xen", opts.get("name")
    return dev


def format_channel(dev: CharDev) -> str:
    if dev.type == "unix":
        parts = ["connection=socket", f"path={dev.source_path}"]
    elif dev.type == "pty":
        parts = ["connection=pty"]
    else:
        raise ValueError(f"channel type {dev.type!r} has no xl form")
    return ",".join(parts + ([f"name={dev.target_name}"] if dev.target_name else []))


def parse_usbctrl(spec: str) -> Controller:
    opts = vifspec.split_spec(spec)
    if opts.get("type", "qusb") != "qusb":
        raise ValueError(f"unsupported usbctrl type {opts['type']!r}")
    version = opts.get("version", "2")
    if version not in ("1", "2"):
        raise ValueError(f"unsupported usbctrl version {version!r}")
    return Controller("usb", model=f"qusb{version}", ports=int(opts["ports"]) if "ports" in opts else None)


def format_usbctrl(ctl: Controller) -> str:
    version = (ctl.model or "qusb2").removeprefix("qusb")
    return f"type=qusb,version={version}" + (f",ports={ctl.ports}" if ctl.ports is not None else "")


def parse_usbdev(spec: str) -> USBDevice:
    opts = vifspec.split_spec(spec)
    if opts.get("type", "hostdev") != "hostdev" or "hostbus" not in opts or "hostaddr" not in opts:
        raise ValueError("expected hostbus=N,hostaddr=N")
    return USBDevice(bus=int(opts["hostbus"], 0), device=int(opts["hostaddr"], 0))


# ---- writing ---------------------------------------------------------------------------------

def format_xl(dom: Domain) -> str:
    """An xl.cfg for ``dom``; raises ConfigError for what xl cannot express."""
    hvm, devs = dom.os.is_hvm, dom.devices
    out = xencommon.format_head(dom)
    if dom.os.is_pvh:
        out.append(("type", "pvh"))
    if hvm:
        out += xencommon.format_hvm_features(dom)
    out += _format_xen_features(dom)
    out += xencommon.format_body(dom, XL)
    if hvm:
        out.append(("builder", "hvm"))
        if dom.os.firmware == "efi" or (dom.os.loader and dom.os.loader.type == "pflash"):
            out.append(("bios", "ovmf"))
            if dom.os.loader and dom.os.loader.path not in (None, OVMF):
                out.append(("bios_path_override", dom.os.loader.path))
    out += xencommon.format_kernel(dom, XL.cmdline_key)
    out += [(k, v) for k, v in (("bootloader", dom.bootloader), ("bootargs", dom.bootloader_args)) if v]
    if hvm:
        slic = next((t.path for t in dom.os.acpi_tables if t.type == "slic"), None)
        if slic:
            out.append(("acpi_firmware", slic))
        out.append(("boot", xencommon.boot_letters(dom)))
    out += _format_cpu(dom)
    out += xencommon.format_usb_inputs(dom) + xencommon.format_disks(dom, XL)
    out += _format_spice(dom)
    usbctrls = [c for c in devs.controllers if c.type == "usb" and (c.model or "").startswith("qusb")]
    if usbctrls:
        out.append(("usbctrl", [format_usbctrl(c) for c in usbctrls]))
    if devs.usb_hostdevs:
        out.append(("usbdev", [f"hostbus={u.bus},hostaddr={u.device}" for u in devs.usb_hostdevs]))
    if devs.channels:
        out.append(("channel", [xencommon.checked(format_channel, c) for c in devs.channels]))
    xenbus = next((c for c in devs.controllers if c.type == "xenbus"), None)
    if xenbus is not None:
        out += [(k, v) for k, v in (("max_event_channels", xenbus.max_event_channels),
                                    ("max_grant_frames", xenbus.max_grant_frames)) if v is not None]
    if dom.commandline:
        out.append(("device_model_args", list(dom.commandline)))
    if dom.run_strategy:
        out.append((RUN_STRATEGY_KEY, dom.run_strategy))
    return format_cfg(out)


def _format_xen_features(dom: Domain) -> list[tuple[str, Value]]:
    f = dom.features
    out: list[tuple[str, Value]] = []
    if f.xen_e820_host is not None:
        out.append(("e820_host", int(f.xen_e820_host)))
    if f.xen_passthrough is not None:
        mode = f.xen_passthrough_mode or ("enabled" if f.xen_passthrough == "on" else "disabled")
        out.append(("passthrough", mode))
    return out


def _format_cpu(dom: Domain) -> list[tuple[str, Value]]:
    cpu = dom.cpu
    if cpu is None:
        return []
    out: list[tuple[str, Value]] = []
    if cpu.mode == "host-passthrough" and dom.os.is_hvm:
        nested_off = any(f.name in _NESTED and f.policy in ("disable", "forbid") for f in cpu.features)
        out.append(("nestedhvm", 0 if nested_off else 1))
    if cpu.cpuid_legacy:
        out.append(("cpuid", list(cpu.cpuid_legacy)))
    elif (cpuid := format_cpuid(cpu.features)) is not None:
        out.append(("cpuid", cpuid))
    if cpu.numa:
        out.append(("vnuma", _format_vnuma(cpu.numa)))
    return out


def _format_vnuma(cells: list[NumaCell]) -> list[Value]:
    """Each node with a full distance row; a missing distance mirrors its sibling's, else 10/20."""
    ids = [c.id for c in cells]
    by_id = {c.id: c for c in cells}

    def distance(a: int, b: int) -> int:
        if b in by_id[a].distances:
            return by_id[a].distances[b]
        if a in by_id[b].distances:
            return by_id[b].distances[a]
        return 10 if a == b else 20

    return [[f"pnode={c.id}", f"size={(c.memory_kib + 1023) // 1024}", f"vcpus={c.cpus}",
             "vdistances=" + ",".join(str(distance(c.id, other)) for other in ids)] for c in cells]


def _format_spice(dom: Domain) -> list[tuple[str, Value]]:
    spice = next((g for g in dom.devices.graphics if g.type == "spice"), None)
    if spice is None:
        return []
    if not dom.os.is_hvm:
        raise ConfigError("spice graphics need an HVM guest in xl")
    out: list[tuple[str, Value]] = [("spice", 1)]
    host = spice.listen or next((lst.address for lst in spice.listens if lst.address), None)
    if host:
        out.append(("spicehost", host))
    if spice.port is not None and spice.port > 0:
        out.append(("spiceport", spice.port))
    if spice.tls_port is not None and spice.tls_port > 0:
        out.append(("spicetls_port", spice.tls_port))
    out.append(("spicedisable_ticketing", 0 if spice.passwd else 1))
    if spice.passwd:
        out.append(("spicepasswd", spice.passwd))
    if spice.mouse_mode:
        out.append(("spiceagent_mouse", int(spice.mouse_mode == "client")))
    if spice.clipboard_copypaste:
        out += [("spicevdagent", 1), ("spice_clipboard_sharing", 1)]
    return out


__all__ = ["XL", "parse_xl", "read_xl", "format_xl", "parse_cpuid", "format_cpuid", "parse_channel",
           "format_channel", "parse_usbctrl", "format_usbctrl", "parse_usbdev"]
