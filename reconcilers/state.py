"""The agent's state directory: what it owns, the guests that left, the display ports — one SQLite
database.

Like Terraform's state file and Flux's inventory, the inventory is the ownership record that survives
restarts of the agent, next to the marker in the guest's ``c_info.xsdata``; it is also the only
record of guests adopted with ``Policy.adopt`` (whose xsdata the agent never wrote). Entries are keyed
by uuid, because a name can be reused by someone else's guest after ours is gone. Beside it are the
departures (guests that left and stay away, ``Departure``) and the display ports by guest name
(``reconcilers.ports``).

Why SQLite (the standard library's ``sqlite3``, WAL journal, ``synchronous=FULL``): the agent
records every create before libxl is asked for it, and rewriting a whole JSON inventory for each
one made a cold start cost O(guests²). Each write here is one small transaction (``put`` one entry,
``delete`` some uuids, a departure, one guest's ports), durable when it returns, and a crash leaves
the transaction done or not done, never half of one. A database that is not one, or is damaged, is
a ``StateError``: a corrupt inventory is never guessed at (an empty guess would make the agent's own
guests look like someone else's).

One table per record type, one column per dataclass field (``_Table``). A field added later (with a
default, as dataclasses require after the defaulted ones) becomes a column by ``ALTER TABLE ADD
COLUMN`` the first time a newer agent opens an older database; the ``schema`` table's version is for
changes a column cannot express, and a database from a newer version is refused.

``inventory.json`` (owned guests and departures) and ``ports.json`` (the display ports), the files
before the database, are read as they are until the first write, which migrates them once: the
database is created and filled in one transaction that also records each file's SHA-256, then the
files are renamed with ``.migrated``, so that an older agent started afterwards finds no state instead
of a stale one it would trust. A crash between the commit and the renames leaves files whose digest
the database knows: the next open renames them (a read included). A file beside the database that it
does not know (written after the migration, by an older agent) is refused: which record is right is
for the operator to say.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import sqlite3
import threading
import types
import typing
import urllib.parse
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libxl.errors import XenReconcileError

#: Where the agent keeps its state unless told otherwise.
DEFAULT_STATE_DIR = Path("/var/lib/xenreconcile")
DATABASE_FILE = "inventory.db"
#: The files before the database: migrated by the first write, then renamed with ``MIGRATED``.
LEGACY_INVENTORY = "inventory.json"
LEGACY_PORTS = "ports.json"
MIGRATED = ".migrated"
LOCK_FILE = "lock"
#: Version of the database layout; added dataclass fields do not change it (see above).
SCHEMA_VERSION = 1
_LEGACY_VERSION = 1


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


#: Why an owned guest left the host (``Departure.reason``).
SAVED = "saved"  # suspended into an image: xl save, or host-shutdown with on_host_shutdown = save
MIGRATED_AWAY = "migrated-away"  # xl migrate sent it to another host
POWEROFF = "poweroff"  # the guest shut itself down
CRASH = "crash"  # it crashed (or its watchdog fired)
DESTROYED = "destroyed"  # it vanished without a shutdown the agent saw (xl destroy, a missed event)


@dataclass(frozen=True)
class Departure:
    """An owned guest that left the host in a way the agent must respect: not re-created on the
    strength of its unchanged desired file (``reconcilers.plan`` decides with the run strategy).

    Kept by name until a guest of that name runs again, its desired file changes (another
    ``content_hash``) or the operator clears it (``xenreconcile clear``)."""
    name: str
    reason: str
    uuid: str | None = None
    #: The desired file's revision when the guest left (None: no file declared it).
    content_hash: str | None = None
    #: Epoch seconds when the agent noticed.
    time: float = 0.0
    #: The save image ``host-shutdown`` wrote, and the libxl config saved in it: restored when the
    #: desired file still describes that guest (``reconcilers.plan``), set aside otherwise.
    image: str | None = None
    config: dict[str, Any] | None = None


@dataclass
class Inventory:
    """Owned domains by uuid. Plain data: ``StateDir`` loads it and records its changes; change it
    through ``add``/``remove`` (they keep the by-name index that spares a resync one scan per domain)."""
    domains: dict[str, OwnedDomain] = field(default_factory=dict)
    #: Guests that left and stay away, by name (``Departure``).
    departed: dict[str, Departure] = field(default_factory=dict)
    #: uuid keys by name, built on first use (copies made only to check ownership never build it).
    _names: dict[str, list[str]] | None = field(default=None, init=False, repr=False, compare=False)

    def _index(self) -> dict[str, list[str]]:
        if self._names is None:
            self._names = {}
            for key, entry in self.domains.items():
                self._names.setdefault(entry.name, []).append(key)
        return self._names

    def copy(self) -> Inventory:
        """A snapshot a plan may read while the original changes."""
        return Inventory(dict(self.domains), dict(self.departed))

    def clear_departures(self, names: list[str]) -> list[str]:
        """Forget the departures of ``names``; the names that had one."""
        return [n for n in names if self.departed.pop(n, None) is not None]

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
class _Port:
    """One row of the display port table: ``name``'s display of ``kind`` is on ``port``."""
    name: str
    kind: str
    port: int


