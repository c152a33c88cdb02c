"""The state directory (ownership inventory) and the status book the reconciler writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconcilers.state import Inventory, OwnedDomain, StateDir, StateError
from reconcilers.status import StatusBook


def test_inventory_round_trips_and_replaces_entries_by_name(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    assert state.load().domains == {}
    inventory = Inventory()
    inventory.add(OwnedDomain("web", "AAAAAAAA-0000-0000-0000-000000000001", "/d/web.xml", "h1"))
    inventory.add(OwnedDomain("web", "aaaaaaaa-0000-0000-0000-000000000002", "/d/web.xml", "h2"))
    state.save(inventory)
    loaded = state.load()
    assert list(loaded.domains) == ["aaaaaaaa-0000-0000-0000-000000000002"]
    assert loaded.by_name("web").content_hash == "h2"
    assert loaded.owns("AAAAAAAA-0000-0000-0000-000000000002")
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["inventory.json"]  # no temp files left


def test_corrupt_inventory_is_an_error_not_an_empty_inventory(tmp_path: Path) -> None:
    (tmp_path / "inventory.json").write_text('{"version": 1, "domains": [{"nme": "x"}]}')
    with pytest.raises(StateError, match="corrupt inventory"):
        StateDir(tmp_path).load()
    (tmp_path / "inventory.json").write_text(json.dumps({"version": 99, "domains": []}))
    with pytest.raises(StateError, match="unsupported version"):
        StateDir(tmp_path).load()


def test_unwritable_state_dir_raises_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot write inventory"):
        StateDir(blocker / "state").save(Inventory())


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
