"""Legacy xend s-expressions (libvirt's ``xen-sxpr``): import only.

``(domain (name ..) (memory ..) (image (linux|hvm ..)) (device (vbd ..)) (device (vif ..)) ..)`` as
``xm list -l`` printed it. Nothing writes this format any more, so there is no formatter; the reader
maps xend's fields onto the model through the same helpers as xm (disk ``uname``/``dev``/``mode``,
vif settings, character devices), and ignores xend's runtime bookkeeping (state, cpu_time...).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextvars import ContextVar

from libxl.domain.formats import diskspec, vifspec
from libxl.domain.formats.xencommon import VNC_BASE_PORT, Unread, parse_chardev, parse_vfb
from libxl.domain.model import (
    LIFECYCLE_ACTIONS,
    MAX_KIB,
    Clock,
    Domain,
    Graphics,
    Hostdev,
    Input,
    Listen,
    Loader,
    PCIAddress,
    Sound,
    Timer,
    canonical_uuid,
)
from libxl.errors import ConfigError

#: An s-expression: an atom or a list of s-expressions.
Sexpr = str | list["Sexpr"]

_TOKEN = re.compile(r"""\s+|(?P<open>\()|(?P<close>\))
                     |'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<atom>[^\s()'"]+)""", re.X)


def parse_sexpr(text: str, file: str | None = None) -> Sexpr:
    """The first s-expression in ``text``.

    Lenient like libvirt's reader was: backslash-newline continuations are joined, anything after
    the first complete expression is ignored, and lists still open at the end of input are closed
    (xend dumps in the wild lose their last parenthesis).
    """
    text = text.replace("\\\n", "")
    stack: list[list[Sexpr]] = []
    pos, next_line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        line = next_line  # counted as we go: recounting from the start made big inputs quadratic
        if m is None:
            raise ConfigError(f"syntax error near {text[pos:pos + 20]!r}", file=file, line=line)
        pos = m.end()
        next_line += m.group().count("\n")
        if m.group("open"):
            stack.append([])
        elif m.group("close"):
            if not stack:
                raise ConfigError("unbalanced ')'", file=file, line=line)
            done = stack.pop()
            if not stack:
                return done
            stack[-1].append(done)
        elif (atom := next((m.group(g) for g in ("sq", "dq", "atom") if m.group(g) is not None), None)):
            if not stack:
                raise ConfigError(f"expected '(' near {atom!r}", file=file, line=line)
            stack[-1].append(atom)
    if not stack:
        raise ConfigError("empty input: expected (domain ...)", file=file)
    while len(stack) > 1:
        done = stack.pop()
        stack[-1].append(done)
    return stack[0]


#: The (node, key) lookups of the parse under way, so ``read_sxpr`` can tell what it left unread.
_LOOKUPS: ContextVar[set[tuple[int, str]] | None] = ContextVar("sxpr_lookups", default=None)
#: xend's runtime bookkeeping in ``xm list -l`` dumps: the state of a running domain, not its
#: configuration, so nothing a conversion could carry or lose.
RUNTIME_KEYS = frozenset({
    "domid", "state", "status", "cpu_time", "online_vcpus", "start_time", "store_mfn", "console_mfn",
    "shadow_memory", "up_time", "vcpu_avail", "memory_dynamic_min", "memory_dynamic_max",
    "memory_static_min", "memory_static_max", "notes", "features", "on_xend_start", "on_xend_stop",
    "pool_name", "backend", "frontend", "uuid", "devid", "location", "tty", "protocol",
    "shutdown_reason", "VDI",
})


def _children(node: Sexpr, key: str) -> list[list[Sexpr]]:
    if not isinstance(node, list):
        return []
    if (seen := _LOOKUPS.get()) is not None:
        seen.add((id(node), key))
    return [c for c in node[1:] if isinstance(c, list) and c and c[0] == key]


def _child(node: Sexpr, key: str) -> list[Sexpr] | None:
    found = _children(node, key)
    return found[0] if found else None


def _value(node: Sexpr, key: str) -> str | None:
    """The atom of ``(key atom)``; ``None`` when absent or empty."""
    child = _child(node, key)
    if child is None or len(child) < 2 or not isinstance(child[1], str):
        return None
    return child[1]


def _int(node: Sexpr, key: str, file: str | None) -> int | None:
    value = _value(node, key)
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise ConfigError(f"expected a whole number, got {value!r}", file=file, element=key) from None


def read_sxpr(text: str, file: str | None = None) -> tuple[Domain, list[Unread]]:
    """``parse_sxpr`` plus the fields it did not read (runtime bookkeeping aside): what a
    conversion drops, named ``image.hvm.cpu_cap`` style since a dump has no useful lines."""
    seen: set[tuple[int, str]] = set()
    token = _LOOKUPS.set(seen)
    try:
        root = parse_sexpr(text, file)
        dom = _domain(root, file)
    finally:
        _LOOKUPS.reset(token)
    return dom, list(_unread(root, "", seen))


