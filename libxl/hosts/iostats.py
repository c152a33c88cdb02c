"""Per-domain block and network I/O counters, read where xentop reads them.

Block: blkback's ``/sys/bus/xen-backend/devices/vbd-DOMID-DEVID/statistics/{rd,wr}_{req,sect}``
(requests, and 512-byte sectors). Network: netback's dom0 side of each vif,
``/sys/class/net/vifDOMID.N/statistics/{rx,tx}_{bytes,packets}``, turned round: what dom0's vif
receives the guest transmitted. Disks served by qemu (``qdisk``) and an HVM guest's emulated nic
(``vifDOMID.N-emu``, idle once the guest's PV drivers unplugged it) have no such counters; xentop
shows none for them either.

Pure over a sysfs root, so tests read a tree they made.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from libxl.hosts.backend import IoStats

SECTOR_BYTES = 512
_VBD = re.compile(r"vbd-(\d+)-(\d+)")
_VIF = re.compile(r"vif(\d+)\.(\d+)")


def _counter(path: Path) -> int:
    """One sysfs counter; 0 when the device went away between listing and reading it."""
    try:
        return int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return 0


def _add(totals: dict[int, IoStats], domid: int, **counts: int) -> None:
    old = totals.get(domid, IoStats())
    totals[domid] = IoStats(**{f.name: getattr(old, f.name) + counts.get(f.name, 0) for f in fields(IoStats)})


def read_io(sysfs: Path = Path("/sys")) -> dict[int, IoStats]:
    """Totals per domid over every vbd and vif backend in dom0."""
    totals: dict[int, IoStats] = {}
    vbds = sysfs / "bus" / "xen-backend" / "devices"
    for entry in sorted(vbds.iterdir()) if vbds.is_dir() else ():
        match = _VBD.fullmatch(entry.name)
        if match is None:
            continue
        stats = entry / "statistics"
        _add(totals, int(match.group(1)),
             block_read_requests=_counter(stats / "rd_req"), block_write_requests=_counter(stats / "wr_req"),
             block_read_bytes=_counter(stats / "rd_sect") * SECTOR_BYTES,
             block_write_bytes=_counter(stats / "wr_sect") * SECTOR_BYTES)
    nets = sysfs / "class" / "net"
    for entry in sorted(nets.iterdir()) if nets.is_dir() else ():
        match = _VIF.fullmatch(entry.name)
        if match is None:
            continue
        stats = entry / "statistics"
        _add(totals, int(match.group(1)),  # dom0's receive is the guest's transmit
             net_receive_bytes=_counter(stats / "tx_bytes"), net_transmit_bytes=_counter(stats / "rx_bytes"),
             net_receive_packets=_counter(stats / "tx_packets"),
             net_transmit_packets=_counter(stats / "rx_packets"))
    return totals
