"""Display ports for VNC and SPICE autoport guests, like libvirt's port allocator.

libvirt's libxl driver never lets qemu hunt for a display (``findunused`` false): it reserves a
port from ``remote_display_port_min..max`` (5900..65535), writes it into the config handed to
``libxl_domain_create_new`` (``vnc.display`` = port - 5900, ``spice.port``) and releases it when the
guest goes. The agent does the same, and keeps each guest's ports in the state directory
(``StateDir.put_ports``, beside the inventory) by guest name, so a guest keeps its port across agent
restarts and across its own re-creation.

The desired config (``libxl.frontends.libvirt.build_config``) leaves an autoport display unset; planning sees
it through ``PortAllocator.resolve``, which writes the guest's recorded port in, so the diff
compares equal configs and a restarted agent sees no drift. A running autoport guest the table
does not know (created before this table existed) keeps the port its config shows, which is
recorded then.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace

from libxl.domain.model import Domain
from libxl.errors import XenReconcileError
from libxl.hosts.backend import LibxlConfig
from libxl.hosts.display import KINDS, VNC_BASE, DisplayPorts, ports_in, with_ports
from reconcilers.desired import DesiredDomain
from reconcilers.state import StateDir

#: libvirt's qemu.conf ``remote_display_port_min`` / ``remote_display_port_max``.
DEFAULT_RANGE = (5900, 65535)


def autoport_kinds(domain: Domain | None) -> tuple[str, ...]:
    """The display kinds of ``domain`` whose port is the agent's to choose: a VNC display with
    ``autoport`` or no port of 5900 or above (what ``libxl.frontends.libvirt`` writes no display for), a
    SPICE display with no port. None for an xl.cfg guest (no domain model): it means what
    ``xl create`` makes of it, where qemu hunts a free VNC display itself (``vncunused``) and SPICE
    always names its port, so the agent chooses none."""
    kinds: list[str] = []
    if domain is None:
        return ()
    for g in domain.devices.graphics:
        if g.type == "vnc" and (g.autoport or g.port is None or g.port < VNC_BASE) and "vnc" not in kinds:
            kinds.append("vnc")
        elif g.type == "spice" and not (g.port and g.port > 0) and "spice" not in kinds:
            kinds.append("spice")
    return tuple(kinds)


def fixed_ports(domains: Iterable[DesiredDomain], but: str) -> frozenset[int]:
    """The ports desired guests other than ``but`` fix in their files (not autoport): no autoport
    display may take one, even before that guest runs and listens on it."""
    out = set()
    for want in domains:
        if want.name == but or (want.domain is not None and not want.domain.devices.graphics):
            continue
        auto = autoport_kinds(want.domain)
        fixed = ports_in(want.config)
        out |= {fixed.get(kind) for kind in KINDS if kind not in auto and fixed.get(kind) is not None}
    return frozenset(out)


def port_free(port: int) -> bool:
    """True when nothing on this machine listens on ``port`` (libvirt's allocator checks by
    binding too: a qemu of a guest this agent does not own may hold it)."""
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((address, port))
        except OSError as err:
            no_ipv6 = family == socket.AF_INET6 and err.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL)
            if no_ipv6:
                continue
            return False
    return True


class PortAllocator:
    """The agent's table of display ports by guest name, persisted in the state directory."""

    def __init__(self, state: StateDir, port_range: tuple[int, int] = DEFAULT_RANGE,
                 probe: Callable[[int], bool] = port_free) -> None:
        low, high = port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"display port range {low}..{high} is not within 1..65535")
        self.range = (low, high)
        self._state = state
        self._probe = probe
        self._lock = threading.Lock()
        #: name -> (desired domain, its ports, the resolved copy): a resync re-plans unchanged
        #: guests, and copying each graphical guest's config every time would be waste.
        self._resolved: dict[str, tuple[DesiredDomain, DisplayPorts, DesiredDomain]] = {}
        self._table: dict[str, DisplayPorts] = {
            name: DisplayPorts(**{k: v for k, v in ports.items() if k in KINDS})
            for name, ports in state.load_ports().items()}

    def get(self, name: str) -> DisplayPorts | None:
        with self._lock:
            return self._table.get(name)

    def snapshot(self) -> dict[str, DisplayPorts]:
        with self._lock:
            return dict(self._table)

    def resolve(self, want: DesiredDomain, actual: LibxlConfig | None, *,
                record: bool = True) -> DesiredDomain:
        """``want`` with the guest's recorded ports written in (for planning; no port is chosen
        here). A running guest with none recorded keeps the ports it has, which are recorded
        unless ``record`` is false (``plan`` only reads the state directory)."""
        kinds = autoport_kinds(want.domain)
        if not kinds:
            return want
        with self._lock:
            ports = self._table.get(want.name)
            if actual is not None:
                have = ports_in(actual)
                merged = DisplayPorts(**{k: (ports.get(k) if ports else None) or have.get(k) for k in KINDS
                                         if k in kinds})
                if merged != ports and any(merged.get(k) for k in KINDS):
                    ports = merged
                    if record:
                        self._table[want.name] = merged
                        self._save(want.name)
        if ports is None:
            return want
        cached = self._resolved.get(want.name)
        if cached is not None and cached[0] is want and cached[1] == ports:
            return cached[2]
        resolved = replace(want, config=with_ports(want.config, ports, kinds))
        self._resolved[want.name] = (want, ports, resolved)
        return resolved

    def assign(self, name: str, config: LibxlConfig, domain: Domain,
               others: Iterable[DesiredDomain] = ()) -> LibxlConfig:
        """The config to create ``name`` with: its autoport displays on the ports it held before
        when nothing else holds them now (another guest's record or file, or a listener on this
        machine: someone's qemu may have taken it meanwhile), else on the lowest free ones.
        ``others``: the desired guests, whose files' fixed ports are never handed out (read only
        for a guest with an autoport display: a create must not cost a scan of every file)."""
        kinds = autoport_kinds(domain)
        if not kinds:
            return config
        reserved = fixed_ports(others, but=name)
        with self._lock:
            mine = self._table.get(name) or DisplayPorts()
            taken = set(reserved) | {p for other, held in self._table.items() if other != name
                                     for p in (held.vnc, held.spice) if p is not None}
            chosen: dict[str, int] = {}
            for kind in kinds:
                kept = mine.get(kind)
                if kept is not None and kept not in taken | set(chosen.values()) and self._probe(kept):
                    chosen[kind] = kept
                else:
                    chosen[kind] = self._free(taken | set(chosen.values()), name)
            ports = DisplayPorts(**chosen)
            if ports != mine:
                self._table[name] = ports
                self._save(name)
        return with_ports(config, ports, kinds)

    def release(self, name: str) -> None:
        """The guest is gone for good (pruned, or its file removed): its ports are free again."""
        with self._lock:
            self._resolved.pop(name, None)
            if self._table.pop(name, None) is not None:
                self._state.delete_ports([name])

    def keep(self, names: set[str]) -> None:
        """Release the ports of every guest not in ``names`` (the full resync passes the desired
        and listed names: a guest destroyed behind the agent's back and no longer desired)."""
        with self._lock:
            gone = self._table.keys() - names
            for name in gone:
                del self._table[name]
                self._resolved.pop(name, None)
            self._state.delete_ports(sorted(gone))

    def _free(self, taken: set[int], name: str) -> int:
        low, high = self.range
        for port in range(low, high + 1):
            if port not in taken and self._probe(port):
                return port
        raise XenReconcileError(f"{name}: no free display port in {low}..{high} "
                                "(display_port_min/display_port_max)")

    def _save(self, name: str) -> None:
        """Record ``name``'s ports: one guest's rows (a create rewrites no table)."""
        ports = self._table[name]
        self._state.put_ports(name, {k: p for k in KINDS if (p := ports.get(k)) is not None})
