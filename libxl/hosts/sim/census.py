"""What the create checks ask of every domain on the host: the names, uuids and memory in use.

Apart from the host so ``SimHost`` can carry one census between creates (``SimHost._census``)
instead of scanning every domain per create: that scan made a cold start of N guests cost O(N²) in
the simulator alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from libxl.hosts.sim.state import State, listed_name


@dataclasses.dataclass
class Census:
    """Names (as listed), uuids and memory of a host state's domains (``SimHost._census``)."""
    version: int | None
    names: set[str]
    uuids: set[str]
    used_kib: int

    @classmethod
    def of(cls, state: State, version: int | None) -> Census:
        domains = state["domains"].values()
        return cls(version, {listed_name(d) for d in domains},
                   {d["config"]["c_info"]["uuid"] for d in domains}, sum(d["memory_kib"] for d in domains))

    def add(self, dom: dict[str, Any]) -> None:
        """Count a domain the running transaction made; its commit makes the store's next version."""
        if self.version is not None:
            self.version += 1
        self.names.add(listed_name(dom))
        self.uuids.add(dom["config"]["c_info"]["uuid"])
        self.used_kib += dom["memory_kib"]
