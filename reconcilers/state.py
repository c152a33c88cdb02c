"""The agent's state directory: the inventory of domains it owns, in one SQLite database.

Like Terraform's state file and Flux's inventory, this is the ownership record that survives
restarts of the agent, next to the marker in the guest's ``c_info.xsdata``; it is also the only
record of guests adopted with ``Policy.adopt`` (whose xsdata the agent never wrote). Entries are keyed
by uuid, because a name can be reused by someone else's guest after ours is gone.

Why SQLite (the standard library's ``sqlite3``, WAL journal, ``synchronous=FULL``): the agent
records every create before libxl is asked for it, and rewriting a whole JSON inventory for each
one made a cold start cost O(guests²). Each write here is one small transaction (``put`` one entry,
``delete`` some uuids), durable when it returns, and a crash leaves the transaction done or not
done, never half of one. A database that is not one, or is damaged, is a ``StateError``: a
corrupt inventory is never guessed at (an empty guess would make the agent's own guests look like
someone else's).

Rows are ``OwnedDomain``: one column per field, derived from the dataclass. A field added later
(with a default, as dataclasses require after the defaulted ones) becomes a column by ``ALTER TABLE
ADD COLUMN`` the first time a newer agent opens an older database; the ``schema`` table's version
is for changes a column cannot express, and a database from a newer version is refused.

``inventory.json`` (the format before the database) is read as it is until the first write, which
migrates it once: the database is built beside it, then the JSON file is renamed to
``inventory.json.migrated`` so that an older agent started afterwards finds no inventory instead of
a stale one it would trust. Both files present (a JSON inventory written after the migration, by an
older agent) is refused too: which one is right is for the operator to say.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import threading
import types
import typing
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from libxl.errors import XenReconcileError

#: Where the agent keeps its state unless told otherwise.
DEFAULT_STATE_DIR = Path("/var/lib/xenreconcile")
DATABASE_FILE = "inventory.db"
#: The inventory before the database: migrated by the first write, then renamed with ``MIGRATED``.
LEGACY_FILE = "inventory.json"
MIGRATED = ".migrated"
LOCK_FILE = "lock"
#: The database while a migration builds it.
BUILDING = f".{DATABASE_FILE}.new"
#: Version of the database layout; added ``OwnedDomain`` fields do not change it (see above).
SCHEMA_VERSION = 1
_LEGACY_VERSION = 1
_TABLE = "owned"


class StateError(XenReconcileError):
    """The state directory cannot be read or written (a corrupt inventory is never guessed at)."""


@dataclass(frozen=True)
class OwnedDomain:
    name: str
    uuid: str
    file: str | None = None
    #: Content hash of the desired file last applied (``DesiredDomain.content_hash``).
    content_hash: str | None = None
    #: True when the agent adopted the domain instead of creating it.
    adopted: bool = False


@dataclass
class Inventory:
    """Owned domains by uuid. Plain data: ``StateDir`` loads it and records its changes; change it
    through ``add``/``remove`` (they keep the by-name index that spares a resync one scan per domain)."""
    domains: dict[str, OwnedDomain] = field(default_factory=dict)
    #: uuid keys by name, built on first use (copies made only to check ownership never build it).
    _names: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)

    def _index(self) -> dict[str, list[str]]:
        if self._names is None:
            self._names = {}
            for key, entry in self.domains.items():
                self._names.setdefault(entry.name, []).append(key)
        return self._names

    def by_name(self, name: str) -> OwnedDomain | None:
        keys = self._index().get(name)
        return self.domains[keys[0]] if keys else None

    def owns(self, uuid: str) -> bool:
        return uuid.lower() in self.domains

    def add(self, entry: OwnedDomain) -> list[str]:
        """Record ``entry``, replacing older entries of the same uuid or name (a recreated guest).
        Returns the uuids it displaced, for ``StateDir.put`` to drop as well."""
        key = entry.uuid.lower()
        self.remove(key)
        displaced = self._index().pop(entry.name, [])
        for k in displaced:
            del self.domains[k]
        self.domains[key] = entry
        self._index()[entry.name] = [key]
        return displaced

    def remove(self, uuid: str) -> None:
        entry = self.domains.pop(uuid.lower(), None)
        if entry is not None and self._names is not None:
            keys = self._names[entry.name]
            keys.remove(uuid.lower())
            if not keys:
                del self._names[entry.name]


@dataclass(frozen=True)
class _Column:
    """One ``OwnedDomain`` field as a column: its SQL declaration and the values a row may hold."""
    name: str
    kind: type
    nullable: bool
    default: object

    @property
    def declaration(self) -> str:
        sql = {str: "TEXT", int: "INTEGER", bool: "INTEGER", float: "REAL"}[self.kind]
        if self.name == "uuid":  # the key: compared without case, as the Inventory's keys are
            return f"{self.name} {sql} NOT NULL PRIMARY KEY COLLATE NOCASE"
        declared = f"{self.name} {sql}" if self.nullable else f"{self.name} {sql} NOT NULL"
        if self.default is None or self.default is _REQUIRED:
            return declared
        return f"{declared} DEFAULT {self._literal()}"

    def _literal(self) -> str:
        value = int(self.default) if isinstance(self.default, bool) else self.default
        return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)

    def value(self, stored: object) -> object:
        """The field's value from the stored one; ``ValueError`` for what the field cannot hold."""
        if stored is None and self.nullable:
            return None
        if self.kind is bool and stored in (0, 1) and type(stored) is int:
            return bool(stored)
        if self.kind is not bool and type(stored) is self.kind:
            return stored
        raise ValueError(f"{self.name} is {stored!r}")