@dataclass(frozen=True)
class _Migrated:
    """A file the database was migrated from, by its digest (how a crash mid-migration is told
    from a file an older agent wrote later)."""
    file: str
    sha256: str


# -- tables ---------------------------------------------------------------------------------------

_SQL_TYPES = {str: "TEXT", int: "INTEGER", bool: "INTEGER", float: "REAL", dict: "TEXT"}
_REQUIRED = object()


@dataclass(frozen=True)
class _Column:
    """One dataclass field as a column: its SQL declaration and the values a row may hold. A
    ``dict`` field is stored as JSON text."""
    name: str
    kind: type
    nullable: bool
    default: object
    nocase: bool = False

    @property
    def declaration(self) -> str:
        declared = f"{self.name} {_SQL_TYPES[self.kind]}" + ("" if self.nullable else " NOT NULL")
        if self.nocase:
            declared += " COLLATE NOCASE"
        if self.default is None or self.default is _REQUIRED:
            return declared
        return f"{declared} DEFAULT {self._literal()}"

    def _literal(self) -> str:
        value = int(self.default) if isinstance(self.default, bool) else self.default
        return "'" + value.replace("'", "''") + "'" if isinstance(value, str) else repr(value)

    def stored(self, value: object) -> object:
        return json.dumps(value, sort_keys=True) if self.kind is dict and value is not None else value

    def value(self, stored: object) -> object:
        """The field's value from the stored one; ``ValueError`` for what the field cannot hold."""
        if stored is None and self.nullable:
            return None
        if self.kind is bool and stored in (0, 1) and type(stored) is int:
            return bool(stored)
        if self.kind is dict and type(stored) is str:
            with contextlib.suppress(ValueError):
                decoded = json.loads(stored)
                if isinstance(decoded, dict):
                    return decoded
        elif self.kind is not bool and type(stored) is self.kind:
            return stored
        raise ValueError(f"{self.name} is {stored!r}")


@dataclass(frozen=True)
class _Table:
    """One record type as one table, keyed by ``key``, read in the order of ``order``."""
    name: str
    record: type
    key: tuple[str, ...]
    columns: tuple[_Column, ...]
    order: tuple[str, ...]

    @classmethod
    def of(cls, name: str, record: type, key: tuple[str, ...], nocase: tuple[str, ...] = (),
           order: tuple[str, ...] = ()) -> _Table:
        hints = typing.get_type_hints(record)
        columns = []
        for f in dataclasses.fields(record):
            hint, nullable = hints[f.name], False
            if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
                args = [a for a in typing.get_args(hint) if a is not type(None)]
                nullable = len(args) < len(typing.get_args(hint))
                hint = args[0] if len(args) == 1 else hint
            hint = typing.get_origin(hint) or hint
            if hint not in _SQL_TYPES:
                raise TypeError(f"{record.__name__}.{f.name}: {hint!r} has no column type")
            default = _REQUIRED if f.default is dataclasses.MISSING else f.default
            columns.append(_Column(f.name, hint, nullable, default, f.name in nocase))
        return cls(name, record, key, tuple(columns), order or key)

    @property
    def create(self) -> str:
        body = [c.declaration for c in self.columns] + [f"PRIMARY KEY ({', '.join(self.key)})"]
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(body)})"

    @property
    def select(self) -> str:
        names = ", ".join(c.name for c in self.columns)
        return f"SELECT {names} FROM {self.name} ORDER BY {', '.join(self.order)}"

    @property
    def put(self) -> str:
        names = ", ".join(c.name for c in self.columns)
        return f"INSERT OR REPLACE INTO {self.name} ({names}) VALUES ({', '.join('?' for _ in self.columns)})"

    @property
    def delete(self) -> str:
        """Deletes the rows of one value of the key's first column (one uuid, one guest's name)."""
        return f"DELETE FROM {self.name} WHERE {self.key[0]} = ?"

    def row(self, record: object) -> tuple[object, ...]:
        return tuple(c.stored(getattr(record, c.name)) for c in self.columns)

    def read(self, row: tuple[object, ...]) -> Any:
        """The record of ``row``; ``ValueError`` naming the field that cannot hold its value."""
        return self.record(**{c.name: c.value(v) for c, v in zip(self.columns, row, strict=True)})


