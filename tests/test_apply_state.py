"""The state directory (ownership inventory) and the status book the reconciler writes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reconcilers.state import CRASH, SAVED, Departure, Inventory, OwnedDomain, StateDir, StateError
from reconcilers.status import StatusBook


def test_inventory_round_trips_and_replaces_entries_by_name(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    assert state.load().domains == {}
    assert not (tmp_path / "state").exists()  # reading creates nothing
    inventory = Inventory()
    for entry in (OwnedDomain("web", "AAAAAAAA-0000-0000-0000-000000000001", "/d/web.xml", "h1"),
                  OwnedDomain("web", "aaaaaaaa-0000-0000-0000-000000000002", "/d/web.xml", "h2")):
        state.put(entry, inventory.add(entry))
    loaded = StateDir(tmp_path / "state").load()
    assert list(loaded.domains) == ["aaaaaaaa-0000-0000-0000-000000000002"]
    assert loaded.by_name("web").content_hash == "h2"
    assert loaded.owns("AAAAAAAA-0000-0000-0000-000000000002")
    assert {p.name for p in (tmp_path / "state").iterdir()} <= {
        "inventory.db", "inventory.db-wal", "inventory.db-shm"}  # no half-built database left


def test_put_and_delete_change_only_their_entries(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    entries = [OwnedDomain(f"g{i}", f"00000000-0000-0000-0000-{i:012d}", f"/d/g{i}.xml", f"h{i}", i == 2)
               for i in range(4)]
    for entry in entries:
        state.put(entry)
    state.put(OwnedDomain("g1", entries[1].uuid.upper(), "/d/g1.cfg", "h1b"))  # same uuid, other case
    state.delete([entries[0].uuid, "ffffffff-0000-0000-0000-000000000000"])  # an absent uuid is no error
    loaded = StateDir(tmp_path).load().domains
    assert [(e.name, e.file, e.adopted) for e in loaded.values()] == [
        ("g1", "/d/g1.cfg", False), ("g2", "/d/g2.xml", True), ("g3", "/d/g3.xml", False)]
    assert loaded[entries[1].uuid] == OwnedDomain("g1", entries[1].uuid.upper(), "/d/g1.cfg", "h1b")


def test_a_put_is_durable_before_it_returns(tmp_path: Path) -> None:
    """What the reconciler relies on to record a uuid before libxl is asked for the guest: another
    process (a restarted agent) sees the entry as soon as ``put`` returns."""
    StateDir(tmp_path).put(OwnedDomain("web", "00000000-0000-0000-0000-00000000000a"))
    script = ("import sys\nfrom reconcilers.state import StateDir\n"
              f"print(*[e.name for e in StateDir({str(tmp_path)!r}).load().domains.values()])")
    seen = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert seen.stdout.split() == ["web"]
    with sqlite3.connect(tmp_path / "inventory.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_corrupt_inventory_is_an_error_not_an_empty_inventory(tmp_path: Path) -> None:
    (tmp_path / "inventory.json").write_text('{"version": 1, "domains": [{"nme": "x"}]}')
    with pytest.raises(StateError, match="corrupt inventory"):
        StateDir(tmp_path).load()
    (tmp_path / "inventory.json").write_text(json.dumps({"version": 99, "domains": []}))
    with pytest.raises(StateError, match="unsupported version"):
        StateDir(tmp_path).load()


def test_a_damaged_database_is_an_error_of_one_line(tmp_path: Path) -> None:
    (tmp_path / "inventory.db").write_bytes(b"not a database, but long enough to look like a header" * 40)
    with pytest.raises(StateError) as err:
        StateDir(tmp_path).load()
    assert str(err.value) == f"{tmp_path / 'inventory.db'}: corrupt inventory: file is not a database"
    with pytest.raises(StateError, match="corrupt inventory"):
        StateDir(tmp_path).put(OwnedDomain("web", "00000000-0000-0000-0000-00000000000a"))


def test_a_row_the_fields_cannot_hold_is_corruption(tmp_path: Path) -> None:
    StateDir(tmp_path).put(OwnedDomain("web", "00000000-0000-0000-0000-00000000000a"))
    with sqlite3.connect(tmp_path / "inventory.db") as db:
        db.execute("UPDATE owned SET adopted = 7")
    with pytest.raises(StateError, match=r"inventory.db: corrupt inventory: adopted is 7$"):
        StateDir(tmp_path).load()


def test_unwritable_state_dir_raises_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot write inventory"):
        StateDir(blocker / "state").put(OwnedDomain("web", "00000000-0000-0000-0000-00000000000a"))
    with pytest.raises(StateError, match=r"state/inventory.json: cannot read: Not a directory$"):
        StateDir(blocker / "state").load()  # a state directory that cannot be one is not an empty one


def _legacy(path: Path, *entries: OwnedDomain) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "inventory.json").write_text(json.dumps({"version": 1, "domains": [vars(e) for e in entries]}))


def test_inventory_json_is_migrated_by_the_first_write_and_renamed_aside(tmp_path: Path) -> None:
    old = [OwnedDomain("db", "00000000-0000-0000-0000-0000000000db", "/d/db.xml", "h", True),
           OwnedDomain("web", "00000000-0000-0000-0000-00000000000a", "/d/web.xml", None)]
    _legacy(tmp_path, *old)
    assert list(StateDir(tmp_path).load().domains.values()) == old  # read as it is: nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.json"]
    state = StateDir(tmp_path)
    state.put(OwnedDomain("new", "00000000-0000-0000-0000-0000000000ee"))
    assert not (tmp_path / "inventory.json").exists()
    assert json.loads((tmp_path / "inventory.json.migrated").read_text())["domains"][0]["name"] == "db"
    assert [e.name for e in StateDir(tmp_path).load().domains.values()] == ["db", "new", "web"]
    assert StateDir(tmp_path).load().by_name("db") == old[0]


def test_an_inventory_json_written_after_the_migration_is_refused(tmp_path: Path) -> None:
    """An older agent started after the migration writes inventory.json again: which record is right
    is not guessed."""
    StateDir(tmp_path).put(OwnedDomain("web", "00000000-0000-0000-0000-00000000000a"))
    _legacy(tmp_path, OwnedDomain("db", "00000000-0000-0000-0000-0000000000db"))
    with pytest.raises(StateError, match=r"both inventory.db and inventory.json exist"):
        StateDir(tmp_path).load()


def test_a_migration_cut_short_is_redone_or_finished(tmp_path: Path) -> None:
    entry = OwnedDomain("web", "00000000-0000-0000-0000-00000000000a")
    # Killed before the migration committed: the database file exists, with nothing in it (SQLite
    # drops an uncommitted transaction), and inventory.json is still there: migrated again.
    _legacy(tmp_path, entry)
    sqlite3.connect(tmp_path / "inventory.db").execute("PRAGMA journal_mode=WAL").fetchone()
    assert list(StateDir(tmp_path).load().domains.values()) == [entry]
    assert not (tmp_path / "inventory.json").exists()
    # Killed between the commit and the rename: the database knows the file's digest, so the next
    # open (a read too) renames it aside instead of refusing it.
    (tmp_path / "inventory.json").write_bytes((tmp_path / "inventory.json.migrated").read_bytes())
    assert list(StateDir(tmp_path).load().domains.values()) == [entry]
    assert not (tmp_path / "inventory.json").exists()
    # Nothing to migrate: the database alone (SQLite makes its creation atomic).
    fresh = StateDir(tmp_path / "fresh")
    fresh.put(entry)
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == [
        "inventory.db", "inventory.db-shm", "inventory.db-wal"]


def test_departures_and_display_ports_are_migrated_with_the_inventory(tmp_path: Path) -> None:
    """inventory.json's departures (a saved guest's libxl config included) and ports.json move into
    the database with the first write; read as they are before it."""
    web = OwnedDomain("web", "00000000-0000-0000-0000-00000000000a", "/d/web.xml", "h")
    gone = Departure("db", SAVED, "00000000-0000-0000-0000-0000000000db", "h2", 12.5, "/save/db.save",
                     {"c_info": {"name": "db"}, "b_info": {"max_memkb": 262144}})
    (tmp_path / "inventory.json").write_text(json.dumps(
        {"version": 1, "domains": [vars(web)], "departed": [vars(gone)]}))
    (tmp_path / "ports.json").write_text(json.dumps(
        {"version": 1, "ports": {"web": {"vnc": 5901, "spice": 5902}, "db": {"vnc": 5900}}}))
    before = StateDir(tmp_path)
    assert before.load() == Inventory({web.uuid: web}, {"db": gone})
    assert before.load_ports() == {"web": {"vnc": 5901, "spice": 5902}, "db": {"vnc": 5900}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inventory.json", "ports.json"]
    before.put_ports("new", {"vnc": 5903})
    assert sorted(p.name for p in tmp_path.iterdir() if "json" in p.name) == [
        "inventory.json.migrated", "ports.json.migrated"]
    after = StateDir(tmp_path)
    assert after.load() == Inventory({web.uuid: web}, {"db": gone})
    assert after.load_ports() == {"db": {"vnc": 5900}, "new": {"vnc": 5903},
                                  "web": {"spice": 5902, "vnc": 5901}}


def test_a_ports_json_written_after_the_migration_is_refused(tmp_path: Path) -> None:
    StateDir(tmp_path).put_ports("web", {"vnc": 5900})
    (tmp_path / "ports.json").write_text(json.dumps({"version": 1, "ports": {"web": {"vnc": 5907}}}))
    with pytest.raises(StateError, match=r"both inventory.db and ports.json exist"):
        StateDir(tmp_path).load_ports()


def test_departures_and_ports_are_recorded_one_change_at_a_time(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.record_departures([Departure("a", SAVED, config={"c_info": {}}), Departure("b", CRASH, time=3.0)])
    state.record_departures([Departure("c", CRASH)], cleared=["a", "zz"])  # an absent name is no error
    assert StateDir(tmp_path).load().departed == {"b": Departure("b", CRASH, time=3.0),
                                                  "c": Departure("c", CRASH)}
    state.put_ports("web", {"vnc": 5900, "spice": 5901})
    state.put_ports("db", {"vnc": 5902})
    state.put_ports("web", {"vnc": 5903})  # the spice display went: its port with it
    state.delete_ports(["db", "zz"])
    assert StateDir(tmp_path).load_ports() == {"web": {"vnc": 5903}}


def test_a_departure_or_port_row_the_fields_cannot_hold_is_corruption(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    state.record_departures([Departure("a", SAVED, config={"c_info": {}})])
    state.put_ports("a", {"vnc": 5900})
    with sqlite3.connect(tmp_path / "inventory.db") as db:
        db.execute("UPDATE departed SET config = '[1]'")
        db.execute("UPDATE ports SET port = 'x'")
    db.close()
    with pytest.raises(StateError, match=r"inventory.db: corrupt inventory: config is '\[1\]'$"):
        StateDir(tmp_path).load()
    with pytest.raises(StateError, match=r"inventory.db: corrupt display port table: port is 'x'$"):
        StateDir(tmp_path).load_ports()


def test_a_read_only_filesystem_is_read_with_or_without_a_writer_s_wal(tmp_path: Path) -> None:
    """``plan`` on a read-only mount: SQLite cannot create its shared-memory file there. A database
    closed cleanly is read alone; one whose writer is still open (or was killed) has committed
    rows only in its -wal file, which is read too."""
    from tests.test_hostile_matrix import _read_only_mount

    wrap = _read_only_mount(tmp_path)
    if wrap is None:
        pytest.skip("no user and mount namespaces here (unshare -rm) to make a read-only filesystem")
    state = str(tmp_path / "state")
    script = ("from reconcilers.state import StateDir\n"
              f"print(*sorted(e.name for e in StateDir({state!r}).load().domains.values()))")

    def names_read_only() -> list[str]:
        done = subprocess.run([*wrap, sys.executable, "-c", script], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parent.parent)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    subprocess.run([sys.executable, "-c", "from reconcilers.state import OwnedDomain, StateDir\n"
                    f"StateDir({state!r}).put(OwnedDomain('a', '00000000-0000-0000-0000-00000000000a'))"],
                   check=True, cwd=Path(__file__).resolve().parent.parent)
    assert not (tmp_path / "state" / "inventory.db-wal").exists()  # closed: checkpointed, WAL gone
    assert names_read_only() == ["a"]
    writer = StateDir(tmp_path / "state")
    writer.put(OwnedDomain("b", "00000000-0000-0000-0000-00000000000b"))  # open: "b" is in the WAL only
    assert (tmp_path / "state" / "inventory.db-wal").exists()
    assert names_read_only() == ["a", "b"]


def test_an_older_database_gets_the_new_columns_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    """A field added to OwnedDomain is one column more: databases written before it get it, with
    the field's default, the first time they are opened."""
    with sqlite3.connect(tmp_path / "inventory.db") as db:
        db.execute("CREATE TABLE schema (version INTEGER NOT NULL)")
        db.execute("INSERT INTO schema VALUES (1)")
        db.execute("CREATE TABLE owned (name TEXT NOT NULL, uuid TEXT NOT NULL PRIMARY KEY COLLATE NOCASE)")
        db.execute("INSERT INTO owned VALUES ('web', '00000000-0000-0000-0000-00000000000a')")
    db.close()
    assert list(StateDir(tmp_path).load().domains.values()) == [
        OwnedDomain("web", "00000000-0000-0000-0000-00000000000a", None, None, False)]
    with sqlite3.connect(tmp_path / "inventory.db") as db:
        assert [r[1] for r in db.execute("PRAGMA table_info(owned)")] == [
            "name", "uuid", "file", "content_hash", "adopted"]
        db.execute("UPDATE schema SET version = 2")
    db.close()
    with pytest.raises(StateError, match="unsupported schema version 2 .this xenreconcile reads version 1"):
        StateDir(tmp_path).load()


