"""Autoballooning: make room for a new guest by shrinking dom0, as ``xl create`` does.

Hosts that boot dom0 with all memory (no ``dom0_mem=``) have almost nothing free: xl then lowers
dom0's balloon target by what the new guest needs and waits for the memory to appear before
creating it. Hosts that boot with a fixed ``dom0_mem=`` keep free memory for guests and must never
have dom0 shrunk. xl.conf's ``autoballoon`` chooses: ``auto`` (on unless Xen's command line has
``dom0_mem=``), ``on`` or ``off``. When ballooning is off or cannot free enough (dom0 would drop
below libxl's 128 MiB floor), the create fails before libxl is asked, with one sentence that states
the memory needed and free, instead of libxl's bare ERROR_NOMEM.

``AutoballoonBackend`` wraps any ``Backend`` (the real binding and the simulated host alike) and
only changes ``create`` and ``restore``; ``libxl.hosts.uri.open_backend(uri, host=...)`` applies it,
so the agent and the CLI get the same behaviour from one place.

Guests are built side by side (the agent's workers, a full resync's boot storm), so the memory
check must not let two builds count the same free pages: each build in flight holds its estimate
until libxl returns, and a build whose guest does not fit beside them waits for them to finish
before it looks again (and balloons, when it must, with nobody else building). xl takes one lock
around every create for the same reason; here, builds that fit together still go at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from libxl.errors import BackendError
from libxl.hosts.backend import Backend, LibxlConfig

#: libxl's floor for dom0's target (LIBXL_MIN_DOM0_MEM), KiB.
MIN_DOM0_KIB = 128 * 1024
#: What libxl adds on top of the guest's RAM and shadow pages (LIBXL_{PV,HVM}_EXTRA_MEMORY), KiB.
_EXTRA_KIB = {"pv": 1024, "pvh": 2048, "hvm": 2048}


def memory_needed(config: LibxlConfig) -> int:
    """libxl_domain_need_memory's estimate for ``config``: target, shadow and per-type overhead,
    rounded up to 2 MiB, in KiB."""
    b_info = config.get("b_info", {})
    kind = str(config.get("c_info", {}).get("type", "pv")).lower()
    need = int(b_info.get("target_memkb", b_info.get("max_memkb", 0))) + int(b_info.get("shadow_memkb", 0))
    need += _EXTRA_KIB.get(kind, 2048)
    return -(-need // 2048) * 2048


def has_dom0_mem(xen_cmdline: str) -> bool:
    """True when Xen's command line fixes dom0's memory (``dom0_mem=...``)."""
    return any(word.startswith("dom0_mem=") for word in xen_cmdline.split())


class AutoballoonBackend:
    """A ``Backend`` whose ``create`` first makes room for the guest (see the module docstring).

    ``wait`` bounds how long the balloon driver may take to hand the memory back (s); ``sleep`` and
    ``clock`` are injectable so tests never wait on a real clock.
    """

    def __init__(self, backend: Backend, mode: str = "auto", *, wait: float = 30.0, poll: float = 0.1,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"autoballoon must be auto, on or off, not {mode!r}")
        self.backend = backend
        self.mode = mode
        self._wait, self._poll, self._sleep, self._clock = wait, poll, sleep, clock
        self._building = threading.Condition()
        #: KiB promised to builds libxl has not returned from (``memory_needed`` of each).
        self._in_flight = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def enabled(self, xen_cmdline: str) -> bool:
        return self.mode == "on" or (self.mode == "auto" and not has_dom0_mem(xen_cmdline))

    def create(self, config: LibxlConfig, *, paused: bool = False) -> int:
        with self._room_for(config):
            return self.backend.create(config, paused=paused)

    def restore(self, path: str, config: LibxlConfig, *, paused: bool = False) -> int:
        with self._room_for(config):
            return self.backend.restore(path, config, paused=paused)

    @contextlib.contextmanager
    def _room_for(self, config: LibxlConfig) -> Iterator[None]:
        """Hold ``config``'s memory while its guest is built: at once when it fits beside the builds
        in flight, else after they are done (then ``make_room`` may balloon dom0)."""
        need = memory_needed(config)
        with self._building:
            while self._in_flight and self.backend.host_info().free_memory_kib < self._in_flight + need:
                self._building.wait()
            if not self._in_flight:
                self.make_room(config)
            self._in_flight += need
        try:
            yield
        finally:
            with self._building:
                self._in_flight -= need
                self._building.notify_all()

    def _refuse(self, name: str, message: str) -> BackendError:
        # Transient: memory frees up when other guests stop, so the agent retries with backoff.
        return BackendError("domain_create", message, domain=name, transient=True)

    def make_room(self, config: LibxlConfig) -> None:
        """Return when ``config``'s guest fits in free memory; balloon dom0 down if allowed."""
        name = str(config.get("c_info", {}).get("name", "?"))
        need = memory_needed(config)
        info = self.backend.host_info()
        free = info.free_memory_kib
        if free >= need:
            return
        cmdline = str(info.extra.get("xen_commandline") or "")
        if not self.enabled(cmdline):
            why = ("Xen's command line sets dom0_mem=" if self.mode == "auto" else "autoballoon is off")
            raise self._refuse(name, f"not enough free memory for {name}: needs {need} KiB, {free} KiB free, "
                                     f"and dom0 is not ballooned ({why})")
        dom0 = next(d for d in self.backend.list_domains() if d.domid == 0)
        target = dom0.memory_kib - (need - free)
        if target < MIN_DOM0_KIB:
            spare = max(0, dom0.memory_kib - MIN_DOM0_KIB)
            raise self._refuse(name, f"not enough free memory for {name}: needs {need} KiB, {free} KiB free, "
                                     f"and ballooning dom0 down to its {MIN_DOM0_KIB} KiB floor frees only "
                                     f"{spare} KiB more")
        self.backend.set_memory_target(0, target)
        deadline = self._clock() + self._wait
        while True:
            free = self.backend.host_info().free_memory_kib
            if free >= need:
                return
            if self._clock() >= deadline:
                raise self._refuse(name, f"dom0 was asked to shrink to {target} KiB for {name}, but "
                                         f"after {self._wait:g} s only {free} KiB of the {need} KiB needed "
                                         "are free")
            self._sleep(self._poll)


__all__ = ["MIN_DOM0_KIB", "memory_needed", "has_dom0_mem", "AutoballoonBackend"]
