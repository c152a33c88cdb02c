"""A clock the tests step by hand, for ``SimHost(clock=..., sleep=...)``.

Sleeping on it advances it at once, so a host that waits (a shutdown's timeout, injected latency)
returns without wall time passing, and what it waited is recorded for the test to check.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

#: A plausible Unix time to start from (the sim stores wall-clock stamps).
EPOCH = 1_700_000_000.0


@dataclass
class FakeClock:
    now: float = EPOCH
    #: Every ``sleep`` the host made, in order.
    slept: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self.now += seconds

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
