"""The controller: watcher and backend events in, per-domain reconciles out, level-triggered.

An event is only ever a key ("domain X may be out of date"): the worker re-reads the desired set and
the host and reconciles X whatever happened. Three sources produce keys:

- the directory watcher: each debounced batch re-reads the desired set (cheap: the loader caches by
  stat) and queues every domain whose declaration changed;
- the backend's actual-state events (a guest died, shut down, crashed): queued at once;
- the periodic full resync (``resync_interval`` plus jitter), which plans and applies every domain
  in one pass, because watchers lose events and guests drift without telling anyone.

A full resync excludes the per-key workers (a reader/writer gate), so one domain is never touched by
two threads at once. The loop thread is also the liveness signal: it stamps a heartbeat and sends
systemd's ``WATCHDOG=1`` on every tick, so a hung loop is noticed by ``/healthz`` and restarted by
systemd.

The loop only schedules: the desired set it works from is kept by ``agent.daemon.desiredcache``,
what it says about each reconcile (metrics, log lines) by ``agent.daemon.results``, and the status
book is written by the reconciler alone (``reconcilers.apply``); the loop reads it.
"""

from __future__ import annotations

import contextlib
import gc
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from agent import log as agentlog
from agent.collector import collector_paused
from agent.config import AgentConfig
from agent.daemon.desiredcache import DesiredCache
from agent.daemon.metrics import AgentMetrics, DomainView
from agent.daemon.queue import Outcome, QueueSettings, WorkerPool, WorkQueue
from agent.daemon.results import TERMINAL, report
from agent.daemon.systemd import Notifier
from agent.daemon.timedbackend import TimedBackend
from agent.daemon.watch import Change, DesiredWatcher
from libxl.errors import XenReconcileError
from libxl.hosts.backend import Backend, DomainEvent, DomainInfo, IoStats
from reconcilers.apply import Reconciler
from reconcilers.desired import DesiredSet

#: Longest sleep of the loop thread between heartbeats.
_TICK = 1.0