_REQUIRED = object()


def _columns() -> tuple[_Column, ...]:
    hints = typing.get_type_hints(OwnedDomain)
    out = []
    for f in dataclasses.fields(OwnedDomain):
        hint, nullable = hints[f.name], False
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            hint, nullable = (args[0] if len(args) == 1 else hint), len(args) < len(typing.get_args(hint))
        if hint not in (str, int, bool, float):
            raise TypeError(f"OwnedDomain.{f.name}: {hint!r} has no column type (str, int, bool, float)")
        default = _REQUIRED if f.default is dataclasses.MISSING else f.default
        out.append(_Column(f.name, hint, nullable, default))
    return tuple(out)


COLUMNS = _columns()
_NAMES = ", ".join(c.name for c in COLUMNS)
_PUT = f"INSERT OR REPLACE INTO {_TABLE} ({_NAMES}) VALUES ({', '.join('?' for _ in COLUMNS)})"
_DELETE = f"DELETE FROM {_TABLE} WHERE uuid = ?"


def _row(entry: OwnedDomain) -> tuple[object, ...]:
    return tuple(getattr(entry, c.name) for c in COLUMNS)


class StateDir:
    """One state directory; its database is created (or migrated to) by the first write.

    ``load`` reads the inventory; ``put`` and ``delete`` record one change each, in the same
    words as ``Inventory.add`` and ``Inventory.remove``. One connection per ``StateDir``, used by
    one thread at a time (the agent's workers share it), closed when the ``StateDir`` goes.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._guard = threading.Lock()

    @property
    def database_path(self) -> Path:
        return self.path / DATABASE_FILE

    @property
    def legacy_path(self) -> Path:
        return self.path / LEGACY_FILE

    def load(self) -> Inventory:
        """The recorded inventory, or an empty one when none was ever written."""
        with self._guard:
            db = self._connection(create=False)
            if db is None:
                return self._read_legacy() if self.legacy_path.exists() else Inventory()
            try:
                rows = db.execute(f"SELECT {_NAMES} FROM {_TABLE} ORDER BY name, uuid").fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None
        entries = []
        for row in rows:
            try:
                entries.append(OwnedDomain(**{c.name: c.value(v) for c, v in zip(COLUMNS, row, strict=True)}))
            except ValueError as exc:
                raise StateError(f"{self.database_path}: corrupt inventory: {exc}") from None
        return Inventory({e.uuid.lower(): e for e in entries})

    def put(self, entry: OwnedDomain, displaced: Iterable[str] = ()) -> None:
        """Record ``entry`` and drop the ``displaced`` uuids (``Inventory.add``'s), in one transaction."""
        self._write([(_PUT, [_row(entry)]), (_DELETE, [(u,) for u in displaced])])

    def delete(self, uuids: Iterable[str]) -> None:
        """Drop the entries of ``uuids`` (absent ones are no error), in one transaction."""
        self._write([(_DELETE, [(u,) for u in uuids])])

    def _write(self, statements: list[tuple[str, list[tuple[object, ...]]]]) -> None:
        with self._guard:
            db = self._connection(create=True)
            assert db is not None
            try:
                with db:  # one transaction, committed (and synced) on leaving, rolled back on error
                    for sql, rows in statements:
                        if rows:
                            db.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise self._error(exc, "cannot write inventory") from None

    # -- opening, creating, migrating -------------------------------------------------------------

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open database; ``None`` when there is none and ``create`` is false."""
        if self._db is not None:
            return self._db
        if self.database_path.exists() and self.legacy_path.exists():
            raise StateError(f"{self.path}: both {DATABASE_FILE} and {LEGACY_FILE} exist ({LEGACY_FILE} "
                             f"was written after the migration, by an older xenreconcile?); keep the "
                             "right one and move the other aside")
        if not self.database_path.exists() and not self._finish_migration():
            if not create:
                return None
            self._migrate()
        try:
            db = sqlite3.connect(self.database_path, isolation_level="DEFERRED", check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise StateError(f"{self.database_path}: cannot use the WAL journal (got {mode})")
            db.execute("PRAGMA synchronous=FULL")
            _ensure_schema(db, self.database_path)
        except StateError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise self._error(exc) from None
        self._db = db
        weakref.finalize(self, db.close)
        return db

    def _migrate(self) -> None:
        """Create the database: in place when there is nothing to migrate (SQLite's own journal
        makes its creation atomic), else filled from ``inventory.json`` under a temporary name,
        complete and synced before the JSON file is renamed aside and the database renamed into
        place. A crash leaves the JSON inventory (the half-built database is discarded on the next
        try) or the JSON file renamed and a complete database (``_finish_migration``)."""
        if not self.legacy_path.exists():
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"{self.path}: cannot write inventory: {exc.strerror or exc}") from None
            return
        building = self.path / BUILDING
        entries = self._read_legacy().domains.values()
        try:
            building.unlink(missing_ok=True)
            db = sqlite3.connect(building)
            try:
                db.execute("PRAGMA synchronous=FULL")
                with db:
                    _ensure_schema(db, building)
                    db.executemany(_PUT, [_row(e) for e in entries])
            finally:
                db.close()
            os.replace(self.legacy_path, self.path / (LEGACY_FILE + MIGRATED))
            os.replace(building, self.database_path)
            _sync_dir(self.path)
        except sqlite3.Error as exc:
            raise self._error(exc, "cannot write inventory") from None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write inventory: {exc.strerror or exc}") from None

    def _finish_migration(self) -> bool:
        """Put a migrated database in place if a crash came between the two renames (the JSON file
        renamed aside, the complete database still under its temporary name); True if it did.
        Done on reading too: the inventory is in that database, and nowhere else."""
        building = self.path / BUILDING
        if self.database_path.exists() or self.legacy_path.exists() or not building.exists() or \
                not (self.path / (LEGACY_FILE + MIGRATED)).exists():
            return False
        try:
            os.replace(building, self.database_path)
            _sync_dir(self.path)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write inventory: {exc.strerror or exc}") from None
        return True

    def _read_legacy(self) -> Inventory:
        """``inventory.json`` as the agent before the database wrote it."""
        path = self.legacy_path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StateError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
            if data.get("version") != _LEGACY_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            entries = [OwnedDomain(**entry) for entry in data["domains"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{path}: corrupt inventory: {exc}") from None
        return Inventory({e.uuid.lower(): e for e in entries})

    def _error(self, exc: sqlite3.Error, doing: str = "cannot read inventory") -> StateError:
        """One line for a database failure; damage is named as such, never taken for an empty inventory."""
        what = "corrupt inventory" if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, sqlite3.OperationalError) else doing
        return StateError(f"{self.database_path}: {what}: {exc}")

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the state directory for one writer, like Terraform's state lock.

        Two reconcilers over one host would each see the other's create in flight (a paused guest
        without a config, or a nameless one its inventory lists) as remains to destroy. The lock
        is an ``flock``, so the kernel drops it when its holder dies, SIGKILL included; a second
        agent or ``apply`` fails at once, naming the holder's pid, instead of waiting.
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(f"{self.path / LOCK_FILE}: cannot open: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise StateError(f"{self.path}: in use by another xenreconcile (pid {holder}); "
                                 "one agent or apply per state directory") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            yield
        finally:
            os.close(fd)  # releases the lock


def _ensure_schema(db: sqlite3.Connection, where: Path) -> None:
    """Create the tables, or bring an older database's up to date: a version this agent does not
    know is refused, and ``OwnedDomain`` fields without a column get one (with the field's default)."""
    with db:
        db.execute("CREATE TABLE IF NOT EXISTS schema (version INTEGER NOT NULL)")
        versions = [v for (v,) in db.execute("SELECT version FROM schema")]
        if not versions:
            db.execute("INSERT INTO schema (version) VALUES (?)", (SCHEMA_VERSION,))
        elif versions != [SCHEMA_VERSION]:
            found = versions[0] if len(versions) == 1 else versions
            raise StateError(f"{where}: unsupported schema version {found} "
                             f"(this xenreconcile reads version {SCHEMA_VERSION})")
        db.execute(f"CREATE TABLE IF NOT EXISTS {_TABLE} ({', '.join(c.declaration for c in COLUMNS)})")
        have = {row[1] for row in db.execute(f"PRAGMA table_info({_TABLE})")}
        for column in COLUMNS:
            if column.name not in have:
                db.execute(f"ALTER TABLE {_TABLE} ADD COLUMN {column.declaration}")


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
