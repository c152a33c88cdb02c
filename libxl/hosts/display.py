"""Where a libxl config keeps its display ports: HVM's ``b_info.type.hvm.vnc`` and ``spice``, and
each PV vfb's ``vnc``. Read by the agent's port allocator (``reconcilers.ports``), by ``list`` and
by the simulated host, which refuses two guests on one port as qemu would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from libxl.hosts.backend import LibxlConfig

#: VNC display N listens on 5900 + N.
VNC_BASE = 5900
KINDS = ("vnc", "spice")


@dataclass(frozen=True)
class DisplayPorts:
    """The ports one guest holds (None: it has no such autoport display)."""
    vnc: int | None = None
    spice: int | None = None

    def get(self, kind: str) -> int | None:
        return self.vnc if kind == "vnc" else self.spice

    def to_json(self) -> dict[str, int | None]:
        return {"vnc_port": self.vnc, "spice_port": self.spice}


def _vnc_sections(config: LibxlConfig) -> Iterator[dict[str, Any]]:
    """Every enabled ``vnc`` object of a config: HVM's ``b_info.type.hvm.vnc`` and each vfb's."""
    hvm = (config.get("b_info") or {}).get("type.hvm") or {}
    candidates = [hvm.get("vnc")] + [vfb.get("vnc") for vfb in config.get("vfbs") or []]
    for vnc in candidates:
        if isinstance(vnc, dict) and str(vnc.get("enable", "")).lower() == "true":
            yield vnc


def _spice_section(config: LibxlConfig) -> dict[str, Any] | None:
    spice = ((config.get("b_info") or {}).get("type.hvm") or {}).get("spice")
    if isinstance(spice, dict) and str(spice.get("enable", "")).lower() == "true":
        return spice
    return None


def ports_in(config: LibxlConfig) -> DisplayPorts:
    """The ports a libxl config fixes (a VNC display qemu may move, ``findunused``, fixes none)."""
    vnc = next((VNC_BASE + int(v.get("display") or 0) for v in _vnc_sections(config)
                if str(v.get("findunused", "")).lower() != "true"), None)
    spice = _spice_section(config)
    port = int(spice.get("port") or 0) if spice else 0
    return DisplayPorts(vnc=vnc, spice=port or None)


def with_ports(config: LibxlConfig, ports: DisplayPorts, kinds: tuple[str, ...]) -> LibxlConfig:
    """A copy of ``config`` with ``ports`` written in for ``kinds``, as libvirt's driver does."""
    out = copy.deepcopy(config)
    if "vnc" in kinds and ports.vnc is not None:
        for vnc in _vnc_sections(out):
            if ports.vnc == VNC_BASE:
                vnc.pop("display", None)  # libxl's JSON leaves display 0 out
            else:
                vnc["display"] = ports.vnc - VNC_BASE
            vnc["findunused"] = "False"
    spice = _spice_section(out)
    if "spice" in kinds and ports.spice is not None and spice is not None:
        spice["port"] = ports.spice
    return out


def vnc_hunts(config: LibxlConfig) -> int | None:
    """The display qemu starts hunting a free one from (``findunused``), or None when it does not."""
    return next((int(v.get("display") or 0) for v in _vnc_sections(config)
                 if str(v.get("findunused", "")).lower() == "true"), None)