def test_status_keeps_the_transition_time_across_repeated_results() -> None:
    now = [100.0]
    book = StatusBook(clock=lambda: now[0])
    book.record("web", "drifted", file="/d/web.xml", action="set-memory")
    now[0] = 200.0
    again = book.record("web", "drifted")
    assert (again.last_transition, again.last_time) == (100.0, 200.0)
    assert (again.file, again.last_action) == ("/d/web.xml", "set-memory")
    now[0] = 300.0
    failed = book.record("web", "error", error="create: boom")
    assert (failed.last_transition, failed.last_error) == (300.0, "create: boom")
    assert book.counts()["error"] == 1 and book.counts()["in-sync"] == 0
    book.forget("web")
    assert book.get("web") is None
    with pytest.raises(ValueError):
        book.record("web", "sideways")


def test_the_state_directory_has_one_writer_at_a_time(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    with state.exclusive():
        assert (tmp_path / "state" / "lock").read_text().strip() == str(os.getpid())
        with pytest.raises(StateError, match=rf"in use by another xenreconcile \(pid {os.getpid()}\)"), \
                StateDir(tmp_path / "state").exclusive():
            pass
    with state.exclusive():  # released on exit
        pass


def test_the_lock_dies_with_its_holder(tmp_path: Path) -> None:
    """flock, not a pid file: a SIGKILLed agent leaves nothing that blocks its restart."""
    script = ("import time\nfrom reconcilers.state import StateDir\n"
              f"with StateDir({str(tmp_path)!r}).exclusive():\n    print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StateError, match=f"pid {holder.pid}"), StateDir(tmp_path).exclusive():
            pass
    finally:
        holder.kill()
        holder.wait()
    with StateDir(tmp_path).exclusive():
        pass
