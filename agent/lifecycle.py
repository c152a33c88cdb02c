"""The host's own lifecycle: what happens to the owned guests when the host goes down.

``host_shutdown`` is xendomains' stop and libvirt-guests' ON_SHUTDOWN for the guests this agent
owns, and only those: ``shutdown`` (clean shutdown, several at once, whatever is left after the
timeout destroyed, as xendomains does), ``save`` (each guest suspended into ``save_dir``; the image
and the config in it are recorded as a departure, so the agent's first reconcile restores it, and a
guest whose save fails is shut down instead) or ``leave``. It runs from
``xenreconcile-guests.service`` at host shutdown, after the agent itself stopped (so it holds the
state directory's lock), never on ``systemctl stop|restart xenreconcile``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from libxl.errors import XenReconcileError
from libxl.hosts import saveimage
from libxl.hosts.backend import Backend, DomainInfo
from reconcilers.ownership import in_migration, is_owned
from reconcilers.policy import Policy
from reconcilers.state import SAVED, Departure, Inventory, OwnedDomain

#: States of a guest that host-shutdown acts on (a dead one has nothing left to lose).
_LIVE = ("running", "blocked", "paused")


@dataclass(frozen=True)
class GuestOutcome:
    """What host-shutdown did to one guest; ``ok`` False when the guest may still be running."""
    name: str
    domid: int
    outcome: str  # shut-down | destroyed | saved | left | failed
    detail: str = ""
    departure: Departure | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def line(self) -> str:
        tail = f": {self.detail}" if self.detail else ""
        return f"{self.name} (domid {self.domid}): {self.outcome}{tail}"


def owned_live_guests(domains: list[DomainInfo], inventory: Inventory, policy: Policy) -> list[DomainInfo]:
    """The guests host-shutdown acts on: owned, running or paused, not mid-migration (pure)."""
    return [d for d in domains if d.name and d.state in _LIVE and not in_migration(d.name)
            and is_owned(d, inventory, policy)]


@dataclass
class HostShutdown:
    """One host-shutdown run over ``backend``; ``deadline`` is shared by every guest."""
    backend: Backend
    mode: str
    deadline: float
    save_dir: Path
    inventory: Inventory
    clock: Callable[[], float] = time.monotonic

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock())

    def stop(self, guest: DomainInfo, why: str = "") -> GuestOutcome:
        """Clean shutdown within what is left of the timeout, then destroy (xendomains' way)."""
        try:
            if self.backend.shutdown(guest.domid, self.remaining()):
                return GuestOutcome(guest.name, guest.domid, "shut-down", why)
            self.backend.destroy(guest.domid)
        except XenReconcileError as err:
            return GuestOutcome(guest.name, guest.domid, "failed", str(err))
        return GuestOutcome(guest.name, guest.domid, "destroyed",
                            "; ".join(filter(None, [why, "not shut down within host_shutdown_timeout"])))

    def save(self, guest: DomainInfo) -> GuestOutcome:
        image = self.save_dir / f"{guest.name}{saveimage.SUFFIX}"
        try:
            config = self.backend.domain_config(guest.domid)
            self.save_dir.mkdir(parents=True, exist_ok=True)
            if image.exists():
                saveimage.set_aside(image)  # an image never restored: kept, but not in the way
            self.backend.save(guest.domid, str(image))
        except (XenReconcileError, OSError) as err:
            return self.stop(guest, f"save failed ({err}); shut down instead")
        entry: OwnedDomain | None = self.inventory.domains.get(guest.uuid.lower())
        departure = Departure(guest.name, SAVED, guest.uuid, entry.content_hash if entry else None,
                              time.time(), image=str(image), config=config)
        return GuestOutcome(guest.name, guest.domid, "saved", str(image), departure)

    def one(self, guest: DomainInfo) -> GuestOutcome:
        if self.mode == "leave":
            return GuestOutcome(guest.name, guest.domid, "left", "on_host_shutdown = leave")
        return self.save(guest) if self.mode == "save" else self.stop(guest)


def host_shutdown(backend: Backend, inventory: Inventory, policy: Policy, *, mode: str, parallel: int,
                  timeout: float, save_dir: Path,
                  clock: Callable[[], float] = time.monotonic) -> list[GuestOutcome]:
    """Shut down, save or leave every owned live guest, ``parallel`` at a time (0: all at once);
    the departures of saved guests are added to ``inventory`` (the caller records them:
    ``StateDir.record_departures``)."""
    guests = owned_live_guests(backend.list_domains(), inventory, policy)
    run = HostShutdown(backend, mode, clock() + timeout, save_dir, inventory, clock)
    at_once = parallel or max(1, len(guests))
    with ThreadPoolExecutor(max_workers=at_once, thread_name_prefix="host-shutdown") as pool:
        outcomes = list(pool.map(run.one, guests))
    for outcome in outcomes:
        if outcome.departure is not None:
            inventory.departed[outcome.name] = outcome.departure
    return outcomes
