"""Which guests are this agent's to touch: ownership, and the two ends of a migration.

A domain is ours when its xsdata marker is our owner id or the inventory lists its uuid; Domain-0
never is. The plan gates every destructive or hotplug action on it, the executor checks it again
before touching a domain, adoption refuses a guest that is already ours and ``host-shutdown`` acts on
owned guests only. It lives apart from the plan so that ``host-shutdown`` (agent.lifecycle), which
runs at host power-off on a possibly slow dom0, asks it without loading the planner and its
desired-file readers.
"""

from __future__ import annotations

from libxl.hosts.backend import INCOMING_SUFFIX, MIGRATED_AWAY_SUFFIX, DomainInfo
from reconcilers.policy import Policy
from reconcilers.state import Inventory


def is_owned(info: DomainInfo, inventory: Inventory, policy: Policy) -> bool:
    """Ours: our marker in xsdata, or our inventory lists the uuid. Domain-0 never."""
    if info.domid == 0:
        return False
    return info.owner == policy.owner or inventory.owns(info.uuid)


def in_migration(name: str) -> bool:
    """One end of an ``xl migrate`` in progress: never touched, never planned on its own."""
    return name.endswith((INCOMING_SUFFIX, MIGRATED_AWAY_SUFFIX))


__all__ = ["in_migration", "is_owned"]
