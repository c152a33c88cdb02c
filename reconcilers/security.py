"""What a desired file may ask for: file ownership and modes, and a policy on dom0-reaching settings.

Whoever can write to the desired directory can make the agent, root in dom0, act there on a guest's
behalf: a bootloader or device model is a program libxl starts in dom0, device-model arguments reach
qemu (``-monitor``, ``-chardev file,path=/etc/...``), hotplug scripts run as root, PCI/USB passthrough
hands host hardware to a guest, and qemu (root) opens, creates, unlinks or listens on whatever a serial
port, channel, 9p share or display names. So, like sshd's StrictModes, a file and every directory and
symlink on its resolved path must be owned by the agent's user or root and writable by nobody else;
and a policy, deny by default, decides which of those settings a file may use at all (README
"Security" lists every setting).

The policy reads the libxl JSON a file becomes, so every front end is held to it the same way;
``locate`` then finds the offending key (xl.cfg) or element (domain XML) in the file's own bytes.
The policy check is pure; the file-mode check judges each component's own descriptor as
``libxl.domain.formats.readfile`` opens it (never a second ``stat`` by path that a swap could outrun).
Both return ``ConfigError``s that name the file (and line and element), so the loader marks the
file invalid (its guest keeps running on the last good version) and ``validate`` prints the same
lines in CI. The policy's settings and their defaults are ``reconcilers.securitypolicy``, which the
agent's settings table reads without loading these checks.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lxml import etree

from libxl.domain.formats.readfile import Role, Trust, open_regular
from libxl.domain.model import XEN_NS
from libxl.errors import ConfigError
from reconcilers import qemu_specs as qs
from reconcilers.securitypolicy import LIBXL_FIRMWARE_DIR, XEN_SCRIPT_DIR, SecurityPolicy

#: libxl's private bin directory, where it runs a bootloader given without a path.
_LIBXL_BINDIR = re.compile(r"/usr/lib(?:64)?/xen(?:-[0-9.]+)?/bin")
#: pygrub options that choose where it writes the kernel it extracts from the guest's disk, in dom0.
_BOOTLOADER_OUTPUT = re.compile(r"(?:^|\s)--output")


@dataclass(frozen=True)
class Where:
    """How to find the offending setting in the file: an XML element, or an xl.cfg key."""
    tag: str  # local name; ``arg`` is looked up in the xen: namespace
    attr: str | None  # attribute to match ``value`` against (None: the element's text)
    value: str | None
    key: str  # the xl.cfg key
    #: A path or address the offending element holds (an attribute or text in it) or the xl.cfg
    #: value holds: picks the right one of several ``<serial>``s or list items.
    token: str | None = None
    #: Other spellings of the same setting, tried in turn (``<console>`` for ``<serial>``).
    also: tuple[Where, ...] = ()


class PolicyError(ConfigError):
    """A policy violation; ``where`` lets ``locate`` add the line and element of the file's format."""

    def __init__(self, message: str, where: Where) -> None:
        super().__init__(message)
        self.where = where


# ---- file ownership and modes ------------------------------------------------------------------

def _owner_problem(st: os.stat_result, uid: int) -> str | None:
    if st.st_uid not in (uid, 0):
        return f"owned by uid {st.st_uid}, not by the agent's uid {uid} or root"
    return None


def mode_problem(st: os.stat_result, uid: int) -> str | None:
    """Why a file or directory with this stat may not be trusted, or None."""
    if owner := _owner_problem(st, uid):
        return owner
    if not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None  # the common case, asked of every desired file on every rescan
    writable = [who for who, bit in (("group", stat.S_IWGRP), ("others", stat.S_IWOTH)) if st.st_mode & bit]
    if writable:
        return f"writable by {' and '.join(writable)} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _component_problem(role: Role, st: os.stat_result, uid: int) -> str | None:
    """``mode_problem``, except that a sticky directory (``/tmp``) may be passed through: nobody
    but an entry's owner can rename or replace it there. A directory that holds the file or one
    of its symlinks gets no such leniency: others could add or swap what is read."""
    if role is Role.DIRECTORY and st.st_mode & stat.S_ISVTX and st.st_uid in (uid, 0):
        return None
    if role is Role.LINK:  # a symlink's own mode is always 0777 and means nothing
        return _owner_problem(st, uid)
    return mode_problem(st, uid)


