"""xl's cpu lists (``cpus=``, ``cpus_soft=``, xl.cfg(5) "CPU Allocation"): ``all``, ``N``, ``N-M``,
``^N`` (take away), comma-separated, applied left to right.

``nodes:N`` (every cpu of a host NUMA node) needs the host's topology, which a desired file is
read without, so it is refused with that reason. Bits at or past the host's cpu count are dropped,
as libxl's fixed-size bitmap drops them (``cpus=["4-47"]`` on a 16-cpu host pins to 4-15).
"""

from __future__ import annotations

import re

from libxl.domain.model import MAX_CPU_ID, cpu_beyond_xen

_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def parse_xl_cpus(text: str, max_cpus: int | None, all_count: int | None = None) -> list[int]:
    """The sorted cpus of one xl cpu list, cut to the host's ``max_cpus`` (None: not known, nothing
    is cut and ``all`` means ``all_count`` cpus); raises ``ValueError`` naming the bad item."""
    cpus: set[int] = set()
    for item in text.split(","):
        if not item:
            continue  # strtok skips empty fields
        negate = item.startswith("^")
        body = item[1:] if negate else item
        if body.startswith(("node:", "nodes:")):
            raise ValueError(f"{item!r}: NUMA node lists need the host's topology, which this agent does "
                             "not read; list the cpus instead")
        if body == "all":
            if negate:
                raise ValueError("'^all' cannot be combined")
            cpus |= set(range(max_cpus if max_cpus is not None else all_count or 1))
            continue
        m = _RANGE.fullmatch(body)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"invalid cpu range {item!r}")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        top = max_cpus - 1 if max_cpus is not None else MAX_CPU_ID
        beyond = cpu_beyond_xen(last) if max_cpus is None else None
        if beyond:  # before the range is expanded
            raise ValueError(beyond)
        span = set(range(first, min(last, top) + 1))  # libxl's bitmap drops the bits past the host's
        cpus = cpus - span if negate else cpus | span
    return sorted(c for c in cpus if max_cpus is None or c < max_cpus)


__all__ = ["parse_xl_cpus"]
