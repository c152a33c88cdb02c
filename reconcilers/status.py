"""Per-domain reconcile status, the one place the agent's metrics and status output read from.

Like a Kubernetes condition, a status keeps the time of its last *transition* apart from the time
of the last reconcile, so "drifted since 03:12" survives a hundred no-op resyncs. An error is kept
as people may see it (``libxl.errors.safe``): /status, the unix socket and ``status`` over ssh all
serve this text, and libxl's messages can echo a disk target with its Ceph key or a control byte
from a file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libxl.errors import safe

IN_SYNC = "in-sync"
DRIFTED = "drifted"
RESTART_REQUIRED = "restart-required"
INVALID = "invalid"
CONFLICT = "conflict"
ERROR = "error"
PENDING = "pending"
PRUNED = "pruned"
#: Held away on purpose (host lifecycle, README "Host lifecycle"): saved into an image, migrated to
#: another host, stopped under its run strategy, crashed and kept (on_crash preserve).
SAVED = "saved"
MIGRATED_AWAY = "migrated-away"
STOPPED = "stopped"
CRASHED = "crashed"
STATES = (IN_SYNC, DRIFTED, RESTART_REQUIRED, INVALID, CONFLICT, ERROR, PENDING, PRUNED, SAVED,
          MIGRATED_AWAY, STOPPED, CRASHED)


@dataclass(frozen=True)
class Status:
    """Where one domain (by name, never by domid) stands after its last reconcile."""
    name: str
    state: str
    file: str | None = None
    last_error: str | None = None
    #: Epoch seconds when ``state`` last changed.
    last_transition: float = 0.0
    #: Epoch seconds of the last reconcile of this domain.
    last_time: float = 0.0
    #: The last action applied to the domain (e.g. ``set-memory``), kept across no-op reconciles.
    last_action: str | None = None
    #: The display ports the agent gave the guest (``reconcilers.ports``; None: no such display).
    vnc_port: int | None = None
    spice_port: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "state": self.state, "file": self.file, "last_error": self.last_error,
                "last_transition": self.last_transition, "last_time": self.last_time,
                "last_action": self.last_action, "vnc_port": self.vnc_port, "spice_port": self.spice_port}


class StatusBook:
    """Thread-safe map of domain name -> Status; agent workers write, metrics and status read."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._by_name: dict[str, Status] = {}

    def record(self, name: str, state: str, *, file: str | None = None, error: str | None = None,
               action: str | None = None, ports: Any = None) -> Status:
        """Store the outcome of one reconcile; ``action`` None keeps the previous last action.
        ``ports`` (a ``libxl.hosts.display.DisplayPorts``) are the guest's display ports; None keeps the
        previous ones (a failure reported outside the reconciler knows none)."""
        if state not in STATES:
            raise ValueError(f"unknown status {state!r}")
        error = None if error is None else safe(error)
        now = self._clock()
        with self._lock:
            old = self._by_name.get(name)
            vnc, spice = ((ports.vnc, ports.spice) if ports is not None
                          else (old.vnc_port, old.spice_port) if old is not None else (None, None))
            if old is None:
                new = Status(name, state, file, error, now, now, action, vnc, spice)
            else:  # built directly: a ``dataclasses.replace`` per guest and resync costs thrice as much
                new = Status(name, state, file if file is not None else old.file, error,
                             now if state != old.state else old.last_transition, now,
                             action if action is not None else old.last_action, vnc, spice)
            self._by_name[name] = new
            return new

    def get(self, name: str) -> Status | None:
        with self._lock:
            return self._by_name.get(name)

    def forget(self, name: str) -> None:
        """Drop a domain that is neither desired nor on the host any more."""
        with self._lock:
            self._by_name.pop(name, None)

    def snapshot(self) -> dict[str, Status]:
        with self._lock:
            return dict(self._by_name)

    def counts(self) -> dict[str, int]:
        """Number of domains per state, every state present (gauges want zeros too)."""
        counts = dict.fromkeys(STATES, 0)
        for status in self.snapshot().values():
            counts[status.state] += 1
        return counts
