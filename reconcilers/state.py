"""The agent's state directory: the inventory of domains it owns, as one JSON file.

Like Terraform's state file and Flux's inventory, this is the ownership record that survives
restarts of the agent, next to the marker in the guest's ``c_info.xsdata``; it is also the only
record of guests adopted with ``Policy.adopt`` (whose xsdata the agent never wrote). Entries are keyed
by uuid, because a name can be reused by someone else's guest after ours is gone. Writes are atomic
(temporary file, fsync, rename, fsync of the directory), so a crash leaves the old or the new
inventory, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libxl.errors import XenReconcileError

#: Where the agent keeps its state unless told otherwise.
DEFAULT_STATE_DIR = Path("/var/lib/xenreconcile")
INVENTORY_FILE = "inventory.json"
#: Display ports by guest name (``reconcilers.ports``).
PORTS_FILE = "ports.json"
LOCK_FILE = "lock"
_VERSION = 1


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
    """Owned domains by uuid. Plain data: ``StateDir`` loads and saves it; change it through
    ``add``/``remove`` (they keep the by-name index that spares a resync one scan per domain)."""
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

    def add(self, entry: OwnedDomain) -> None:
        """Record ``entry``, replacing older entries of the same uuid or name (a recreated guest)."""
        for key in self._index().pop(entry.name, []):
            del self.domains[key]
        self.remove(entry.uuid)
        self.domains[entry.uuid.lower()] = entry
        self._index()[entry.name] = [entry.uuid.lower()]

    def remove(self, uuid: str) -> None:
        entry = self.domains.pop(uuid.lower(), None)
        if entry is not None and self._names is not None:
            keys = self._names[entry.name]
            keys.remove(uuid.lower())
            if not keys:
                del self._names[entry.name]


class StateDir:
    """One state directory; created on first save."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def inventory_path(self) -> Path:
        return self.path / INVENTORY_FILE

    def load(self) -> Inventory:
        """The saved inventory, or an empty one when none was ever saved."""
        try:
            text = self.inventory_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Inventory()
        except OSError as exc:
            raise StateError(f"{self.inventory_path}: cannot read: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            if data.get("version") != _VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            entries = [OwnedDomain(**entry) for entry in data["domains"]]
            departed = [Departure(**entry) for entry in data.get("departed", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{self.inventory_path}: corrupt inventory: {exc}") from exc
        return Inventory({e.uuid.lower(): e for e in entries}, {d.name: d for d in departed})

    def save(self, inventory: Inventory) -> None:
        # Flat records (not the recursive ``asdict``) and json's C encoder, which runs only without
        # ``indent``: the agent saves on every create, so this cost is paid once per guest.
        data = {"version": _VERSION,
                "domains": [vars(d) for d in sorted(inventory.domains.values(), key=lambda d: d.name)]}
        if inventory.departed:  # absent otherwise: an inventory without departures reads as before
            data["departed"] = [vars(d) for _, d in sorted(inventory.departed.items())]
        self._write(self.inventory_path, data, "inventory")

    def load_ports(self) -> dict[str, dict[str, int]]:
        """The display ports by guest name (``reconcilers.ports``), empty when none were saved."""
        path = self.path / PORTS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != _VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            ports = data["ports"]
            if not all(isinstance(v, dict) and all(isinstance(p, int) for p in v.values())
                       for v in ports.values()):
                raise ValueError("a port is not an integer")
            return ports
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"{path}: cannot read: {exc.strerror}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{path}: corrupt display port table: {exc}") from exc

    def save_ports(self, ports: dict[str, dict[str, int]]) -> None:
        self._write(self.path / PORTS_FILE, {"version": _VERSION, "ports": ports}, "display port table")

    def _write(self, target: Path, data: dict[str, object], what: str) -> None:
        """Atomically: a temporary file, fsync, rename, fsync of the directory."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", dir=self.path)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(json.dumps(data, sort_keys=True) + "\n")
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StateError(f"{self.path}: cannot write {what}: {exc.strerror or exc}") from exc

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
