"""Race-free reading of one input file: every component opened once and judged on its descriptor.

Desired files are untrusted input read by root. Resolving a path, checking it and reading it in
separate steps by name lets a writer swap a symlink or a directory between the steps (a 0666 file
got applied that way), and opening whatever a name points to lets a FIFO wedge the reader, a
``/dev`` node be opened, or a 2 GB sparse file be read whole (issue 14, findings 2, 4, 5, 7). So:

- the path is walked one component at a time from ``/`` (or from a directory already open) with
  ``O_PATH | O_NOFOLLOW``; symlinks are resolved here, never by the kernel, so every directory and
  every link of the resolved chain is seen, and ``fstat`` of that very descriptor is what the
  caller's ``Trust`` (owner and mode policy) judges;
- only a regular file is opened for reading, relative to the directory descriptor that was judged,
  with ``O_NONBLOCK | O_NOFOLLOW | O_NOCTTY``, and is accepted only if it is the inode judged a
  moment before; the file checks run again on the reading descriptor;
- the size comes from that descriptor's ``fstat`` and at most ``limit + 1`` bytes are read from it.

A change in the middle (a swap, a vanished entry) is a ``ConfigError`` like any other bad input,
never an ``OSError``: the loader reports it and the next event reads again.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum

from libxl.errors import ConfigError

#: Linux's own limit on symlinks followed while resolving one path (MAXSYMLINKS).
MAX_SYMLINKS = 40
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


class Role(Enum):
    """What a component of the resolved chain is to the file being read."""
    DIRECTORY = "directory"  # a directory passed through on the way
    HOLDER = "holder"  # a directory holding the file itself or a symlink of the chain
    LINK = "symlink"
    FILE = "file"

    @property
    def noun(self) -> str:
        return "directory" if self is Role.HOLDER else self.value


@dataclass(frozen=True)
class Trust:
    """The caller's verdict on each component: ``check`` says why it may not be trusted, or None;
    ``because`` ends the refusal message (what the policy protects against, and its setting)."""
    check: Callable[[Role, os.stat_result], str | None]
    because: str = ""


class Missing(ConfigError):
    """The file (or, ``dangling``, the target of one of its symlinks) does not exist."""

    def __init__(self, message: str, *, dangling: bool) -> None:
        super().__init__(message)
        self.dangling = dangling


class NotADirectory(ConfigError):
    """A component that must be a directory is something else."""


def kind_of(mode: int) -> str:
    """``a FIFO``, ``a character device``...: what a non-regular file is, for the error message."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


@dataclass
class _Node:
    fd: int
    shown: str  # the resolved path of this component, for messages
    st: os.stat_result


