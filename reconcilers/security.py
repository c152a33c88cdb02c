"""What a desired file may ask for: file ownership and modes, and a policy on dom0-reaching settings.

Whoever can write to the desired directory can run code in dom0 as root through the agent: a
bootloader or device model is a program libxl starts in dom0, device-model arguments reach qemu
(``-monitor``, ``-chardev file,path=/etc/...``), hotplug scripts run as root, and PCI/USB passthrough
hands host hardware to a guest. So, like sshd's StrictModes, a file and every directory and symlink
on its resolved path must be owned by the agent's user or root and writable by nobody else; and a
policy decides which of those settings a file may use at all.

The policy check is pure; the file-mode check judges each component's own descriptor as
``libxl.formats.readfile`` opens it (never a second ``stat`` by path that a swap could outrun).
Both return ``ConfigError``s that name the file (and line and element), so the loader marks the
file invalid (its guest keeps running on the last good version) and ``validate`` prints the same
lines in CI.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from libxl.backend import LibxlConfig
from libxl.errors import ConfigError
from libxl.formats.readfile import Role, Trust, open_regular
from libxl.model import XEN_NS, Domain

#: pygrub where upstream (/usr/lib/xen/bin), Debian's xen-utils-4.17 (/usr/lib/xen-4.17/bin) and
#: distributions that link it into the PATH (/usr/bin) install it.
DEFAULT_BOOTLOADERS = ("/usr/bin/pygrub", "/usr/lib/xen/bin/pygrub", "/usr/lib/xen-4.17/bin/pygrub")
#: qemu as upstream Xen, Debian (qemu-system-x86 for Xen) and libvirt's examples name it.
DEFAULT_DEVICE_MODELS = ("/usr/lib/xen/bin/qemu-system-i386", "/usr/lib/xen-4.17/bin/qemu-system-i386",
                         "/usr/bin/qemu-system-i386", "/usr/lib/xen/bin/qemu-dm",
                         "/usr/lib64/xen/bin/qemu-dm")
#: libxl's XEN_SCRIPT_DIR: where a bare hotplug script name (``vif-bridge``) is looked up.
XEN_SCRIPT_DIR = "/etc/xen/scripts"
DEFAULT_SCRIPT_DIRS = (XEN_SCRIPT_DIR,)
#: libxl's private bin directory, where it runs a bootloader given without a path.
_LIBXL_BINDIR = re.compile(r"/usr/lib(?:64)?/xen(?:-[0-9.]+)?/bin")
#: pygrub options that choose where it writes the kernel it extracts from the guest's disk, in dom0.
_BOOTLOADER_OUTPUT = re.compile(r"(?:^|\s)--output")


@dataclass(frozen=True)
class SecurityPolicy:
    """The agent's settings of the same names (``etc/xenreconcile.toml``); defaults are strict."""
    strict_modes: bool = True
    allowed_bootloaders: tuple[str, ...] = DEFAULT_BOOTLOADERS
    allow_device_model_args: bool = False
    allow_pci_passthrough: bool = False
    allow_usb_passthrough: bool = False
    hotplug_script_dirs: tuple[str, ...] = DEFAULT_SCRIPT_DIRS
    allowed_device_models: tuple[str, ...] = DEFAULT_DEVICE_MODELS


DEFAULT_SECURITY = SecurityPolicy()


@dataclass(frozen=True)
class Where:
    """How to find the offending setting in the file: an XML element, or an xl.cfg key."""
    tag: str  # local name; ``arg`` is looked up in the xen: namespace
    attr: str | None  # attribute to match ``value`` against (None: the element's text)
    value: str | None
    key: str  # the xl.cfg key


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
    chain (``libxl.formats.readfile``), judged on each component's own descriptor."""
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


def _script_allowed(script: str, dirs: tuple[str, ...]) -> bool:
    resolved = script_path(script)
    return any(resolved.startswith(posixpath.normpath(d).rstrip("/") + "/") for d in dirs)


