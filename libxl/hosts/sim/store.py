"""Where a simulated host's state lives: in memory (``test:///default``) or in a JSON file that
separate processes share (``test:///ABS/PATH.json``).

Both answer the same three calls: ``transaction`` (a working copy, committed if it changed),
``current`` (the committed state, shared: callers only read it) and ``token`` (changes whenever a
commit did: what the event poller watches).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import tempfile
import threading
import uuid as _uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from libxl.errors import BackendError
from libxl.hosts.sim.state import State, shape_problem, working_copy

#: A persisted state starts with the random stamp of the save that wrote it (the key sorts first).
_STAMP_PREFIX = b'{"_generation": "'
_STAMP_LEN = len(_STAMP_PREFIX) + 32 + 1  # the prefix, a uuid4 in hex, the closing quote


class MemoryStore:
    """The state of ``test:///default``: one dict, guarded by a lock."""

    def __init__(self, state: State) -> None:
        self._state = state
        self._lock = threading.RLock()
        self._version = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        with self._lock:
            work = working_copy(self._state)
            yield work
            if work != self._state:
                self._state = work
                self._version += 1

    def token(self) -> Any:
        return self._version

    def current(self) -> State:
        """The committed state, shared: callers only read it (commits replace it, never change it)."""
        with self._lock:
            return self._state


class FileStore:
    """The state of ``test:///PATH``: a JSON file, locked and replaced atomically per operation.

    The parsed state is cached with the random stamp (``_generation``) of the save that wrote it: a
    call reads the file's first bytes and parses the file again only when another writer replaced
    it. A stamp, not mtime/size/inode, decides, because a file replaced twice within one timestamp
    tick can reuse an inode and a size; a file written before stamps is compared whole.

    ``read_only`` (the verbs that only look: ``plan``, ``list``) never writes: no directory, no lock
    file, no state file is made, a missing file reads as ``initial`` (the empty host a first write
    would create), and what a transaction changes (time brought up to date) is kept in memory only.
    Reading needs no lock, since writers replace the file atomically. Any OSError of the file, the
    lock or the directory (EROFS, EACCES, ENAMETOOLONG, ENOTDIR, ELOOP, ...) is a ``BackendError``.
    """

    def __init__(self, path: Path, initial: State, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._initial = initial
        self._lock_path = path.with_name(path.name + ".lock")
        self._thread_lock = threading.RLock()
        self._cache: tuple[bytes, State] | None = None
        #: id(domain record) -> (the record, its '"key": {...}' JSON text), for ``encode``.
        self._fragments: dict[int, tuple[dict[str, Any], str, str]] = {}
        if read_only:
            return
        with self._host_file("create"):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except FileExistsError:  # mkdir's word for "that is a file": say what is wrong with it
                not_dir = os.strerror(errno.ENOTDIR)
                raise NotADirectoryError(errno.ENOTDIR, not_dir, str(path.parent)) from None
        with self.transaction() as state:
            if not state:
                state.update(initial)

    @contextlib.contextmanager
    def _host_file(self, op: str) -> Iterator[None]:
        """OSErrors of the state file, its lock or its directory, as one BackendError sentence."""
        try:
            yield
        except OSError as err:
            where = err.filename or self.path
            raise BackendError(op, f"simulated host state {where}: {err.strerror or err}",
                               transient=False) from None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[State]:
        if self.read_only:
            with self._thread_lock:
                yield working_copy(self._load() or self._initial)
            return
        with self._thread_lock, self._open_lock() as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                before = self._load()
                work = working_copy(before)
                yield work
                if work != before:
                    self._save(work)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _open_lock(self) -> IO[str]:
        with self._host_file("lock"):
            return open(self._lock_path, "a")

    def _load(self) -> State:
        try:
            if self._cache is not None:
                key = self._cache[0]
                with open(self.path, "rb") as handle:  # one more byte: an unstamped file must end there
                    head = handle.read(len(key) + (0 if key.startswith(_STAMP_PREFIX) else 1))
                if head == key:
                    return self._cache[1]
            data = self.path.read_bytes()
            state = json.loads(data)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            reason = err.strerror if isinstance(err, OSError) and err.strerror else err
            raise BackendError("load", f"simulated host state {self.path} is unreadable: {reason}",
                               transient=False) from None
        problem = shape_problem(state)
        if problem:
            raise BackendError("load", f"simulated host state {self.path} is not a simulated host: {problem}",
                               transient=False)
        self._cache = (self._identity(data), state)
        return state

    @staticmethod
    def _identity(data: bytes) -> bytes:
        """What tells this version of the file from any other: its stamp, or all of it."""
        return data[:_STAMP_LEN] if data.startswith(_STAMP_PREFIX) else data

    def encode(self, state: State) -> bytes:
        """``json.dumps(state, sort_keys=True)``, byte for byte, re-encoding only the domain records
        that are new since the last save.

        Committed records are never changed in place (``working_copy``), so a record's identity
        stands for its content, and a save joins cached text instead of encoding every guest again
        (the fragments hold their records, so an id is not reused while it is cached).
        """
        parts, fragments = [], {}
        for key in sorted(state):
            if key != "domains":
                parts.append(f"{json.dumps(key)}: {json.dumps(state[key], sort_keys=True)}")
                continue
            items = []
            for domid, record in sorted(state[key].items()):
                cached = self._fragments.get(id(record))
                if cached is None or cached[0] is not record or cached[1] != domid:
                    cached = (record, domid, f"{json.dumps(domid)}: {json.dumps(record, sort_keys=True)}")
                fragments[id(record)] = cached
                items.append(cached[2])
            parts.append(f'"domains": {{{", ".join(items)}}}')
        self._fragments = fragments
        return ("{" + ", ".join(parts) + "}").encode()

    def _save(self, state: State) -> None:
        state["_generation"] = _uuid.uuid4().hex
        data = self.encode(state)
        with self._host_file("save"):
            self._replace(data, state)

    def _replace(self, data: bytes, state: State) -> None:
        fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, self.path)
            self._cache = (self._identity(data), state)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def current(self) -> State:
        """The committed state, shared: callers only read it (the file is replaced atomically)."""
        with self._thread_lock:
            return self._load() or (self._initial if self.read_only else {})

    def token(self) -> Any:
        try:
            st = self.path.stat()
        except OSError:  # gone, or unreadable now: the next read says why
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)