#: uuids compared without case, as the Inventory's keys are; read by name, as the JSON file kept them.
OWNED = _Table.of("owned", OwnedDomain, ("uuid",), nocase=("uuid",), order=("name", "uuid"))
DEPARTED = _Table.of("departed", Departure, ("name",))
PORTS = _Table.of("ports", _Port, ("name", "kind"))
_MIGRATIONS = _Table.of("migrated", _Migrated, ("file",))
_TABLES = (OWNED, DEPARTED, PORTS, _MIGRATIONS)

#: A batch of one write transaction: a statement and its rows.
_Batch = tuple[str, list[tuple[object, ...]]]


class StateDir:
    """One state directory; its database is created (or migrated to) by the first write.

    ``load`` reads the inventory and ``load_ports`` the display ports; ``put`` and ``delete``
    record one change of owned guests each (in the words of ``Inventory.add`` and
    ``Inventory.remove``), ``record_departures`` of departures, ``put_ports``/``delete_ports`` of
    display ports. One connection per ``StateDir``, used by one thread at a time (the agent's
    workers share it), closed when the ``StateDir`` goes.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._guard = threading.Lock()

    @property
    def database_path(self) -> Path:
        return self.path / DATABASE_FILE

    # -- reading ----------------------------------------------------------------------------------

    def load(self) -> Inventory:
        """The recorded inventory, or an empty one when none was ever written."""
        rows = self._rows(OWNED, DEPARTED)
        if rows is None:
            return self._legacy_inventory()
        try:
            owned = [OWNED.read(r) for r in rows[0]]
            departed = [DEPARTED.read(r) for r in rows[1]]
        except ValueError as exc:
            raise StateError(f"{self.database_path}: corrupt inventory: {exc}") from None
        return Inventory({e.uuid.lower(): e for e in owned}, {d.name: d for d in departed})

    def load_ports(self) -> dict[str, dict[str, int]]:
        """The display ports by guest name (``reconcilers.ports``), empty when none were recorded."""
        rows = self._rows(PORTS)
        if rows is None:
            return self._legacy_ports()
        out: dict[str, dict[str, int]] = {}
        try:
            for row in rows[0]:
                port = PORTS.read(row)
                out.setdefault(port.name, {})[port.kind] = port.port
        except ValueError as exc:
            raise StateError(f"{self.database_path}: corrupt display port table: {exc}") from None
        return out

    def _rows(self, *tables: _Table) -> list[list[tuple[object, ...]]] | None:
        """Every row of ``tables``, read in one transaction; None when there is no database yet."""
        with self._guard:
            db = self._connection(create=False)
            if db is None:
                return None
            try:
                with _transaction(db, "BEGIN"):
                    return [db.execute(t.select).fetchall() for t in tables]
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    # -- writing ----------------------------------------------------------------------------------

    def put(self, entry: OwnedDomain, displaced: Iterable[str] = ()) -> None:
        """Record ``entry`` and drop the ``displaced`` uuids (``Inventory.add``'s), in one transaction."""
        self._write([(OWNED.put, [OWNED.row(entry)]), (OWNED.delete, [(u,) for u in displaced])])

    def delete(self, uuids: Iterable[str]) -> None:
        """Drop the entries of ``uuids`` (absent ones are no error), in one transaction."""
        self._write([(OWNED.delete, [(u,) for u in uuids])])

    def record_departures(self, recorded: Iterable[Departure] = (), cleared: Iterable[str] = ()) -> None:
        """Record the departures ``recorded`` (replacing those of their names) and forget those of
        the names ``cleared``, in one transaction."""
        self._write([(DEPARTED.delete, [(n,) for n in cleared]),
                     (DEPARTED.put, [DEPARTED.row(d) for d in recorded])])

    def put_ports(self, name: str, ports: dict[str, int]) -> None:
        """``name``'s display ports are ``ports`` (kind -> port) now, and no others."""
        rows = [PORTS.row(_Port(name, kind, port)) for kind, port in sorted(ports.items())]
        self._write([(PORTS.delete, [(name,)]), (PORTS.put, rows)])

    def delete_ports(self, names: Iterable[str]) -> None:
        """Release every display port of ``names``, in one transaction."""
        self._write([(PORTS.delete, [(n,) for n in names])])

    def _write(self, batches: list[_Batch]) -> None:
        batches = [(sql, rows) for sql, rows in batches if rows]
        if not batches:
            return
        with self._guard:
            db = self._connection(create=True)
            assert db is not None
            try:
                with _transaction(db):
                    for sql, rows in batches:
                        db.executemany(sql, rows)
            except sqlite3.Error as exc:
                raise self._error(exc, "cannot write inventory") from None

    # -- opening, creating, migrating -------------------------------------------------------------

    def _connection(self, create: bool) -> sqlite3.Connection | None:
        """The open database; ``None`` when there is none and ``create`` is false. Opening it
        brings its tables up to date, migrates the files before it into a new one, and finishes
        a migration a crash cut short."""
        if self._db is not None:
            return self._db
        if not self.database_path.exists():
            if not create:
                return None
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StateError(f"{self.path}: cannot write inventory: {exc.strerror or exc}") from None
        doing = "cannot write inventory" if create else "cannot read inventory"
        try:
            db = sqlite3.connect(self.database_path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc, doing) from None
        try:
            self._prepare(db)
        except sqlite3.Error as exc:
            db.close()
            # A -wal file holds committed transactions that only the shared memory reads.
            wal = Path(f"{self.database_path}-wal").exists()
            if create or wal or not isinstance(exc, sqlite3.OperationalError) or not _read_only_fs(self.path):
                raise self._error(exc, doing) from None
            return self._keep(self._open_read_only())
        except BaseException:
            db.close()
            raise
        return self._keep(db)

    def _keep(self, db: sqlite3.Connection | None) -> sqlite3.Connection | None:
        if db is not None:
            self._db = db
            weakref.finalize(self, db.close)
        return db

    def _open_read_only(self) -> sqlite3.Connection | None:
        """The database on a read-only filesystem (``plan`` on a read-only mount), where SQLite's WAL
        cannot create the shared-memory file its readers use, and without a ``-wal`` file (its
        writer closed it: the database file holds everything): opened ``immutable`` (nothing can
        change it there), its tables as they are. None when it holds no committed state (the files
        before it are read then, as before a migration)."""
        uri = f"file:{urllib.parse.quote(str(self.database_path))}?immutable=1"
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            if not _recorded_version(db, self.database_path):
                db.close()
                return None
            self._check_legacy(_migrated(db), rename=False)
        except sqlite3.Error as exc:
            db.close()
            raise self._error(exc) from None
        except BaseException:
            db.close()
            raise
        return db

    def _prepare(self, db: sqlite3.Connection) -> None:
        """WAL, full sync, the tables up to date (filled from the files before the database when
        it is new), and the migrated files set aside."""
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StateError(f"{self.database_path}: cannot use the WAL journal (got {mode})")
        db.execute("PRAGMA synchronous=FULL")
        with _transaction(db):
            if _ensure_schema(db, self.database_path):
                self._migrate(db)
            known = _migrated(db)
        self._check_legacy(known, rename=True)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Fill a new database from the files before it (in the transaction that creates it)."""
        inventory = self._legacy_inventory()
        ports = self._legacy_ports()
        db.executemany(OWNED.put, [OWNED.row(e) for e in inventory.domains.values()])
        db.executemany(DEPARTED.put, [DEPARTED.row(d) for d in inventory.departed.values()])
        db.executemany(PORTS.put, [PORTS.row(_Port(name, kind, port))
                                   for name, held in ports.items() for kind, port in held.items()])
        for name in (LEGACY_INVENTORY, LEGACY_PORTS):
            digest = _digest(self.path / name)
            if digest is not None:
                db.execute(_MIGRATIONS.put, _MIGRATIONS.row(_Migrated(name, digest)))

    def _check_legacy(self, known: dict[str, str], *, rename: bool) -> None:
        """Refuse a file before the database that it was not migrated from (``known``: their
        digests); with ``rename``, set the migrated ones aside (a migration cut short)."""
        moved = False
        for name in (LEGACY_INVENTORY, LEGACY_PORTS):
            legacy = self.path / name
            digest = _digest(legacy)
            if digest is None:
                continue
            if known.get(name) != digest:
                raise StateError(f"{self.path}: both {DATABASE_FILE} and {name} exist ({name} was written "
                                 "after the migration, by an older xenreconcile?); keep the right one and "
                                 "move the other aside")
            if not rename:
                continue
            try:
                os.replace(legacy, self.path / (name + MIGRATED))
            except OSError as exc:
                raise StateError(f"{legacy}: cannot rename: {exc.strerror or exc}") from None
            moved = True
        if moved:
            _sync_dir(self.path)

    def _legacy_inventory(self) -> Inventory:
        """``inventory.json`` as the agent before the database wrote it (empty when absent)."""
        data = self._legacy(LEGACY_INVENTORY, "inventory")
        if data is None:
            return Inventory()
        path = self.path / LEGACY_INVENTORY
        try:
            entries = [OwnedDomain(**entry) for entry in data["domains"]]
            departed = [Departure(**entry) for entry in data.get("departed", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{path}: corrupt inventory: {exc}") from None
        return Inventory({e.uuid.lower(): e for e in entries}, {d.name: d for d in departed})

    def _legacy_ports(self) -> dict[str, dict[str, int]]:
        """``ports.json`` as the agent before the database wrote it (empty when absent)."""
        data = self._legacy(LEGACY_PORTS, "display port table")
        if data is None:
            return {}
        try:
            ports = data["ports"]
            if not all(isinstance(v, dict) and all(isinstance(p, int) for p in v.values())
                       for v in ports.values()):
                raise ValueError("a port is not an integer")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{self.path / LEGACY_PORTS}: corrupt display port table: {exc}") from None
        return ports

    def _legacy(self, name: str, what: str) -> dict[str, Any] | None:
        """The decoded JSON file ``name`` of the format before the database; None when absent."""
        path = self.path / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            data = json.loads(text)
            if data.get("version") != _LEGACY_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
        except (ValueError, AttributeError) as exc:
            raise StateError(f"{path}: corrupt {what}: {exc}") from None
        return data

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


@contextlib.contextmanager
def _transaction(db: sqlite3.Connection, begin: str = "BEGIN IMMEDIATE") -> Iterator[None]:
    """One transaction (the connection is in autocommit mode, so DDL is inside it too): committed
    (and synced) on leaving, rolled back on any error."""
    db.execute(begin)
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _ensure_schema(db: sqlite3.Connection, where: Path) -> bool:
    """Create the tables, or bring an older database's up to date (in the caller's transaction): a
    version this agent does not know is refused, and dataclass fields without a column get one
    (with the field's default). True when the database was new (nothing had been committed)."""
    db.execute("CREATE TABLE IF NOT EXISTS schema (version INTEGER NOT NULL)")
    fresh = not _recorded_version(db, where)
    if fresh:
        db.execute("INSERT INTO schema (version) VALUES (?)", (SCHEMA_VERSION,))
    for table in _TABLES:
        db.execute(table.create)
        have = {row[1] for row in db.execute(f"PRAGMA table_info({table.name})")}
        for column in table.columns:
            if column.name not in have:
                db.execute(f"ALTER TABLE {table.name} ADD COLUMN {column.declaration}")
    return fresh


def _recorded_version(db: sqlite3.Connection, where: Path) -> bool:
    """True when the database records its layout version (this agent's: another is refused),
    False when none was committed yet."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema'").fetchone() is None:
        return False
    versions = [v for (v,) in db.execute("SELECT version FROM schema")]
    if versions and versions != [SCHEMA_VERSION]:
        found = versions[0] if len(versions) == 1 else versions
        raise StateError(f"{where}: unsupported schema version {found} "
                         f"(this xenreconcile reads version {SCHEMA_VERSION})")
    return bool(versions)


def _migrated(db: sqlite3.Connection) -> dict[str, str]:
    """The files the database was migrated from, and their digests."""
    return dict(db.execute(f"SELECT file, sha256 FROM {_MIGRATIONS.name}").fetchall())


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _digest(path: Path) -> str | None:
    """SHA-256 of the file at ``path``; None when there is none."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"{path}: cannot read: {exc.strerror}") from None


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
