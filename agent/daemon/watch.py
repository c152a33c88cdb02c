"""Watch the desired-state directory and turn filesystem noise into "re-read these files" batches.

What the operator's tooling really does to the directory, and how each case is handled:

- editors and config managers save by writing a temporary file and renaming it over the target:
  a move's *destination* is the changed file, its source is usually litter (``.x.swp``, ``x~``,
  ``.#x``, vim's ``4913`` probe), which is ignored;
- Kubernetes ConfigMap volumes publish by swapping a ``..data`` symlink inside the directory:
  every name involved starts with ``..``, so such an event means "everything may have changed"
  and asks for a full rescan;
- git-sync (and ``mv desired.new desired``) swap a symlink or the directory itself one or more
  levels up: the parent of every symlinked path component is watched too, and the directory's real
  path and inode are re-resolved on each batch; when they move, the watches follow and everything
  is rescanned;
- inotify's queue overflow (which watchdog only logs), a watch limit (``ENOSPC``/``EMFILE``) or
  a dead emitter thread all end in a full rescan: events were lost, so no key list can be trusted.

Events are debounced on a quiet period (``debounce``, default 50 ms) bounded by a maximum wait, so
a ``git checkout`` touching a thousand files becomes one batch and each file is read once.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from libxl.domain.formats.load import is_desired_name

#: Events that can mean new content. Opens and read-only closes are left out: the agent reading a
#: file must not wake itself up.
_EVENTS = [FileCreatedEvent, FileDeletedEvent, FileModifiedEvent, FileMovedEvent, FileClosedEvent,
           DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
_EVENT_TYPES = frozenset(_EVENTS)
#: watchdog >= 4 filters in the observer (fewer wakeups); Debian 12's watchdog 2.2, which the Debian
#: package runs on, has no ``event_filter``, so the handler filters too (the same exact types).
_SCHEDULE_KW = ({"event_filter": _EVENTS}
                if "event_filter" in inspect.signature(BaseObserver.schedule).parameters else {})
#: The logger watchdog reports inotify's IN_Q_OVERFLOW on (it drops the event itself).
_INOTIFY_LOGGER = "watchdog.observers.inotify_c"


def classify(name: str) -> str:
    """``file`` (a name the desired set reads), ``swap`` (a ``..data``-style swap) or ``ignore``.

    The desired loader's own rule decides what a candidate is, so the watcher never wakes up for a
    file the loader would skip (dotfiles, editor litter, unknown suffixes).
    """
    if name.startswith(".."):
        return "swap"
    return "file" if is_desired_name(name) else "ignore"


@dataclass
class Change:
    """One debounced batch: files (under the configured directory) to re-read, or everything."""
    paths: set[Path] = field(default_factory=set)
    rescan: bool = False
    reasons: set[str] = field(default_factory=set)


class WatchHooks(Protocol):
    def event(self, kind: str) -> None: ...
    def overflow(self) -> None: ...
    def rescan(self, reason: str) -> None: ...


class NoWatchHooks:
    def event(self, kind: str) -> None: ...
    def overflow(self) -> None: ...
    def rescan(self, reason: str) -> None: ...


class Debouncer:
    """Collects paths and rescan requests; flushes after ``quiet`` s without news (or ``max_wait``)."""

    def __init__(self, flush: Callable[[Change], None], quiet: float, max_wait: float) -> None:
        self._flush = flush
        self._quiet = quiet
        self._max_wait = max_wait
        self._cond = threading.Condition()
        self._pending = Change()
        self._first: float | None = None
        self._last = 0.0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="xr-debounce", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def note(self, path: Path | None = None, *, rescan: str | None = None) -> None:
        with self._cond:
            if path is not None:
                self._pending.paths.add(path)
            if rescan is not None:
                self._pending.rescan = True
                self._pending.reasons.add(rescan)
            now = time.monotonic()
            if self._first is None:
                self._first = now
            self._last = now
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if self._first is not None:
                        now = time.monotonic()
                        due = min(self._last + self._quiet, self._first + self._max_wait)
                        if now >= due:
                            break
                        self._cond.wait(due - now)
                    else:
                        self._cond.wait()
                if self._stopped:
                    return
                batch, self._pending, self._first = self._pending, Change(), None
            self._flush(batch)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DesiredWatcher, role: str) -> None:
        self._watcher = watcher
        self._role = role

    def on_any_event(self, event: FileSystemEvent) -> None:
        if type(event) in _EVENT_TYPES:
            self._watcher._on_event(self._role, event)


class _OverflowLogHandler(logging.Handler):
    """watchdog logs IN_Q_OVERFLOW and discards it: the log record is our only signal."""

    def __init__(self, watcher: DesiredWatcher) -> None:
        super().__init__(logging.WARNING)
        self._watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self._watcher.overflowed()


def _identity(path: Path) -> tuple[str, int] | None:
    """Real path and inode of the directory; None while it does not resolve (not created yet)."""
    try:
        real = os.path.realpath(path)
        return real, os.stat(real).st_ino
    except OSError:
        return None


def parents_to_watch(directory: Path) -> set[str]:
    """The real parent of the directory and of every symlinked component on its path.

    A symlink swap happens in the directory holding the link; watching there is the only way to
    see it (a watch on the old target sees nothing).
    """
    absolute = Path(os.path.abspath(directory))
    candidates = [absolute]
    candidates += [p for p in absolute.parents if p.is_symlink()]
    parents = set()
    for path in candidates:
        parent = os.path.realpath(path.parent)
        if os.path.isdir(parent):
            parents.add(parent)
    return parents


class DesiredWatcher:
    """Watches ``directory`` (as configured, symlinks and all) and reports debounced ``Change``s."""

    def __init__(self, directory: Path, on_change: Callable[[Change], None], *, debounce: float = 0.05,
                 polling: bool = False, poll_interval: float = 2.0, hooks: WatchHooks | None = None,
                 max_wait: float | None = None) -> None:
        self.directory = Path(directory)
        self._on_change = on_change
        self._polling = polling
        self._poll_interval = poll_interval
        self._hooks: WatchHooks = hooks or NoWatchHooks()
        self._debouncer = Debouncer(self._flush, debounce, max_wait or max(1.0, 10 * debounce))
        self._lock = threading.RLock()
        self._observer: BaseObserver | None = None
        self._identity: tuple[str, int] | None = None
        self._log_handler = _OverflowLogHandler(self)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        inotify_log = logging.getLogger(_INOTIFY_LOGGER)
        if not inotify_log.isEnabledFor(logging.WARNING):  # the overflow warning must reach us
            inotify_log.setLevel(logging.WARNING)
        inotify_log.addHandler(self._log_handler)
        self._debouncer.start()
        self._reschedule()

    def stop(self) -> None:
        logging.getLogger(_INOTIFY_LOGGER).removeHandler(self._log_handler)
        self._debouncer.stop()
        with self._lock:
            observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            if observer.is_alive():
                observer.join(5)

    def _new_observer(self) -> BaseObserver:
        if self._polling:
            return PollingObserver(timeout=self._poll_interval)
        return Observer()

    def _reschedule(self) -> None:
        """(Re)create the observer for the directory's current real path and its parents."""
        with self._lock:
            old, self._observer = self._observer, None
            if old is not None:
                old.stop()
            self._identity = _identity(self.directory)
            observer = self._new_observer()
            try:
                if self._identity is not None:
                    observer.schedule(_Handler(self, "dir"), self._identity[0], recursive=False,
                                      **_SCHEDULE_KW)
                for parent in parents_to_watch(self.directory):
                    if self._identity is None or parent != self._identity[0]:
                        observer.schedule(_Handler(self, "parent"), parent, recursive=False,
                                          **_SCHEDULE_KW)
                observer.start()
            except OSError as err:  # ENOSPC / EMFILE: out of inotify watches; resync still runs
                self._hooks.event("error")
                self._debouncer.note(rescan=f"watch failed: {err.strerror or err}")
                return
            self._observer = observer

    def healthy(self) -> bool:
        """False when the observer or one of its emitters died (the loop then calls ``recover``)."""
        with self._lock:
            observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(emitter.is_alive() for emitter in observer.emitters)

    def recover(self, reason: str) -> None:
        """Rebuild the watches and rescan everything: used after any watcher failure."""
        self._hooks.event("error")
        self._reschedule()
        self._debouncer.note(rescan=reason)

    def overflowed(self) -> None:
        self._hooks.overflow()
        self._debouncer.note(rescan="inotify queue overflow")

    def request_rescan(self, reason: str) -> None:
        self._debouncer.note(rescan=reason)

    # -- events ------------------------------------------------------------------------------

    def _on_event(self, role: str, event: FileSystemEvent) -> None:
        if role == "parent":
            # Only a change of what the configured path resolves to matters up there.
            if _identity(self.directory) != self._identity:
                self._hooks.event("swap")
                self._debouncer.note(rescan="desired directory swapped")
            return
        names = [os.fsdecode(event.src_path)]
        if isinstance(event, FileSystemMovedEvent) and event.dest_path:
            names.append(os.fsdecode(event.dest_path))
        for full in names:
            name = os.path.basename(full)
            kind = classify(name)
            self._hooks.event(kind)
            if kind == "swap":
                self._debouncer.note(rescan=f"symlink swap ({name})")
            elif kind == "file" and not (event.is_directory and event.event_type != "deleted"):
                self._debouncer.note(self.directory / name)
        if _identity(self.directory) != self._identity:
            self._debouncer.note(rescan="desired directory swapped")

    def _flush(self, change: Change) -> None:
        if _identity(self.directory) != self._identity:
            self._reschedule()
            change.rescan = True
            change.reasons.add("desired directory moved")
        if change.rescan:
            for reason in sorted(change.reasons):
                self._hooks.rescan(reason)
        self._on_change(change)