class Gate:
    """Many per-key workers, or one full resync: a reader/writer lock that prefers the writer."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass
class LoopState:
    """What ``/healthz``, ``/readyz`` and ``/status`` read."""
    started: float
    heartbeat: float
    ready: bool = False
    last_full_sync: float | None = None
    last_full_sync_error: str | None = None


class Controller:
    """Wires watcher, queue, workers, backend events and the reconciler; ``run`` is the main loop."""

    def __init__(self, settings: AgentConfig, backend: Backend, *, metrics: AgentMetrics | None = None,
                 notifier: Notifier | None = None, config_loader: Callable[[], AgentConfig] | None = None,
                 clock: Callable[[], float] = time.monotonic, freeze_heap: bool = False) -> None:
        """``freeze_heap``: the agent process (not a test sharing its interpreter) sets it."""
        self.settings = settings
        self._freeze_heap = freeze_heap
        self.metrics = metrics or AgentMetrics()
        self.notifier = notifier or Notifier()
        self._config_loader = config_loader
        self._clock = clock
        self._raw_backend = backend
        self.backend = TimedBackend(backend, self.metrics)
        self.reconciler = Reconciler(self.backend, settings.policy(), settings.state_dir,
                                     parallel=settings.workers)
        #: Read here (metrics, /status, STATUS=); only the reconciler writes it (reconcilers.apply).
        self.status = self.reconciler.status
        self.queue = WorkQueue(QueueSettings(settings.backoff_base, settings.backoff_cap, settings.rate_limit,
                                             settings.rate_burst), hooks=self.metrics)
        self.pool = WorkerPool(self.queue, self._handle, settings.workers, on_error=self._worker_crashed)
        self.watcher = self._new_watcher(settings)
        self._gate = Gate()
        self.log = agentlog.get_logger(component="loop")
        self._desired = DesiredCache(lambda: self.settings, self.backend, self.log)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reload_requested = False
        self._resync_requested = False
        now = clock()
        self.state = LoopState(started=now, heartbeat=now)
        self.metrics.bind_queue(self.queue.unfinished_work)
        self.metrics.bind_domains(self._domain_view)
        self.metrics.bind_runtime(self._runtime_sample)
        self.metrics.bind_ready(lambda: self.ready()[0])

    def _new_watcher(self, settings: AgentConfig) -> DesiredWatcher:
        return DesiredWatcher(Path(settings.desired_dir), self._on_change, debounce=settings.debounce,
                              polling=settings.polling, poll_interval=settings.poll_interval,
                              hooks=self.metrics)

    # -- requests from signal handlers and other threads ---------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake.set()

    def request_resync(self) -> None:
        self._resync_requested = True
        self._wake.set()

    # -- desired state -------------------------------------------------------------------------

    def desired(self) -> DesiredSet | None:
        return self._desired.current()

    def refresh_desired(self) -> set[str]:
        """Re-read the desired directory; returns the names whose declaration changed."""
        return self._desired.refresh()

    def _on_change(self, change: Change) -> None:
        """Watcher batch: re-read, then queue every affected domain.

        A file that never parsed declares no domain name, so no key can carry it: when the set of
        invalid files changes, an early full resync reports (or clears) it instead of the next one.
        """
        def invalid(s: DesiredSet | None) -> dict[Path, str] | None:
            return None if s is None else {p: str(e) for p, e in s.invalid.items()}

        before = invalid(self.desired())
        names = self.refresh_desired()
        after = invalid(self.desired())
        if before is not None and before != after:
            self.request_resync()
        if change.rescan:
            self.log.info("rescanning desired directory", reasons=sorted(change.reasons),
                          file=self.settings.desired_dir)
        self.log.debug("desired files changed", files=sorted(map(str, change.paths)), domains=sorted(names))
        for name in sorted(names):
            self.queue.add(name)

    def _on_backend_event(self, event: DomainEvent) -> None:
        """A guest died, shut down or crashed: its name is a key like any other. How it left (a
        suspend: ``xl save``/``xl migrate``) is recorded first, because the guest's death follows at
        once and its reconcile must not re-create it."""
        if event.name:
            try:
                departure = self.reconciler.note_event(event, self.desired())
            except XenReconcileError as err:
                self.log.error("cannot record how the guest left", domain=event.name, error=str(err))
            else:
                if departure is not None:
                    self.log.info("guest left the host", domain=event.name, reason=departure.reason,
                                  action="host-event")
            self.queue.add(event.name)
            desired = self.desired()
            want = desired.domains.get(event.name) if desired else None
            agentlog.domain_logger(event.name, str(want.file) if want else None, "host-event").info(
                "host event", kind=event.kind, reason=event.reason, domid=event.domid)
        else:
            self.request_resync()

    # -- per-key reconcile (worker threads) ----------------------------------------------------

    def _handle(self, name: Any) -> Outcome:
        desired = self.desired()
        if desired is None:
            return Outcome.RETRY
        before = self.status.get(name)
        with self._gate.shared():
            desired = self.desired() or desired
            start = time.perf_counter()
            rid = agentlog.new_reconcile_id()
            try:
                result = self.reconciler.reconcile(name, desired)
            except XenReconcileError as err:
                result = self.reconciler.failed(name, str(err))
            seconds = time.perf_counter() - start
        report(self.metrics, [result], desired, rid, seconds)
        after = self.status.get(name)
        if self.state.ready and (before and before.state) != (after and after.state):
            self.notifier.status(self.status_line())  # STATUS= follows every guest that changes state
        if result.error is not None:
            return Outcome.RETRY
        if result.status in TERMINAL:
            return Outcome.TERMINAL
        return Outcome.SUCCESS

    def _worker_crashed(self, key: Any, err: BaseException) -> None:
        self.metrics.observe_reconcile("error", 0.0)
        self.log.error("reconcile raised", domain=key, action="reconcile", error=repr(err), exc_info=err)

    # -- full resync (loop thread) -------------------------------------------------------------

    def full_resync(self) -> bool:
        """Re-read everything and reconcile every domain; True when the resync *ran* (per-domain
        failures included: they are reported in STATUS=, /status and the metrics and retried per
        key, and never hold readiness); False when it could not run at all (no desired set, host
        unreachable)."""
        with self._collector_paused():
            return self._full_resync()

    def _full_resync(self) -> bool:
        self.refresh_desired()
        desired = self.desired()
        if desired is None:
            self._full_sync_failed(self._desired.error or "desired set unavailable")
            return False
        rid = agentlog.new_reconcile_id()
        start = time.perf_counter()
        try:
            with self._gate.exclusive():
                results = self.reconciler.reconcile_all(desired)
        except XenReconcileError as err:
            self._full_sync_failed(str(err))
            return False
        per_domain = (time.perf_counter() - start) / max(1, len(results))
        failed = [r for r in results if r.error]
        report(self.metrics, results, desired, rid, per_domain)
        for result in failed:
            self.queue.add_rate_limited(result.name)
        if failed:
            self._full_sync_failed(f"{len(failed)} domain(s) failed: {', '.join(r.name for r in failed)}")
            return True
        if self.state.last_full_sync is None and self._freeze_heap:
            # The start-up heap (modules, parsed desired set, caches) lives as long as the agent:
            # moved out of the collector's sight, a full collection no longer re-walks it (with
            # 1,000 guests that walk was a 20 ms stall every few resyncs). Those objects are freed
            # by reference counting when dropped; only cycles among them would be kept.
            gc.freeze()
        self.state.last_full_sync = time.time()
        self.state.last_full_sync_error = None
        self.metrics.last_full_sync.set(self.state.last_full_sync)
        self.metrics.full_syncs.labels("success").inc()
        self.log.info("full resync done", domains=len(results), invalid=len(desired.invalid),
                      seconds=round(time.perf_counter() - start, 3), reconcile_id=rid)
        return True

    def _guarded_resync(self) -> bool:
        """``full_resync`` for the agent's loop: an exception nobody foresaw (a bug met by one file
        or one host reply) fails this resync, which is retried, and never ends the agent."""
        try:
            return self.full_resync()
        except Exception as err:  # noqa: BLE001
            self._full_sync_failed(f"unexpected {type(err).__name__}: {err}")
            return False

    def _collector_paused(self) -> contextlib.AbstractContextManager[None]:
        """In the agent process (not a test sharing its interpreter), no cyclic collection while a
        full resync runs (``agent.collector``)."""
        return collector_paused() if self._freeze_heap else contextlib.nullcontext()

    def _full_sync_failed(self, why: str) -> None:
        self.state.last_full_sync_error = why
        self.metrics.full_syncs.labels("error").inc()
        self.log.warning("full resync incomplete", error=why)

    def status_line(self) -> str:
        counts = self.status.counts()
        parts = [f"{n} {state}" for state, n in counts.items() if n]
        invalid = len(self.desired().invalid) if self.desired() else 0
        return ", ".join(parts + ([f"{invalid} invalid file(s)"] if invalid else [])) or "no domains"

    # -- the loop ------------------------------------------------------------------------------

    def _next_resync(self) -> float:
        interval = self.settings.resync_interval
        return self._clock() + interval * (1 + random.uniform(0, self.settings.resync_jitter))

    def _beat(self) -> None:
        self.state.heartbeat = self._clock()
        self.notifier.watchdog()

    def start(self) -> None:
        """Start watching, working and listening for host events (the loop itself is ``run``)."""
        self.watcher.start()
        self.pool.start()
        try:
            self.backend.watch_events(self._on_backend_event)
        except XenReconcileError as err:
            self.log.warning("host events unavailable; relying on resync", error=str(err))

    def run(self) -> int:
        """Serve until ``request_stop``; returns the exit status (0: clean stop)."""
        self.start()
        next_resync = self._clock()
        retry_delay = self.settings.backoff_base
        while not self._stop.is_set():
            self._beat()
            if self._reload_requested:
                self._reload_requested = False
                self._reload()
                next_resync = self._clock()
            if not self.watcher.healthy():
                self.log.warning("directory watcher failed; rebuilding and rescanning")
                self.watcher.recover("watcher failed")
            if self._resync_requested or self._clock() >= next_resync:
                self._resync_requested = False
                ok = self._guarded_resync()
                if ok and not self.state.ready:
                    self.state.ready = True
                    self.notifier.ready(self.status_line())
                    self.log.info("ready", status=self.status_line())
                elif self.state.ready:
                    self.notifier.status(self.status_line())
                if ok or self.state.ready:
                    next_resync = self._next_resync()
                    retry_delay = self.settings.backoff_base
                else:  # not ready yet: retry the first full reconcile with backoff
                    retry_delay = min(max(retry_delay * 2, 0.5), self.settings.backoff_cap)
                    next_resync = self._clock() + retry_delay
            self._beat()
            wait = min(_TICK, self.notifier.watchdog_interval or _TICK, max(0.0, next_resync - self._clock()))
            self._wake.wait(wait)
            self._wake.clear()
        return self.shutdown()

    def _reload(self) -> None:
        """SIGHUP: re-read the config file, apply what can change live, rescan everything.

        Under systemd the reload is RELOADING=1 then READY=1, but only once the agent is ready: a
        READY=1 sent during the start (a reload queued before the first full reconcile ran) would
        tell systemd the start had finished; that READY=1 follows the first full reconcile.
        """
        if self.state.ready:
            self.notifier.reloading()
        self.log.info("reloading configuration")
        if self._config_loader is not None:
            try:
                new = self._config_loader()
            except Exception as err:  # any config error: keep running on the old settings
                self.log.error("reload failed; keeping the previous configuration", error=str(err))
            else:
                self._apply_settings(new)
        self.watcher.request_rescan("reload")
        if self.state.ready:
            self.notifier.ready(self.status_line())

    def _apply_settings(self, new: AgentConfig) -> None:
        old = self.settings
        fixed = [k for k in ("uri", "state_dir", "metrics_listen", "workers")
                 if getattr(new, k) != getattr(old, k)]
        if fixed:
            self.log.warning("settings changed that need a restart; keeping the old values", keys=fixed)
            new = replace(new, **{k: getattr(old, k) for k in fixed})
        self.settings = new
        self.reconciler.policy = new.policy()
        if (new.desired_dir, new.debounce, new.polling, new.poll_interval) != \
                (old.desired_dir, old.debounce, old.polling, old.poll_interval):
            self.watcher.stop()
            self.watcher = self._new_watcher(new)
            self.watcher.start()
        agentlog.configure(new.log_format, new.log_level)

    def shutdown(self) -> int:
        """SIGTERM: stop taking work, let in-flight actions finish, leave every guest as it is."""
        self.notifier.stopping()
        self.log.info("stopping; letting in-flight reconciles finish", in_flight=self.queue.in_flight())
        self.watcher.stop()
        finished = self.pool.stop(timeout=self.settings.shutdown_timeout + 30)
        with contextlib.suppress(XenReconcileError):
            self._raw_backend.close()
        if not finished:
            self.log.error("workers still busy at exit")
        self.log.info("stopped")
        return 0

    # -- what the HTTP endpoints read ------------------------------------------------------------

    def healthy(self) -> tuple[bool, str]:
        """Alive: the loop thread stamped its heartbeat recently (a full resync may hold it a while)."""
        stale_after = max(120.0, 4 * self.settings.shutdown_timeout)
        age = self._clock() - self.state.heartbeat
        if age > stale_after:
            return False, f"loop stuck: no heartbeat for {age:.0f} s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Ready once the first full reconcile has run, whatever became of each guest."""
        if self.state.ready:
            return True, "ready"
        return False, f"first full reconcile not done: {self.state.last_full_sync_error or 'in progress'}"

    # -- the operator's hand-over verbs (over the agent socket) ----------------------------------

    def adopt(self, *names: str) -> dict[str, Any]:
        """``xenreconcile adopt NAME...`` while the agent runs: take the named running guests over
        and reconcile them at once (drift is then reported as for any guest)."""
        desired = self.desired()
        if desired is None:
            raise XenReconcileError("desired set not loaded yet")
        with self._gate.exclusive():
            done = self.reconciler.adopt(list(names), desired)
        for item in done:
            if item.adopted:
                self.queue.add(item.name)
        return {"adopt": {a.name: {"adopted": a.adopted, "detail": a.detail} for a in done}}

    def clear(self, *names: str) -> dict[str, Any]:
        """``xenreconcile clear NAME...``: forget how the guests left; the next reconcile (queued
        now) starts them as their files say."""
        cleared = self.reconciler.clear(list(names))
        for name in cleared:
            self.queue.add(name)
        return {"cleared": cleared, "unknown": [n for n in names if n not in cleared]}
    def _runtime_sample(self) -> list[tuple[DomainInfo, IoStats | None]]:
        """Every domain's ``xl list`` row and I/O counters, for the runtime metrics."""
        io = self.backend.io_stats()
        return [(info, io.get(info.domid)) for info in self.backend.list_domains()]

    def _domain_view(self) -> DomainView:
        desired = self.desired()
        return DomainView(self.status.snapshot(), set(desired.domains) if desired else set(),
                          {str(p) for p in desired.invalid} if desired else set())

    def status_document(self) -> dict[str, Any]:
        desired = self.desired()
        return {
            "ready": self.state.ready,
            "uri": self.settings.uri,
            "desired_dir": self.settings.desired_dir,
            "last_full_sync": self.state.last_full_sync,
            "last_full_sync_error": self.state.last_full_sync_error,
            "queue": {"depth": len(self.queue), "in_flight": self.queue.in_flight(),
                      "delayed": self.queue.pending_delayed()},
            "domains": {name: s.to_json() for name, s in sorted(self.status.snapshot().items())},
            "invalid_files": {str(p): str(e) for p, e in sorted(desired.invalid.items())} if desired else {},
        }