class _Walk:
    """The open directory chain of one resolution (a stack, so ``..`` goes back the way it came)."""

    def __init__(self, trust: Trust | None, problem: str | None = None) -> None:
        self.trust = trust
        self.problem = problem  # the first component the trust refused
        self.stack: list[_Node] = []
        self.followed = False

    def judge(self, role: Role, st: os.stat_result, shown: str) -> None:
        if self.trust is None or self.problem is not None:
            return
        why = self.trust.check(role, st)
        if why:
            self.problem = f"file {why}" if role is Role.FILE else f"{role.noun} {shown} {why}"

    def refusal(self) -> ConfigError | None:
        if self.problem is None:
            return None
        return ConfigError(f"refused: {self.problem}{self.trust.because if self.trust else ''}")

    def push_root(self) -> None:
        fd = os.open("/", _PATH_FLAGS | os.O_DIRECTORY)
        self._push(fd, "/")

    def push_fd(self, fd: int, shown: str) -> None:
        self._push(os.dup(fd), shown)

    def _push(self, fd: int, shown: str) -> None:
        try:
            st = os.fstat(fd)
        except OSError:
            os.close(fd)
            raise
        self.stack.append(_Node(fd, shown, st))
        self.judge(Role.DIRECTORY, st, shown)

    def reset_to_root(self) -> None:
        self.close()
        self.push_root()

    def up(self) -> None:
        """``..``: back down the stack, or, from the directory the walk started at, its parent."""
        if len(self.stack) > 1:
            os.close(self.stack.pop().fd)
            return
        top = self.stack.pop()
        try:
            parent = os.open("..", _PATH_FLAGS | os.O_DIRECTORY, dir_fd=top.fd)
            self._push(parent, posixpath.dirname(top.shown))
        finally:
            os.close(top.fd)

    def close(self) -> None:
        while self.stack:
            os.close(self.stack.pop().fd)

    def resolve(self, parts: deque[str], want_dir: bool) -> _Node:
        """Walk ``parts`` from the top of the stack; return the final component (opened O_PATH, not
        pushed) or, with ``want_dir``, leave the final directory on top of the stack."""
        hops = 0
        while parts:
            name = parts.popleft()
            if name == "..":
                self.up()
                continue
            parent = self.stack[-1]
            try:
                fd = os.open(name, _PATH_FLAGS, dir_fd=parent.fd)
            except FileNotFoundError:
                gone = "dangling symlink" if self.followed else "cannot read: No such file or directory"
                raise Missing(gone, dangling=self.followed) from None
            node = _Node(fd, posixpath.join(parent.shown, name), os.fstat(fd))
            if stat.S_ISLNK(node.st.st_mode):
                hops += 1
                self.judge(Role.HOLDER, parent.st, parent.shown)
                self.judge(Role.LINK, node.st, node.shown)
                try:
                    target = os.readlink("", dir_fd=fd)
                finally:
                    os.close(fd)
                if hops > MAX_SYMLINKS:
                    raise ConfigError("too many levels of symbolic links")
                self.followed = True
                if target.startswith("/"):
                    self.reset_to_root()
                parts.extendleft(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if stat.S_ISDIR(node.st.st_mode) and (parts or want_dir):
                self.stack.append(node)
                self.judge(Role.DIRECTORY, node.st, node.shown)
                continue
            os.close(fd)
            if parts or want_dir:
                raise NotADirectory(f"{node.shown} is not a directory")
            self.judge(Role.HOLDER, parent.st, parent.shown)
            return _Node(-1, node.shown, node.st)
        if not want_dir:
            raise ConfigError("cannot read: Is a directory")
        return self.stack[-1]


def _parts(path: str) -> deque[str]:
    return deque(p for p in path.split("/") if p not in ("", "."))


@dataclass
class Directory:
    """An open directory (``O_PATH``) and the verdict on the chain that led to it: the base a scan
    resolves its files from, so a directory swapped mid-scan cannot mix two trees."""
    fd: int
    shown: str
    problem: str | None
    #: Its ``fstat`` when opened (``unchanged`` judges it as the holder of the files read from it).
    st: os.stat_result
    #: The verdict of one ``Trust`` on this directory as a file's holder, once per scan.
    _holds: tuple[Trust | None, bool] | None = field(default=None, repr=False)

    def unchanged(self, name: str, key: tuple[int, int, int, int], trust: Trust | None) -> bool:
        """True when ``name`` is the regular file ``open_regular(name, trust, self)`` found before
        with ``key`` (``Opened.key``) and would accept again, learnt from one ``fstatat`` that
        follows no symlink and opens nothing: a rescan's common case, where the file is not read.

        The judgments are ``open_regular``'s, on the same stats (this directory's taken when the
        scan opened it). False only means "not known this way": the caller resolves the name in
        full, and a symlink, a changed file or a refusal takes that path, with its messages."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return False
        if not stat.S_ISREG(st.st_mode) or file_key(st) != key:
            return False
        if trust is None:
            return self.problem is None
        if self._holds is None or self._holds[0] is not trust:
            holds = self.problem is None and not trust.check(Role.DIRECTORY, self.st) and \
                not trust.check(Role.HOLDER, self.st)
            self._holds = (trust, holds)
        return self._holds[1] and not trust.check(Role.FILE, st)

    def names(self) -> list[tuple[str, bool]]:
        """Each entry's name and whether it is a directory (a symlink to one counts)."""
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.fd)
        try:
            with os.scandir(fd) as entries:
                return [(e.name, _is_dir(e)) for e in entries]
        finally:
            os.close(fd)

    def close(self) -> None:
        os.close(self.fd)


