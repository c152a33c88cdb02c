"""A keyed work queue with controller-runtime's guarantees, and the worker pool that drains it.

Keys (domain names or desired-file paths) only say "this may be out of date": the worker re-reads
everything for the key, so duplicates carry no information and are collapsed. The guarantees:

- a key is queued at most once; adding a key that is being worked on marks it dirty and it is
  queued again when the worker finishes (never two workers on one key);
- failures come back through ``add_rate_limited``: per-key exponential backoff (``base`` doubling
  to ``cap``) combined with a global token bucket, whichever delays more — the bucket stops a
  broken host from turning every domain's retry into a storm of libxl calls. Plain ``add`` is not
  rate limited: a burst of real changes should be applied as fast as the host allows;
- a terminal failure (the desired file is invalid) is forgotten, not retried: only a new event for
  the key (the input changed) or the periodic resync brings it back.
"""

from __future__ import annotations

import enum
import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Protocol

Key = Hashable


class Outcome(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"  # transient failure: back off and try again
    TERMINAL = "terminal"  # retrying cannot help until the input changes


class QueueHooks(Protocol):
    """Where the queue reports to metrics; every method must be cheap and never raise."""

    def added(self, key: Key) -> None: ...
    def depth(self, depth: int) -> None: ...
    def retried(self, key: Key) -> None: ...
    def started(self, key: Key, queued_seconds: float) -> None: ...
    def finished(self, key: Key, work_seconds: float) -> None: ...


class NoHooks:
    def added(self, key: Key) -> None: ...
    def depth(self, depth: int) -> None: ...
    def retried(self, key: Key) -> None: ...
    def started(self, key: Key, queued_seconds: float) -> None: ...
    def finished(self, key: Key, work_seconds: float) -> None: ...


class TokenBucket:
    """Reservation-style token bucket: ``reserve`` returns how long the caller must wait."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class Backoff:
    """Per-key exponential backoff: ``base * 2**failures`` capped at ``cap``."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[Key, int] = {}
        self._lock = threading.Lock()

    def next_delay(self, key: Key) -> float:
        with self._lock:
            n = self._failures.get(key, 0)
            self._failures[key] = n + 1
        # 2**n overflows float for large n; cap the exponent first.
        return min(self.cap, self.base * 2 ** min(n, 64))

    def failures(self, key: Key) -> int:
        with self._lock:
            return self._failures.get(key, 0)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._failures.pop(key, None)


@dataclass(frozen=True)
class QueueSettings:
    backoff_base: float = 0.005
    backoff_cap: float = 60.0
    rate_limit: float = 10.0
    rate_burst: int = 100


class WorkQueue:
    def __init__(self, settings: QueueSettings = QueueSettings(), hooks: QueueHooks | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._hooks: QueueHooks = hooks or NoHooks()
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self._bucket = TokenBucket(settings.rate_limit, settings.rate_burst, clock)
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()
        self._dirty: dict[Key, float] = {}  # key -> time it was (first) queued
        self._processing: dict[Key, float] = {}  # key -> time work started
        self._waiting: list[tuple[float, int, Key]] = []  # heap of (ready_at, seq, key)
        self._seq = 0
        self._shutdown = False

    # -- producers ---------------------------------------------------------------------------

    def add(self, key: Key) -> None:
        with self._cond:
            self._add_locked(key)

    def _add_locked(self, key: Key) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty[key] = self._clock()
        self._hooks.added(key)
        if key not in self._processing:
            self._queue.append(key)
            self._hooks.depth(len(self._queue))
            self._cond.notify()

    def add_after(self, key: Key, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            self._seq += 1
            heapq.heappush(self._waiting, (self._clock() + delay, self._seq, key))
            self._cond.notify()

    def add_rate_limited(self, key: Key) -> float:
        """Re-queue a failed key after its backoff (or the bucket's delay); returns the delay."""
        delay = max(self._backoff.next_delay(key), self._bucket.reserve())
        self._hooks.retried(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: Key) -> None:
        """Reset the key's backoff after a success or a terminal failure."""
        self._backoff.forget(key)

    def failures(self, key: Key) -> int:
        return self._backoff.failures(key)

    # -- consumers ---------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Key | None:
        """Next key to work on, marked as processing; None on shutdown or timeout."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                self._promote_ready_locked()
                if self._shutdown:
                    return None
                if self._queue:
                    key = self._queue.popleft()
                    queued_at = self._dirty.pop(key)
                    now = self._clock()
                    self._processing[key] = now
                    self._hooks.depth(len(self._queue))
                    self._hooks.started(key, now - queued_at)
                    return key
                now = self._clock()
                if deadline is not None and now >= deadline:
                    return None
                waits = [deadline - now] if deadline is not None else []
                if self._waiting:
                    waits.append(self._waiting[0][0] - now)
                self._cond.wait(max(min(waits), 0.0) if waits else None)

    def _promote_ready_locked(self) -> None:
        now = self._clock()
        while self._waiting and self._waiting[0][0] <= now:
            _, _, key = heapq.heappop(self._waiting)
            self._add_locked(key)

    def done(self, key: Key) -> None:
        with self._cond:
            started = self._processing.pop(key, None)
            if started is not None:
                self._hooks.finished(key, self._clock() - started)
            if key in self._dirty and not self._shutdown:
                self._queue.append(key)
                self._hooks.depth(len(self._queue))
                self._cond.notify()

    # -- lifecycle and introspection ---------------------------------------------------------

    def shutdown(self) -> None:
        """Stop handing out keys; pending keys are dropped (the next start resyncs anyway)."""
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue)

    def pending_delayed(self) -> int:
        with self._cond:
            return len(self._waiting)

    def in_flight(self) -> int:
        with self._cond:
            return len(self._processing)

    def unfinished_work(self) -> tuple[float, float]:
        """(total seconds of work in progress, seconds of the longest-running worker)."""
        now = self._clock()
        with self._cond:
            ages = [now - started for started in self._processing.values()]
        return sum(ages), max(ages, default=0.0)


Handler = Callable[[Key], Outcome]


class WorkerPool:
    """``workers`` threads draining a queue through ``handler``; ``stop`` lets in-flight work end."""

    def __init__(self, queue: WorkQueue, handler: Handler, workers: int,
                 on_error: Callable[[Key, BaseException], None] | None = None) -> None:
        self.queue = queue
        self._handler = handler
        self._on_error = on_error
        self._threads = [threading.Thread(target=self._run, name=f"xr-worker-{i}", daemon=True)
                         for i in range(workers)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while (key := self.queue.get()) is not None:
            try:
                outcome = self._handler(key)
            except Exception as err:  # a bug in one reconcile must not kill the worker
                if self._on_error is not None:
                    self._on_error(key, err)
                outcome = Outcome.RETRY
            try:
                if outcome is Outcome.RETRY:
                    self.queue.add_rate_limited(key)
                else:
                    self.queue.forget(key)
            finally:
                self.queue.done(key)

    def stop(self, timeout: float | None = None) -> bool:
        """Shut the queue down and wait for in-flight handlers; True when all workers ended."""
        self.queue.shutdown()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            if thread.is_alive():
                thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)