def _unread(node: Sexpr, path: str, seen: set[tuple[int, str]]) -> Iterator[Unread]:
    """Fields of ``node`` never looked up; the containers read (image, devices) are walked into."""
    if not isinstance(node, list):
        return
    for child in node[1:]:
        if not (isinstance(child, list) and child and isinstance(child[0], str)):
            continue
        key = child[0]
        where = f"{path}.{key}" if path else key
        if key in ("image", "device"):
            for inner in child[1:]:
                if isinstance(inner, list) and inner and isinstance(inner[0], str):
                    yield from _unread(inner, f"{where}.{inner[0]}", seen)
        elif (id(node), key) not in seen and key not in RUNTIME_KEYS:
            yield Unread(where, None)


def parse_sxpr(text: str, file: str | None = None) -> Domain:
    """Read an xend s-expression into the model; raises ConfigError naming file and field."""
    return _domain(parse_sexpr(text, file), file)


def _domain(root: Sexpr, file: str | None) -> Domain:
    if not isinstance(root, list) or not root or root[0] != "domain":
        raise ConfigError("expected (domain ...)", file=file)
    name = _value(root, "name")
    if not name:
        raise ConfigError("missing (name ...)", file=file, element="name")
    dom = Domain(name=name, id=_int(root, "domid", file))
    if (uuid := _value(root, "uuid")) is not None:
        try:
            dom.uuid = canonical_uuid(uuid)
        except ValueError as err:
            raise ConfigError(str(err), file=file, element="uuid") from None
    memory, maxmem = _int(root, "memory", file), _int(root, "maxmem", file)
    if memory is None:
        raise ConfigError("missing (memory ...)", file=file, element="memory")
    dom.memory_kib = max(memory, maxmem or 0) * 1024
    if not 0 <= memory <= dom.memory_kib // 1024 <= MAX_KIB // 1024:
        raise ConfigError(f"memory must be 0..{MAX_KIB // 1024} MiB", file=file, element="memory")
    dom.current_memory_kib = memory * 1024
    dom.vcpu.count = _int(root, "vcpus", file) or 1
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        action = _value(root, event)
        if action is not None and action not in LIFECYCLE_ACTIONS:
            raise ConfigError(f"unknown action {action!r}", file=file, element=event)
        setattr(dom, event, action)
    dom.bootloader = _value(root, "bootloader")
    dom.bootloader_args = _value(root, "bootloader_args")
    _image(root, dom, file)
    _devices(root, dom, file)
    return dom


def _image(root: Sexpr, dom: Domain, file: str | None) -> None:
    image = _child(root, "image")
    kind = image[1] if image and len(image) > 1 and isinstance(image[1], list) and image[1] else None
    if kind is None or kind[0] not in ("linux", "hvm"):
        dom.os.type = "linux"
        return
    hvm = kind[0] == "hvm"
    dom.os.type = "hvm" if hvm else "linux"
    kernel, loader = _value(kind, "kernel"), _value(kind, "loader")
    if hvm and loader is None:
        kernel, loader = None, kernel  # xend's HVM `kernel` is the firmware loader
    dom.os.kernel, dom.os.initrd, dom.os.cmdline = kernel, _value(kind, "ramdisk"), _value(kind, "args")
    if root_dev := _value(kind, "root"):
        dom.os.root = root_dev
    localtime = (_int(root, "localtime", file) or _int(kind, "localtime", file) or 0) != 0
    if hvm:
        dom.os.loader = Loader(path=loader, type="rom") if loader else None
        dom.devices.emulator = _value(kind, "device_model")
        feats = dom.features
        feats.pae, feats.acpi, feats.apic = ((_int(kind, k, file) or 0) != 0 for k in ("pae", "acpi", "apic"))
        feats.viridian = (_int(kind, "viridian", file) or 0) != 0
        boot = _value(kind, "boot") or "c"
        dom.os.boot = [{"a": "fd", "c": "hd", "d": "cdrom", "n": "network"}[b] for b in boot if b in "acdn"]
        offset = _int(kind, "rtc_timeoffset", file) or 0
        basis = "localtime" if localtime else "utc"
        dom.clock = Clock(offset="variable", adjustment=str(offset), basis=basis)
        hpet = _int(kind, "hpet", file)
        if hpet is not None:
            dom.clock.timers.append(Timer("hpet", present="yes" if hpet else "no"))
        _chardevs(kind, dom, file)
        if sound := _value(kind, "soundhw"):
            models = ["sb16", "es1370"] if sound == "all" else sound.split(",")
            dom.devices.sounds = [Sound(m) for m in models if m]
        _value(kind, "usb")  # the USB bus flag: what usbdevice needs, nothing of its own
        _value(kind, "vcpus")  # xend repeats the domain's vcpus in the HVM image
        if usbdev := _value(kind, "usbdevice"):
            dom.devices.inputs.append(Input(usbdev if usbdev in ("mouse", "tablet") else "mouse", "usb"))
    else:
        dom.clock = Clock(offset="localtime" if localtime else "utc", adjustment="reset")
    try:
        dom.devices.graphics += _legacy_graphics(kind)
    except ValueError as err:
        raise ConfigError(str(err), file=file, element="image") from None