def file_key(st: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file does: mtime, size, inode, device."""
    return st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _start(walk: _Walk, path: str, base: Directory | None) -> deque[str]:
    if base is not None and not path.startswith("/"):
        walk.push_fd(base.fd, base.shown)
        return _parts(path)
    walk.push_root()
    return _parts(path if path.startswith("/") else posixpath.join(os.getcwd(), path))


@contextmanager
def _errors_located(path: str) -> Iterator[None]:
    """Every failure as a ``ConfigError`` naming ``path`` (no OSError escapes a swap)."""
    try:
        yield
    except ConfigError as err:
        raise err.located(path) from None
    except OSError as err:
        raise ConfigError(f"cannot read: {err.strerror or err}", file=path) from None


def open_directory(path: str, trust: Trust | None = None) -> Directory:
    """Open the directory ``path`` (symlinks resolved as above); a component ``trust`` refuses is
    kept in ``problem`` so that every file read from the directory is refused with it. Raises
    ``Missing`` or ``NotADirectory`` (or another ``ConfigError``) when it cannot be opened."""
    walk = _Walk(trust)
    with _errors_located(path):
        try:
            parts = _start(walk, path, None)
            node = walk.resolve(parts, want_dir=True)
            walk.stack.pop()
            return Directory(node.fd, node.shown, walk.problem, node.st)
        finally:
            walk.close()


@dataclass
class Opened:
    """A regular file found and judged; ``st`` is its ``fstat``. ``read`` opens and reads it."""
    _walk: _Walk
    _name: str
    _file: str
    st: os.stat_result

    @property
    def key(self) -> tuple[int, int, int, int]:
        return file_key(self.st)

    def read(self, limit: int) -> bytes:
        """The file's bytes, from a descriptor on the very inode judged; at most ``limit``."""
        changed = ConfigError("changed while being opened (read again on the next change)")
        with _errors_located(self._file):
            try:
                fd = os.open(self._name, _READ_FLAGS, dir_fd=self._walk.stack[-1].fd)
            except OSError as err:
                if err.errno in (errno.ENOENT, errno.ELOOP):  # gone, or a symlink now
                    raise changed from None
                raise
            try:
                st = os.fstat(fd)
                if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino) or not stat.S_ISREG(st.st_mode):
                    raise changed
                self._walk.judge(Role.FILE, st, self._file)
                if (refused := self._walk.refusal()) is not None:
                    raise refused
                return read_bounded(fd, st.st_size, limit)
            finally:
                os.close(fd)


def read_bounded(fd: int, size: int, limit: int) -> bytes:
    """At most ``limit`` bytes of ``fd``: refused unread when ``size`` (fstat's) is over it, and
    refused when the file grew past it while being read."""
    if size > limit:
        raise ConfigError(f"file is {size} bytes, over the {limit} byte limit")
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = os.read(fd, min(limit + 1 - total, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        raise ConfigError(f"file is over the {limit} byte limit")
    return b"".join(chunks)


@contextmanager
def open_regular(path: str, trust: Trust | None = None, base: Directory | None = None) -> Iterator[Opened]:
    """Resolve ``path`` (relative to ``base`` when given), judge every component with ``trust``
    and yield the regular file found; anything else is refused before it is opened for reading."""
    walk = _Walk(trust, base.problem if base is not None else None)
    try:
        with _errors_located(path):
            node = walk.resolve(_start(walk, path, base), want_dir=False)
            if stat.S_ISDIR(node.st.st_mode):
                raise ConfigError("cannot read: Is a directory")
            if not stat.S_ISREG(node.st.st_mode):
                raise ConfigError(f"not a regular file ({kind_of(node.st.st_mode)}): refused unopened")
            walk.judge(Role.FILE, node.st, path)
            if (refused := walk.refusal()) is not None:
                raise refused
        yield Opened(walk, posixpath.basename(node.shown), path, node.st)
    finally:
        walk.close()


def read_regular(path: str, limit: int, trust: Trust | None = None) -> bytes:
    """``open_regular`` and ``Opened.read`` in one: the bytes of ``path``, at most ``limit``."""
    with open_regular(path, trust) as opened:
        return opened.read(limit)


__all__ = ["MAX_SYMLINKS", "Directory", "Missing", "NotADirectory", "Opened", "Role", "Trust", "file_key",
           "kind_of", "open_directory", "open_regular", "read_bounded", "read_regular"]