def file_trust(uid: int) -> Trust:
    """strict_modes as the race-free reader applies it to every component of a file's resolved
    chain (``libxl.domain.formats.readfile``), judged on each component's own descriptor."""
    return Trust(lambda role, st: _component_problem(role, st, uid),
                 "; others could make the agent run code as root (strict_modes = true)")


def check_file_modes(path: Path, uid: int) -> ConfigError | None:
    """Refuse ``path`` unless the file, the directories on its resolved path (a ConfigMap's
    ``..data`` target included) and its symlinks are owned by ``uid`` or root and not writable by
    group or others; None when it may be read."""
    try:
        with open_regular(str(path), file_trust(uid)):
            return None
    except ConfigError as err:
        return err.located(str(path))


# ---- what a file may ask for ---------------------------------------------------------------------
#
# Every check reads the libxl ``libxl_domain_config`` JSON the file becomes (``libxl_types.idl``
# field names), not the parsed domain model: both front ends (domain XML through the model, xl.cfg
# straight to libxl JSON) produce it, and a key no builder emits today is still seen the day one does.

JSON = dict[str, Any]
Check = Callable[[JSON, "SecurityPolicy"], Iterator[PolicyError]]


def _bootloader_allowed(path: str, allowed: tuple[str, ...]) -> bool:
    """Absolute paths are normalised; a bare name is what libxl runs from its private bin
    directory, so it is allowed when an allowed entry is that name in such a directory."""
    if "/" not in path:
        return any(posixpath.basename(a) == path and _LIBXL_BINDIR.fullmatch(posixpath.dirname(a))
                   for a in allowed)
    return path.startswith("/") and posixpath.normpath(path) in {posixpath.normpath(a) for a in allowed}


def script_path(script: str) -> str:
    """Where libxl finds a hotplug script: a relative name is taken from XEN_SCRIPT_DIR."""
    return posixpath.normpath(posixpath.join(XEN_SCRIPT_DIR, script))


