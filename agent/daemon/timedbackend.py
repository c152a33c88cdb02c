"""Times every host call into the agent's metrics: a proxy around the Backend.

Apart from the metrics themselves because it is the one piece that sits in the host-call path: the
reconciler holds it as its backend and never knows it is measured.
"""

from __future__ import annotations

import time
from typing import Any

from agent.daemon.metrics import AgentMetrics


class TimedBackend:
    """A proxy that times every host call and counts its failures, per operation.

    Wrapping at the interface boundary measures libxl itself, whatever the reconciler does around it.
    """

    def __init__(self, backend: Any, metrics: AgentMetrics) -> None:
        self._backend = backend
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._backend, name)
        if name.startswith("_") or not callable(attr):
            return attr
        duration = self._metrics.libxl_duration.labels(name)
        errors = self._metrics.libxl_errors.labels(name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            except Exception:
                errors.inc()
                raise
            finally:
                duration.observe(time.perf_counter() - start)

        # Kept, so later calls skip this lookup (a resync makes one call per guest).
        setattr(self, name, timed)
        return timed