def _legacy_graphics(node: Sexpr) -> list[Graphics]:
    """Every display the image (or an old-style vfb) turns on: vnc, sdl and spice may all be."""
    out = []
    if _value(node, "vnc") == "1":
        out.append(_vnc(node))
    if _value(node, "sdl") == "1":
        out.append(Graphics(type="sdl", display=_value(node, "display"), xauth=_value(node, "xauthority")))
    if _value(node, "spice") == "1":
        out.append(_spice(node))
    return out


def _spice(node: Sexpr) -> Graphics:
    """xend's spice keys, named as xl's (spiceport, spicehost, spicepasswd...)."""
    port, tls = _value(node, "spiceport"), _value(node, "spicetls_port")
    host = _value(node, "spicehost")
    ticketing = _value(node, "spicedisable_ticketing") != "1"
    return Graphics(type="spice", port=int(port) if port else None, tls_port=int(tls) if tls else None,
                    autoport=port is None and tls is None, listen=host,
                    listens=[Listen(address=host)] if host else [],
                    passwd=_value(node, "spicepasswd") if ticketing else None)


def _vnc(node: Sexpr) -> Graphics:
    display = _value(node, "vncdisplay")
    unused = _value(node, "vncunused") != "0" or display is None
    return Graphics(type="vnc", autoport=unused, port=-1 if unused else VNC_BASE_PORT + int(display or 0),
                    listen=_value(node, "vnclisten"), passwd=_value(node, "vncpasswd"),
                    keymap=_value(node, "keymap"))


def _chardevs(kind: Sexpr, dom: Domain, file: str | None) -> None:
    for key, target in (("serial", dom.devices.serials), ("parallel", dom.devices.parallels)):
        child = _child(kind, key)
        if child is None or len(child) < 2:
            continue
        specs = child[1] if isinstance(child[1], list) else [child[1]]
        for port, spec in enumerate(specs):
            if not isinstance(spec, str) or spec == "none":
                continue
            try:
                dev = parse_chardev(spec)
            except ValueError as err:
                raise ConfigError(str(err), file=file, element=key) from None
            dev.target_port = port
            target.append(dev)


def _devices(root: Sexpr, dom: Domain, file: str | None) -> None:
    nics = 0
    for device in _children(root, "device"):
        if len(device) < 2 or not isinstance(device[1], list) or not device[1]:
            continue
        node = device[1]
        kind = node[0]
        try:
            if kind in ("vbd", "tap", "tap2"):
                uname, dev, mode = (_value(node, k) or "" for k in ("uname", "dev", "mode"))
                spec = f"{uname},{dev},{mode or 'w'}"
                dom.devices.disks.append(diskspec.parse_xm_disk(spec))
            elif kind == "vif":
                opts = {k: v for k in ("mac", "bridge", "ip", "script", "model", "type", "vifname", "rate")
                        if (v := _value(node, k)) is not None}
                nic = vifspec.interface_from_settings(opts, "netfront")
                if nic.target_dev is None and dom.id is not None:
                    nic.target_dev = f"vif{dom.id}.{nics}"
                dom.devices.interfaces.append(nic)
                nics += 1
            elif kind == "vfb":
                # An HVM dump repeats its image's display as a vfb device: keep one per type.
                shown = {g.type for g in dom.devices.graphics}
                dom.devices.graphics += [g for g in _vfb(node) if g.type not in shown]
            elif kind == "pci":
                dom.devices.hostdevs += [_pci(dev) for dev in _children(node, "dev")]
        except (ValueError, KeyError) as err:
            raise ConfigError(str(err), file=file, element=f"device {kind}") from None


def _vfb(node: Sexpr) -> list[Graphics]:
    kind = _value(node, "type")
    if kind is None and any(_value(node, k) is not None for k in ("vnc", "sdl", "spice")):
        return _legacy_graphics(node)
    if kind == "spice":
        return [_spice(node)]
    opts = {k: v for k in ("type", "vncunused", "vncdisplay", "vnclisten", "vncpasswd", "keymap",
                           "display", "xauthority") if (v := _value(node, k)) is not None}
    return [parse_vfb(",".join(f"{k}={v}" for k, v in opts.items()))]


def _pci(dev: Sexpr) -> Hostdev:
    fields = [int(_value(dev, k) or "0", 0) for k in ("domain", "bus", "slot", "func")]
    return Hostdev(managed=False, address=PCIAddress(*fields))


__all__ = ["RUNTIME_KEYS", "parse_sexpr", "parse_sxpr", "read_sxpr"]