def _listing(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def _on(value: Any) -> bool:
    """A libxl_defbool (``"True"``/``"False"``/``"<default>"``) or a JSON boolean that is set."""
    return value in ("True", True)


def _off(value: Any) -> bool:
    return value in ("False", False)


def _dicts(value: Any) -> list[JSON]:
    """A device list of the config, tolerating a hand-written config's odd shapes (the policy runs
    before libxl's own parser, and must never be the one to raise)."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _keys(where: Where, *keys: str) -> Where:
    """``where``, also found under other xl.cfg keys that spell the same setting."""
    return replace(where, also=where.also + tuple(replace(where, key=k, also=()) for k in keys))


def _sections(config: JSON) -> tuple[JSON, JSON, JSON]:
    """``b_info`` and its ``type.hvm`` and ``type.pv`` unions (empty dicts when absent)."""
    b_info = config.get("b_info") if isinstance(config.get("b_info"), dict) else {}
    hvm, pv = (b_info.get(k) if isinstance(b_info.get(k), dict) else {} for k in ("type.hvm", "type.pv"))
    return b_info, hvm, pv


def _programs(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """Programs libxl runs in dom0 and what reaches their command lines: bootloader, device model."""
    b_info, hvm, pv = _sections(config)
    for bootloader in dict.fromkeys(_strings(b_info.get("bootloader")) + _strings(pv.get("bootloader"))):
        if bootloader and not _bootloader_allowed(bootloader, policy.allowed_bootloaders):
            yield PolicyError(f"bootloader {bootloader!r} is not allowed "
                              f"(allowed_bootloaders = {_listing(policy.allowed_bootloaders)})",
                              Where("bootloader", None, bootloader, "bootloader"))
    bootloader_args = _strings(b_info.get("bootloader_args")) + _strings(pv.get("bootloader_args"))
    if any(_BOOTLOADER_OUTPUT.search(arg) for arg in bootloader_args):
        yield PolicyError("bootloader arguments may not choose where the bootloader writes in dom0 "
                          "(--output*)",
                          _keys(Where("bootloader_args", None, None, "bootargs"), "bootloader_args"))
    extra = [a for k in ("extra", "extra_hvm", "extra_pv") for a in _strings(b_info.get(k))]
    if extra and not policy.allow_device_model_args:
        yield PolicyError("device model arguments are not allowed (allow_device_model_args = false)",
                          _keys(Where("arg", "value", extra[0], "device_model_args"), "device_model_args_hvm",
                                "device_model_args_pv"))
    emulator = b_info.get("device_model")
    if isinstance(emulator, str) and emulator and posixpath.normpath(emulator) not in {
            posixpath.normpath(e) for e in policy.allowed_device_models}:
        yield PolicyError(f"device model {emulator!r} is not allowed "
                          f"(allowed_device_models = {_listing(policy.allowed_device_models)})",
                          Where("emulator", None, emulator, "device_model_override"))
    if not policy.allow_device_model_args:
        yield from _option_injection(config, hvm)
    if policy.require_dm_restrict:
        yield from _dm_restrict(config, b_info)


#: Strings libxl pastes into one of qemu's comma-separated option lists: a comma in them adds options
#: (``model = "e1000,romfile=/etc/shadow"`` hands a dom0 file to the guest as an option ROM).
_NAME = re.compile(r"[A-Za-z0-9._-]*")


def _option_injection(config: JSON, hvm: JSON) -> Iterator[PolicyError]:
    found: list[tuple[str, str, Where]] = []
    for nic in _dicts(config.get("nics")):
        for field_ in ("model", "ifname"):
            value = nic.get(field_)
            if isinstance(value, str) and "," in value:
                tag = "model" if field_ == "model" else "target"
                attr = "type" if field_ == "model" else "dev"
                found.append((f"nic {field_}", value, Where(tag, attr, value, "vif", token=value)))
    soundhw = hvm.get("soundhw")
    if isinstance(soundhw, str) and not _NAME.fullmatch(soundhw):
        found.append(("sound card", soundhw, Where("sound", "model", soundhw, "soundhw")))
    for usb in _strings(hvm.get("usbdevice")) + _strings(hvm.get("usbdevice_list")):
        if "," in usb:
            found.append(("emulated USB device", usb, Where("input", None, None, "usbdevice", token=usb)))
    spice = hvm.get("spice") if isinstance(hvm.get("spice"), dict) else {}
    for field_, value in spice.items():
        if isinstance(value, str) and "," in value and field_ != "passwd":
            spaced = field_ in ("image_compression", "streaming_video")  # xl's spice_image_compression
            key = f"spice_{field_}" if spaced else f"spice{field_}"
            found.append((f"SPICE {field_}", value,
                          _keys(Where("graphics", "type", "spice", key, token=value), "spice")))
    for what, value, where in found:
        yield PolicyError(f"{what} {value!r} would add options to qemu's command line "
                          "(allow_device_model_args = false)", where)
    if isinstance(spice.get("passwd"), str) and "," in spice["passwd"]:  # a secret: never quoted
        yield PolicyError("the SPICE password holds a comma, which would add options to qemu's command line "
                          "(allow_device_model_args = false)",
                          _keys(Where("graphics", "type", "spice", "spicepasswd"), "spice"))


def _dm_restrict(config: JSON, b_info: JSON) -> Iterator[PolicyError]:
    """``require_dm_restrict``: an HVM guest's qemu (in dom0 unless it runs in a stub domain) must
    drop root and be confined, as libxl does with ``dm_restrict``."""
    c_info = config.get("c_info") if isinstance(config.get("c_info"), dict) else {}
    if c_info.get("type") != "hvm" or _on(b_info.get("device_model_stubdomain")):
        return
    if not _on(b_info.get("dm_restrict")):
        yield PolicyError("the device model would run as root in dom0: dm_restrict is not set "
                          "(require_dm_restrict = true)",
                          _keys(Where("domain", None, None, "dm_restrict"), "type"))
    if b_info.get("device_model_user") == "root":
        yield PolicyError("device_model_user 'root' runs the device model as root in dom0 "
                          "(require_dm_restrict = true)", Where("domain", None, None, "device_model_user"))


def _pci_address(dev: JSON) -> str:
    if isinstance(dev.get("name"), str):
        return dev["name"]
    domain, bus, slot, func = (dev.get(k) if isinstance(dev.get(k), int) else 0
                               for k in ("domain", "bus", "dev", "func"))
    return f"{domain:04x}:{bus:02x}:{slot:02x}.{func:x}"


def _hardware(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """Host devices, memory, I/O ports and interrupts handed to the guest."""
    b_info, hvm, _pv = _sections(config)
    pcidevs = _dicts(config.get("pcidevs"))
    if pcidevs and not policy.allow_pci_passthrough:
        yield PolicyError(f"PCI passthrough of {_pci_address(pcidevs[0])} is not allowed "
                          "(allow_pci_passthrough = false)",
                          Where("hostdev", "type", "pci", "pci",
                                also=(Where("interface", "type", "hostdev", "pci"),)))
    rdm = hvm.get("rdm") if isinstance(hvm.get("rdm"), dict) else {}
    if (rdm.get("strategy") == "host" or _dicts(config.get("rdms"))) and not policy.allow_pci_passthrough:
        yield PolicyError("reserved device memory (rdm) is part of PCI passthrough (allow_pci_passthrough = "
                          "false)", Where("rdm", None, None, "rdm"))
    usb_host = [u for u in _strings(hvm.get("usbdevice")) + _strings(hvm.get("usbdevice_list"))
                if u.startswith("host:")]
    if (_dicts(config.get("usbdevs")) or usb_host) and not policy.allow_usb_passthrough:
        yield PolicyError("USB passthrough is not allowed (allow_usb_passthrough = false)",
                          _keys(Where("hostdev", "type", "usb", "usbdev"), "usbdevice"))
    if policy.allow_raw_hardware:
        return
    raw = [("iomem", "I/O memory"), ("ioports", "I/O ports"), ("irqs", "interrupts"),
           ("device_tree", "a device tree")]
    for key, what in raw:
        if b_info.get(key):
            yield PolicyError(f"passing {what} of the host to the guest ({key}) is not allowed "
                              "(allow_raw_hardware = false)", Where(key, None, None, key))
    if _dicts(config.get("dtdevs")):
        yield PolicyError("passing device-tree nodes of the host to the guest (dtdev) is not allowed "
                          "(allow_raw_hardware = false)", Where("dtdev", None, None, "dtdev"))


def _scripts(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """Hotplug scripts libxl runs as root for disks and vifs."""
    for key, devices in (("disk", "disks"), ("vif", "nics")):
        for dev in _dicts(config.get(devices)):
            script = dev.get("script")
            if isinstance(script, str) and script and \
                    not qs.path_within(script_path(script), policy.hotplug_script_dirs):
                yield PolicyError(f"hotplug script {script!r} (runs as {script_path(script)}) is outside "
                                  f"hotplug_script_dirs = {_listing(policy.hotplug_script_dirs)}",
                                  Where("script", "path", script, key))


#: qemu's serial scheme -> the libvirt ``type`` of ``<serial>``/``<console>`` that produces it.
_XML_CHARDEV_TYPE = {"file": "file", "pipe": "pipe", "unix": "unix", "dev": "dev", "tcp": "tcp",
                     "telnet": "tcp", "udp": "udp"}


def _chardevs(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """Serial ports and channels: files, FIFOs, sockets, device nodes and network ports qemu opens."""
    _b_info, hvm, _pv = _sections(config)
    for spec in _strings(hvm.get("serial")) + _strings(hvm.get("serial_list")):
        yield from _serial(spec, policy)
    for channel in _dicts(config.get("channels")):
        socket = channel.get("connection.socket")
        path = socket.get("path") if isinstance(socket, dict) else None
        if isinstance(path, str) and not qs.path_within(path, policy.allowed_chardev_dirs):
            yield PolicyError(f"channel {channel.get('name') or ''!r} listens on unix socket {path!r} in "
                              f"dom0, outside allowed_chardev_dirs = {_listing(policy.allowed_chardev_dirs)}",
                              Where("channel", "type", "unix", "channel", token=path))


def _serial(spec: str, policy: SecurityPolicy) -> Iterator[PolicyError]:
    dev = qs.parse_chardev(spec)
    xml_type = _XML_CHARDEV_TYPE.get(dev.scheme)
    where = Where("serial", "type", xml_type, "serial", token=dev.path or spec,
                  also=(Where("console", "type", xml_type, "serial", token=dev.path or spec),))
    cls, dirs = qs.ChardevClass, _listing(policy.allowed_chardev_dirs)
    if dev.cls is cls.MONITOR:
        if not policy.allow_device_model_args:
            yield PolicyError(f"serial {spec!r} puts qemu's monitor on the port "
                              "(allow_device_model_args = false)", where)
        yield from _serial(spec[len("mon:"):], policy)
    elif dev.cls is cls.PATH and not qs.path_within(dev.path or "", policy.allowed_chardev_dirs):
        yield PolicyError(f"serial {spec!r} opens {dev.path!r} in dom0, outside allowed_chardev_dirs = "
                          f"{dirs}", where)
    elif dev.cls is cls.SOCKET and not qs.path_within(dev.path or "", policy.allowed_chardev_dirs):
        yield PolicyError(f"serial {spec!r} {'listens on' if dev.listens else 'connects to'} unix socket "
                          f"{dev.path!r} in dom0, outside allowed_chardev_dirs = {dirs}", where)
    elif dev.cls is cls.DEVICE and posixpath.normpath(dev.path or "") not in {
            posixpath.normpath(d) for d in policy.allowed_chardev_devices}:
        yield PolicyError(f"serial {spec!r} opens a host device, not in allowed_chardev_devices = "
                          f"{_listing(policy.allowed_chardev_devices)}", where)
    elif dev.cls is cls.NETWORK and not policy.allow_dom0_sockets:
        yield PolicyError(f"serial {spec!r} {'listens on' if dev.listens else 'connects out of'} dom0's "
                          "network (allow_dom0_sockets = false)", where)
    elif dev.cls is cls.UNKNOWN:
        yield PolicyError(f"serial {spec!r} is not a backend the policy knows ("
                          f"{', '.join(qs.HARMLESS_CHARDEVS)} need no setting)", where)


def _shares(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """Backends that give the guest dom0 resources: 9p directories, vTPMs, PV Calls sockets."""
    for share in _dicts(config.get("p9s")):
        path = share.get("path")
        if not isinstance(path, str) or not qs.path_within(path, policy.allowed_9p_dirs):
            yield PolicyError(f"9p share {share.get('tag') or ''!r} of {path!r} is outside allowed_9p_dirs = "
                              f"{_listing(policy.allowed_9p_dirs)}",
                              Where("filesystem", None, None, "p9", token=str(path)))
    if _dicts(config.get("vtpms")) and not policy.allow_vtpm:
        yield PolicyError("vTPM devices are not allowed (allow_vtpm = false)",
                          Where("tpm", None, None, "vtpm"))
    if _dicts(config.get("pvcallsifs")) and not policy.allow_dom0_sockets:
        yield PolicyError("PV Calls (sockets opened in the backend's network on the guest's behalf) are not "
                          "allowed (allow_dom0_sockets = false)", Where("pvcalls", None, None, "pvcalls"))


def _displays(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """VNC and SPICE servers qemu opens in dom0: beyond loopback, only with a password."""
    _b_info, hvm, _pv = _sections(config)
    # An HVM guest's VNC is set by vnc/vnclisten or by a vfb entry (xl takes either), so each looks
    # for both spellings.
    vncs = [(hvm.get("vnc"), _keys(Where("graphics", "type", "vnc", "vnclisten"), "vnc", "vfb"))]
    vncs += [(vfb.get("vnc"), _keys(Where("graphics", "type", "vnc", "vfb"), "vnclisten", "vnc"))
             for vfb in _dicts(config.get("vfbs"))]
    for vnc, where in vncs:
        if not isinstance(vnc, dict) or _off(vnc.get("enable")):
            continue
        listen = vnc.get("listen") if isinstance(vnc.get("listen"), str) else ""
        listen = listen or "127.0.0.1"  # libxl's default
        where = replace(where, token=listen, also=tuple(replace(w, token=listen) for w in where.also))
        if "," in listen and not policy.allow_device_model_args:
            yield PolicyError(f"VNC listen {listen!r} would add options to qemu's command line "
                              "(allow_device_model_args = false)", where)
        elif listen.startswith("unix:"):
            path = listen[len("unix:"):].split(",")[0]
            if not qs.path_within(path, policy.allowed_chardev_dirs):
                yield PolicyError(f"VNC listens on unix socket {path!r} in dom0, outside "
                                  f"allowed_chardev_dirs = {_listing(policy.allowed_chardev_dirs)}", where)
        elif not vnc.get("passwd") and not qs.is_loopback(qs.vnc_listen_host(listen)) \
                and not policy.allow_open_display:
            yield PolicyError(f"VNC listens on {qs.vnc_listen_host(listen)!r}, beyond loopback, without a "
                              "password (allow_open_display = false)", where)
    spice = hvm.get("spice")
    if isinstance(spice, dict) and _on(spice.get("enable")) and not policy.allow_open_display:
        host = spice.get("host") if isinstance(spice.get("host"), str) and spice.get("host") else None
        open_ = not spice.get("passwd") or _on(spice.get("disable_ticketing"))
        if open_ and not (host and qs.is_loopback(host)):
            yield PolicyError(f"SPICE listens on {repr(host) if host else 'every address'}, beyond loopback, "
                              "without a password (allow_open_display = false)",
                              _keys(Where("graphics", "type", "spice", "spicehost", token=host), "spice"))


#: Firmware and blobs libxl reads from dom0 into the guest: (union or None for b_info, field, what it
#: is, xl.cfg keys, element, whether libxl resolves a relative name in its firmware directory).
_FIRMWARE = (
    ("type.hvm", "system_firmware", "system firmware", ("bios_path_override",), "loader", True),
    ("type.hvm", "firmware", "hvmloader override", ("firmware_override", "firmware"), "loader", True),
    ("type.hvm", "acpi_firmware", "ACPI table", ("acpi_firmware",), "table", False),
    ("type.hvm", "smbios_firmware", "SMBIOS table", ("smbios_firmware",), "sysinfo", False),
    ("type.pvh", "pvshim_path", "PVH shim", ("pvshim_path",), "pvshim", True),
    (None, "stubdomain_kernel", "stub domain kernel", ("stubdomain_kernel",), "stubdomain", False),
    (None, "stubdomain_ramdisk", "stub domain ramdisk", ("stubdomain_ramdisk",), "stubdomain", False),
)


def _firmware(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    b_info = _sections(config)[0]
    for union, field_, what, (key, *others), tag, relative_ok in _FIRMWARE:
        section = b_info.get(union) if union else b_info
        path = section.get(field_) if isinstance(section, dict) else None
        if not isinstance(path, str) or not path:
            continue
        resolved = posixpath.join(LIBXL_FIRMWARE_DIR, path) if relative_ok else path
        if not qs.path_within(resolved, policy.allowed_firmware_dirs):
            yield PolicyError(f"{what} {path!r} is outside allowed_firmware_dirs = "
                              f"{_listing(policy.allowed_firmware_dirs)}",
                              _keys(Where(tag, None, path, key), *others))


def _rbd(config: JSON, policy: SecurityPolicy) -> Iterator[PolicyError]:
    """rbd disk targets: librbd options beyond the allowed ones read or write dom0 files (``conf``,
    ``keyring``, ``log_file``, ``admin_socket``...); one given twice overrides the first."""
    for disk in _dicts(config.get("disks")):
        target = disk.get("pdev_path")
        if not isinstance(target, str) or not target.startswith("rbd:"):
            continue
        vdev = disk.get("vdev") if isinstance(disk.get("vdev"), str) else ""
        where = Where("disk", "type", "network", "disk", token=vdev or None)
        keys = [qs.ceph_option(key) for key, _value in qs.parse_rbd(target[len("rbd:"):]).options]
        allowed = {qs.ceph_option(option) for option in policy.allowed_rbd_options}
        for key in dict.fromkeys(keys):
            if key not in allowed:
                yield PolicyError(f"rbd option {key!r} of disk {vdev!r} is not allowed "
                                  f"(allowed_rbd_options = {_listing(policy.allowed_rbd_options)})", where)
            elif keys.count(key) > 1:
                yield PolicyError(f"rbd option {key!r} is given twice in disk {vdev!r} (a name with ':' "
                                  "would override the hosts)", where)


#: In the order their errors are reported.
CHECKS: tuple[Check, ...] = (_programs, _hardware, _scripts, _chardevs, _shares, _displays, _firmware, _rbd)


def check_policy(config: JSON, policy: SecurityPolicy) -> list[PolicyError]:
    """Every setting of the libxl ``config`` (``libxl_domain_config`` JSON) that ``policy`` refuses,
    each once (an HVM guest's VNC server is both ``type.hvm.vnc`` and a ``vfbs`` entry)."""
    errors: dict[str, PolicyError] = {}
    for check in CHECKS:
        for err in check(config, policy):
            errors.setdefault(err.message, err)
    return list(errors.values())


# ---- pointing at the line --------------------------------------------------------------------

def _label(where: Where, el: etree._Element | None = None) -> str:
    prefix = "xen:" if where.tag == "arg" else ""
    tag = etree.QName(el).localname if el is not None else where.tag
    value = el.get(where.attr) if el is not None and where.attr else where.value
    if where.attr and value is not None:
        return f"<{prefix}{tag} {where.attr}='{value}'>"
    return f"<{prefix}{tag}>"


def _holds(el: etree._Element, token: str) -> bool:
    """Whether ``token`` is an attribute value or the text of ``el`` or an element inside it."""
    return any(token in node.attrib.values() or (node.text or "").strip() == token
               for node in el.iter() if isinstance(node.tag, str))


def _xml_element(root: etree._Element, where: Where) -> etree._Element | None:
    tag = f"{{{XEN_NS}}}arg" if where.tag == "arg" else where.tag
    found = [el for el in root.iter(tag) if where.value is None
             or (el.get(where.attr) if where.attr else (el.text or "").strip()) == where.value]
    if where.token is not None:
        return next((el for el in found if _holds(el, where.token)), found[0] if found else None)
    return found[0] if found else None


def _xml_line(data: bytes, where: Where) -> tuple[int | None, str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None, _label(where)
    for candidate in (where, *where.also):
        el = _xml_element(root, candidate)
        if el is not None:
            return el.sourceline, _label(candidate, el)
    return None, _label(where)


def _xl_key_line(lines: list[str], where: Where) -> int | None:
    """The line of ``key =``, or of the first line from there on that holds the value (or token)."""
    key = re.compile(rf"\s*{re.escape(where.key)}\s*=")
    start = next((n for n, line in enumerate(lines) if key.match(line)), None)
    if start is None:
        return None
    wanted = where.token or where.value
    if wanted:
        for n in range(start, len(lines)):
            if wanted in lines[n]:
                return n + 1
    return start + 1


def _xl_line(text: str, where: Where) -> tuple[int | None, str]:
    lines = text.splitlines()
    for candidate in (where, *where.also):
        line = _xl_key_line(lines, candidate)
        if line is not None:
            return line, candidate.key
    return None, where.key


def locate(err: PolicyError, path: Path, data: bytes) -> PolicyError:
    """``err`` with the file, and the line and element as ``path``'s format spells them."""
    err.file = str(path)
    if path.suffix.lower() == ".xml":
        err.line, err.element = _xml_line(data, err.where)
    else:
        err.line, err.element = _xl_line(data.decode("utf-8", "replace"), err.where)
    return err


def policy_errors(config: JSON, policy: SecurityPolicy, path: Path, data: bytes) -> list[PolicyError]:
    """``check_policy`` on ``config`` (the libxl JSON ``path`` becomes) with every error located in
    ``path``'s bytes ``data``: the key and value line of an xl.cfg, the element of a domain XML."""
    return [locate(err, path, data) for err in check_policy(config, policy)]


def first_error(errors: list[PolicyError]) -> ConfigError:
    """One error for a file's status line, saying how many more there are (``validate`` prints all)."""
    first = errors[0]
    if len(errors) == 1:
        return first
    extra = len(errors) - 1
    return ConfigError(f"{first.message} (and {extra} more policy violation{'s' if extra > 1 else ''})",
                       file=first.file, line=first.line, element=first.element)


__all__ = ["CHECKS", "PolicyError", "Where", "check_file_modes", "check_policy", "file_trust",
           "locate", "mode_problem", "policy_errors", "first_error", "script_path"]
