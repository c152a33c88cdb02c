"""Read the strings libxl hands qemu verbatim, the way qemu reads them, so the policy sees what they do.

libxl copies a guest's serial ports (``-serial SPEC``), its VNC listen address (``-vnc HOST:DISPLAY``)
and an rbd disk's target (``file=rbd:POOL/IMAGE:KEY=VALUE...``) into qemu's command line without
looking inside. qemu runs as root in dom0, so what decides whether a desired file may use one of them
is what qemu will open, create or listen on: these pure functions answer that, from qemu's legacy
character-device syntax (``qemu_chr_parse_compat``: ``file:PATH``, ``pipe:PATH``, ``unix:PATH,server``,
``tcp:HOST:PORT,server``, ``udp:...``, a ``/dev/...`` node, ``mon:...``) and librbd's option string.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import Enum


class ChardevClass(Enum):
    """What a character-device backend makes qemu do in dom0."""
    HARMLESS = "harmless"  # a pty, nothing, qemu's own virtual console
    PATH = "path"  # opens or creates a file or FIFO (file:, pipe:)
    SOCKET = "socket"  # creates, unlinks and listens on, or connects to, a unix socket (unix:)
    DEVICE = "device"  # opens a host device node (/dev/ttyS0, /dev/parport0)
    NETWORK = "network"  # connects or listens on dom0's network (tcp:, telnet:, udp:, websocket:)
    MONITOR = "monitor"  # multiplexes qemu's monitor onto the port (mon:): control of a root process
    UNKNOWN = "unknown"  # anything else (stdio, chardev:ID, braille, msmouse, ...)


#: Backends that touch nothing in dom0 beyond qemu itself: a pty (what ``xl console`` attaches to),
#: nothing at all, qemu's virtual console, and ``none`` (a port with no device).
HARMLESS_CHARDEVS = ("pty", "null", "vc", "none")
_NETWORK_SCHEMES = ("tcp", "telnet", "tn3270", "websocket", "udp")


@dataclass(frozen=True)
class Chardev:
    """A serial backend as qemu reads it: its class, and the dom0 path or address it names."""
    spec: str
    cls: ChardevClass
    scheme: str
    path: str | None = None  # PATH, SOCKET, DEVICE
    listens: bool = False  # NETWORK/SOCKET: a server (``,server``; udp always binds)


def parse_chardev(spec: str) -> Chardev:
    """``spec`` as qemu's ``-serial`` reads it (``qemu_chr_parse_compat``)."""
    if spec.startswith("mon:"):
        return Chardev(spec, ChardevClass.MONITOR, "mon")
    scheme, colon, rest = spec.partition(":")
    if spec in HARMLESS_CHARDEVS or (scheme == "vc" and colon):
        return Chardev(spec, ChardevClass.HARMLESS, scheme)
    if spec.startswith("/dev/"):
        return Chardev(spec, ChardevClass.DEVICE, "dev", path=spec)
    if not colon:
        return Chardev(spec, ChardevClass.UNKNOWN, scheme)
    if scheme in ("file", "pipe"):
        return Chardev(spec, ChardevClass.PATH, scheme, path=rest)
    options = rest.split(",")
    if scheme == "unix":
        return Chardev(spec, ChardevClass.SOCKET, scheme, path=options[0], listens=_is_server(options[1:]))
    if scheme in _NETWORK_SCHEMES:
        always_binds = scheme in ("udp", "websocket")  # udp binds a local port; websocket is server-only
        return Chardev(spec, ChardevClass.NETWORK, scheme, listens=always_binds or _is_server(options[1:]))
    return Chardev(spec, ChardevClass.UNKNOWN, scheme)


def _is_server(options: list[str]) -> bool:
    return any(o in ("server", "server=on", "server=yes") for o in options)


def path_within(path: str, dirs: tuple[str, ...]) -> bool:
    """Whether absolute ``path`` is one of ``dirs`` or inside one once ``..`` and ``.`` are resolved (as the
    kernel would, symlinks aside: a directory the operator lists is trusted with what it links to)."""
    if not path.startswith("/"):
        return False
    resolved = _normpath(path)
    return any(resolved == _normpath(d) or resolved.startswith(_normpath(d).rstrip("/") + "/") for d in dirs)


def _normpath(path: str) -> str:
    """``posixpath.normpath`` without its one POSIX quirk: a leading ``//`` is kept as is by it."""
    parts: list[str] = []
    for part in path.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def is_loopback(host: str) -> bool:
    """Whether a listen address only accepts connections from dom0 itself."""
    host = host.strip().strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, not provably loopback


def vnc_listen_host(listen: str) -> str:
    """The address part of libxl's VNC listen: libxl passes a value holding ``:`` as qemu's whole
    ``-vnc`` argument (``HOST:DISPLAY``) and appends ``:DISPLAY`` to any other."""
    if ":" in listen and not listen.startswith("["):
        return listen.rpartition(":")[0]
    return listen.partition("]")[0].lstrip("[") if listen.startswith("[") else listen


@dataclass(frozen=True)
class RbdSpec:
    """``rbd:POOL/IMAGE[@SNAP][:KEY=VALUE]...`` as librbd reads it (``\\:`` escapes a colon)."""
    image: str
    options: tuple[tuple[str, str], ...]


def parse_rbd(target: str) -> RbdSpec:
    r"""Split an rbd target at unescaped colons; ``rbd:`` must already be stripped by the caller."""
    fields = [f.replace("\\:", ":") for f in re.split(r"(?<!\\):", target)]
    options = []
    for field_ in fields[1:]:
        key, _, value = field_.partition("=")
        options.append((key, value))
    return RbdSpec(fields[0], tuple(options))


def ceph_option(name: str) -> str:
    """Ceph reads ``mon host``, ``mon-host`` and ``mon_host`` as one option: its canonical spelling."""
    return re.sub(r"[ -]", "_", name.strip())


__all__ = ["HARMLESS_CHARDEVS", "Chardev", "ChardevClass", "RbdSpec", "ceph_option", "is_loopback",
           "parse_chardev", "parse_rbd", "path_within", "vnc_listen_host"]
