"""Fault injection for the simulated host: latency and random transient failures.

Injected before an operation touches the host, like a lost RPC, so a failed call leaves the host
unchanged and a caller may retry it (the fault soak, tests/soak/, runs the agent against 20 % of
them). One seeded generator draws both, so a run with a seed fails the same calls again.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from libxl.hosts.sim.checks import fail

#: A fixed latency in seconds, or a (low, high) range drawn uniformly per call.
Latency = float | tuple[float, float]


class Faults:
    """The draws of one simulated host; the rates are the host's, read per call, so a test may turn
    them off and on again (``SimHost.fail_rate``, ``SimHost.latency``)."""

    def __init__(self, seed: int | None, sleep: Callable[[float], None]) -> None:
        self._rng = random.Random(seed)
        self._sleep = sleep

    def inject(self, op: str, fail_rate: float, latency: Latency) -> None:
        """Sleep the drawn latency, then fail ``op`` with probability ``fail_rate``."""
        low, high = latency if isinstance(latency, tuple) else (latency, latency)
        if high > 0:
            self._sleep(self._rng.uniform(low, high))
        if fail_rate > 0 and self._rng.random() < fail_rate:
            raise fail(op, "injected fault: xenstore transaction failed (ERROR_FAIL)", transient=True)
