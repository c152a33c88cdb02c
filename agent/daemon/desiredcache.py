"""The desired set the agent works from: re-read on demand, kept when the directory goes away.

Apart from the loop because it is shared state with its own rules: workers, the watcher thread
and the HTTP endpoints read it at any time, a refresh replaces it whole under a lock, a directory
that cannot be read keeps the last set (never prune on a missing mount), and each file's problems
are logged once per version of the file, not once per rescan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from libxl.errors import ConfigError
from libxl.frontends.hostconf import with_host_cpus
from libxl.hosts.backend import Backend
from reconcilers.desired import DesiredSet, load_desired


def affected_names(old: DesiredSet | None, new: DesiredSet) -> set[str]:
    """Domains whose declaration differs between two desired sets.

    Compares what the reconciler acts on (file, content hash, conflicts, invalid fallbacks), not
    which files had events: a batch re-reads the whole directory, so it already sees files whose
    own events are still in the next batch, and keying on events would reconcile those twice.
    An editor re-saving identical bytes costs nothing; drift on the host is the resync's job.
    """
    def declared(s: DesiredSet | None) -> dict[str, tuple[str, str]]:
        if s is None:
            return {}
        out = {n: (str(d.file), d.content_hash) for n, d in s.domains.items()}
        out.update({n: ("conflict", ",".join(map(str, files))) for n, files in s.conflicts.items()})
        out.update({d.name: ("invalid", str(s.invalid[p])) for p, d in s.last_good.items()})
        return out

    if old is not None and old.domains is new.domains and old.conflicts is new.conflicts and \
            old.last_good is new.last_good:
        return set()  # an unchanged rescan shares the previous set's dicts: nothing to compare
    before, after = declared(old), declared(new)
    return {n for n in before.keys() | after.keys() if before.get(n) != after.get(n)}


class DesiredCache:
    """The last desired set read from ``settings().desired_dir`` (None until the first read).

    ``settings`` is asked on every refresh, so a reload's new directory, security policy and
    xl.conf apply to the next read. The host's cpu count (xl cuts xl.cfg cpu lists to it) is asked
    of ``backend`` once, when a file first needs it.
    """

    def __init__(self, settings: Callable[[], AgentConfig], backend: Backend, log: Any) -> None:
        self._settings = settings
        self._backend = backend
        self._log = log
        self._lock = threading.Lock()
        self._desired: DesiredSet | None = None
        #: Why the last read failed (the directory itself), None after a good one.
        self.error: str | None = None
        self._nr_cpus: int | None = None

    def current(self) -> DesiredSet | None:
        with self._lock:
            return self._desired

    def refresh(self) -> set[str]:
        """Re-read the desired directory; returns the names whose declaration changed."""
        settings = self._settings()
        with self._lock:
            old = self._desired
            try:
                host = with_host_cpus(settings.host_settings(), self._host_cpus)  # xl.conf edits apply
                new = load_desired(Path(settings.desired_dir), old, security=settings.security(), host=host)
            except ConfigError as err:
                # The directory itself is gone: keep the last set (never prune on a missing mount).
                if self.error != str(err):
                    self._log.error("desired directory unreadable; keeping the last desired set",
                                    file=settings.desired_dir, error=str(err))
                self.error = str(err)
                return set()
            self.error = None
            self._desired = new
        self._log_news(old, new)
        return affected_names(old, new)

    def _log_news(self, old: DesiredSet | None, new: DesiredSet) -> None:
        """One line per file newly invalid (or invalid anew), and an xl.cfg's caveats once per
        version of the file (an unchanged rescan shares the previous set's dict: nothing to look at)."""
        for path, err in new.invalid.items():
            if old is None or old.invalid.get(path) is None or str(old.invalid[path]) != str(err):
                self._log.warning("desired file invalid", file=str(path), action="validate", error=str(err))
        for dom in new.domains.values() if old is None or new.domains is not old.domains else ():
            seen = old.domains.get(dom.name) if old else None
            if seen is None or seen.content_hash != dom.content_hash:
                for warning in dom.warnings:
                    self._log.warning("desired file warning", file=str(dom.file), action="validate",
                                      warning=str(warning))

    def _host_cpus(self) -> int:
        if self._nr_cpus is None:
            self._nr_cpus = self._backend.host_info().nr_cpus
        return self._nr_cpus