def _listing(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def check_policy(domain: Domain, config: LibxlConfig, policy: SecurityPolicy) -> list[PolicyError]:
    """Every setting of ``domain`` (and its libxl ``config``) that ``policy`` does not allow."""
    out: list[PolicyError] = []
    pv = (config.get("b_info") or {}).get("type.pv") or {}
    bootloader = pv.get("bootloader") or domain.bootloader
    if bootloader and not _bootloader_allowed(bootloader, policy.allowed_bootloaders):
        out.append(PolicyError(f"bootloader {bootloader!r} is not allowed "
                               f"(allowed_bootloaders = {_listing(policy.allowed_bootloaders)})",
                               Where("bootloader", None, domain.bootloader, "bootloader")))
    if domain.bootloader_args and _BOOTLOADER_OUTPUT.search(domain.bootloader_args):
        out.append(PolicyError("bootloader arguments may not choose where the bootloader writes in dom0 "
                               "(--output*)", Where("bootloader_args", None, None, "bootargs")))
    if domain.commandline and not policy.allow_device_model_args:
        out.append(PolicyError("device model arguments are not allowed (allow_device_model_args = false)",
                               Where("arg", "value", domain.commandline[0], "device_model_args")))
    emulator = domain.devices.emulator
    if emulator and posixpath.normpath(emulator) not in {posixpath.normpath(e) for e in
                                                         policy.allowed_device_models}:
        out.append(PolicyError(f"device model {emulator!r} is not allowed "
                               f"(allowed_device_models = {_listing(policy.allowed_device_models)})",
                               Where("emulator", None, emulator, "device_model_override")))
    pci = [h for h in domain.devices.hostdevs if h.type == "pci"]
    pci_nics = [i for i in domain.devices.interfaces if i.type == "hostdev"]
    if pci and not policy.allow_pci_passthrough:
        out.append(PolicyError(f"PCI passthrough of {pci[0].address} is not allowed "
                               "(allow_pci_passthrough = false)", Where("hostdev", "type", "pci", "pci")))
    elif pci_nics and not policy.allow_pci_passthrough:
        out.append(PolicyError("PCI passthrough of a network card is not allowed (allow_pci_passthrough = "
                               "false)", Where("interface", "type", "hostdev", "pci")))
    if domain.devices.usb_hostdevs and not policy.allow_usb_passthrough:
        out.append(PolicyError("USB passthrough is not allowed (allow_usb_passthrough = false)",
                               Where("hostdev", "type", "usb", "usbdev")))
    scripts = [(d.script, "disk") for d in domain.devices.disks if d.script] + \
              [(i.script, "vif") for i in domain.devices.interfaces if i.script]
    for script, key in scripts:
        if not _script_allowed(script, policy.hotplug_script_dirs):
            out.append(PolicyError(f"hotplug script {script!r} (runs as {script_path(script)}) is outside "
                                   f"hotplug_script_dirs = {_listing(policy.hotplug_script_dirs)}",
                                   Where("script", "path", script, key)))
    return out


# ---- pointing at the line --------------------------------------------------------------------

def _xml_line(data: bytes, where: Where) -> tuple[int | None, str]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    prefix = "xen:" if where.tag == "arg" else ""
    label = f"<{prefix}{where.tag} {where.attr}='{where.value}'>" if where.attr else f"<{where.tag}>"
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError:
        return None, label
    tag = f"{{{XEN_NS}}}arg" if where.tag == "arg" else where.tag
    for el in root.iter(tag):
        found = el.get(where.attr) if where.attr else (el.text or "").strip()
        if where.value is None or found == where.value:
            return el.sourceline, label
    return None, label


def _xl_line(text: str, where: Where) -> int | None:
    """The line of ``key =``, or of the first line from there on that holds the value."""
    lines = text.splitlines()
    key = re.compile(rf"\s*{re.escape(where.key)}\s*=")
    start = next((n for n, line in enumerate(lines) if key.match(line)), None)
    if start is None:
        return None
    if where.value:
        for n in range(start, len(lines)):
            if where.value in lines[n]:
                return n + 1
    return start + 1


def locate(err: PolicyError, path: Path, data: bytes) -> PolicyError:
    """``err`` with the file, and the line and element as ``path``'s format spells them."""
    err.file = str(path)
    if path.suffix.lower() == ".xml":
        err.line, err.element = _xml_line(data, err.where)
    else:
        err.line, err.element = _xl_line(data.decode("utf-8", "replace"), err.where), err.where.key
    return err


def policy_errors(domain: Domain, config: LibxlConfig, policy: SecurityPolicy, path: Path,
                  data: bytes) -> list[PolicyError]:
    """``check_policy`` with every error located in ``path`` (whose bytes are ``data``)."""
    return [locate(err, path, data) for err in check_policy(domain, config, policy)]


def first_error(errors: list[PolicyError]) -> ConfigError:
    """One error for a file's status line, saying how many more there are (``validate`` prints all)."""
    first = errors[0]
    if len(errors) == 1:
        return first
    extra = len(errors) - 1
    return ConfigError(f"{first.message} (and {extra} more policy violation{'s' if extra > 1 else ''})",
                       file=first.file, line=first.line, element=first.element)


__all__ = ["DEFAULT_BOOTLOADERS", "DEFAULT_DEVICE_MODELS", "DEFAULT_SCRIPT_DIRS", "DEFAULT_SECURITY",
           "XEN_SCRIPT_DIR", "SecurityPolicy", "PolicyError", "Where", "check_file_modes", "check_policy",
           "file_trust",
           "locate", "mode_problem", "policy_errors", "first_error", "script_path"]
