"""The desired-directory watcher on a real filesystem with real watchdog observers."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from agent.daemon.watch import Change, DesiredWatcher, classify, parents_to_watch

WAIT = 5.0


class Recorder:
    def __init__(self) -> None:
        self.changes: queue.Queue[Change] = queue.Queue()

    def __call__(self, change: Change) -> None:
        self.changes.put(change)

    def next(self, timeout: float = WAIT) -> Change:
        return self.changes.get(timeout=timeout)

    def until(self, predicate, timeout: float = WAIT) -> list[Change]:  # type: ignore[no-untyped-def]
        """Collect batches until ``predicate(all batches so far)`` holds."""
        seen: list[Change] = []
        deadline = time.monotonic() + timeout
        while not predicate(seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"condition not met; batches: {seen}")
            try:
                seen.append(self.changes.get(timeout=remaining))
            except queue.Empty:
                continue
        return seen

    def quiet(self, seconds: float = 0.4) -> list[Change]:
        time.sleep(seconds)
        out = []
        while not self.changes.empty():
            out.append(self.changes.get_nowait())
        return out


class Hooks:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.overflows = 0
        self.rescans: list[str] = []

    def event(self, kind: str) -> None:
        self.events.append(kind)

    def overflow(self) -> None:
        self.overflows += 1

    def rescan(self, reason: str) -> None:
        self.rescans.append(reason)


@pytest.fixture(params=["inotify", "polling"])
def watched(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, Recorder, Hooks]]:
    directory = tmp_path / "desired"
    directory.mkdir()
    rec, hooks = Recorder(), Hooks()
    w = DesiredWatcher(directory, rec, debounce=0.05, polling=request.param == "polling",
                       poll_interval=0.1, hooks=hooks)
    w.start()
    time.sleep(0.15)
    yield directory, rec, hooks
    w.stop()


def paths(changes: list[Change]) -> set[Path]:
    return set().union(*(c.paths for c in changes)) if changes else set()


@pytest.mark.parametrize(("name", "kind"), [
    ("web.xml", "file"), ("db.cfg", "file"), (".web.xml.swp", "ignore"), ("web.xml~", "ignore"),
    (".#web.xml", "ignore"), ("4913", "ignore"), ("#web.xml#", "ignore"), (".hidden", "ignore"),
    ("web.xml.tmp", "ignore"), ("..data", "swap"), ("..2024_01_01_00_00_00.123", "swap"),
])
def test_classify(name: str, kind: str) -> None:
    assert classify(name) == kind


def test_atomic_rename_reports_the_destination_only(watched: tuple[Path, Recorder, Hooks]) -> None:
    directory, rec, _ = watched
    tmp = directory / ".web.xml.tmp123"
    tmp.write_text("<domain/>")
    os.rename(tmp, directory / "web.xml")
    got = rec.until(lambda seen: directory / "web.xml" in paths(seen))
    assert paths(got + rec.quiet()) == {directory / "web.xml"}


def test_deletion_is_reported(watched: tuple[Path, Recorder, Hooks]) -> None:
    directory, rec, _ = watched
    (directory / "db.cfg").write_text("name='db'\n")
    rec.until(lambda seen: directory / "db.cfg" in paths(seen))
    rec.quiet()
    (directory / "db.cfg").unlink()
    assert rec.until(lambda seen: directory / "db.cfg" in paths(seen))


def test_vim_style_save_ignores_swap_files_and_probe(watched: tuple[Path, Recorder, Hooks]) -> None:
    directory, rec, _ = watched
    target = directory / "web.xml"
    target.write_text("v1")
    rec.until(lambda seen: target in paths(seen))
    rec.quiet()
    # vim: swap file, 4913 probe, backup by rename, write new file, remove backup and swap.
    (directory / ".web.xml.swp").write_text("swap")
    (directory / "4913").write_text("")
    (directory / "4913").unlink()
    os.rename(target, directory / "web.xml~")
    target.write_text("v2")
    (directory / "web.xml~").unlink()
    (directory / ".web.xml.swp").unlink()
    got = rec.until(lambda seen: target in paths(seen)) + rec.quiet()
    assert paths(got) == {target}
    assert not any(c.rescan for c in got)


def test_thousand_file_burst_is_coalesced(watched: tuple[Path, Recorder, Hooks]) -> None:
    directory, rec, _ = watched
    expected = {directory / f"guest{i:04d}.cfg" for i in range(1000)}
    for path in expected:
        tmp = path.with_name("." + path.name + ".tmp")
        tmp.write_text(f"name = '{path.stem}'\n")
        os.rename(tmp, path)
    got = rec.until(lambda seen: paths(seen) >= expected, timeout=20) + rec.quiet()
    assert paths(got) == expected
    # Every file appears in exactly one batch, and the debounce coalesced the burst into far fewer
    # batches than files (how many depends on the machine's load, so only the order of magnitude).
    assert sum(len(c.paths) for c in got) == 1000
    assert len(got) < 100


def configmap_publish(directory: Path, files: dict[str, str], stamp: str) -> None:
    """What the kubelet does: new timestamped dir, ``..data_tmp`` link, rename over ``..data``."""
    data_dir = directory / f"..{stamp}"
    data_dir.mkdir()
    for name, text in files.items():
        (data_dir / name).write_text(text)
    old = os.readlink(directory / "..data") if (directory / "..data").is_symlink() else None
    os.symlink(data_dir.name, directory / "..data_tmp")
    os.rename(directory / "..data_tmp", directory / "..data")
    for name in files:
        if not (directory / name).is_symlink():
            os.symlink(f"..data/{name}", directory / name)
    if old:
        for child in (directory / old).iterdir():
            child.unlink()
        (directory / old).rmdir()


def test_configmap_data_swap_triggers_a_rescan(watched: tuple[Path, Recorder, Hooks]) -> None:
    directory, rec, hooks = watched
    configmap_publish(directory, {"web.xml": "v1"}, "2024_01_01")
    rec.until(lambda seen: any(c.rescan for c in seen))
    rec.quiet()
    configmap_publish(directory, {"web.xml": "v2"}, "2024_01_02")
    got = rec.until(lambda seen: any(c.rescan for c in seen))
    assert (directory / "web.xml").read_text() == "v2"
    assert any("swap" in r for c in got for r in c.reasons)
    assert any("swap" in r for r in hooks.rescans)


def test_git_sync_worktree_swap_follows_the_link(tmp_path: Path) -> None:
    """git-sync: ``root/current -> .worktrees/A``; the agent watches ``root/current/desired``."""
    root = tmp_path / "root"
    for rev in ("A", "B"):
        (root / ".worktrees" / rev / "desired").mkdir(parents=True)
        (root / ".worktrees" / rev / "desired" / "web.xml").write_text(rev)
    os.symlink(".worktrees/A", root / "current")
    directory = root / "current" / "desired"
    assert str((root).resolve()) in parents_to_watch(directory)
    rec = Recorder()
    w = DesiredWatcher(directory, rec, debounce=0.05)
    w.start()
    try:
        time.sleep(0.1)
        os.symlink(".worktrees/B", root / "tmp-link")
        os.rename(root / "tmp-link", root / "current")
        got = rec.until(lambda seen: any(c.rescan for c in seen))
        assert any("swap" in r or "moved" in r for c in got for r in c.reasons)
        rec.quiet()
        # The watch followed the swap: an edit in the new worktree is seen, one in the old is not.
        (root / ".worktrees" / "A" / "desired" / "old.xml").write_text("x")
        (root / ".worktrees" / "B" / "desired" / "new.xml").write_text("x")
        got = rec.until(lambda seen: directory / "new.xml" in paths(seen)) + rec.quiet()
        assert directory / "old.xml" not in paths(got)
    finally:
        w.stop()


def test_directory_replaced_by_rename_is_followed(tmp_path: Path) -> None:
    directory = tmp_path / "desired"
    directory.mkdir()
    rec = Recorder()
    w = DesiredWatcher(directory, rec, debounce=0.05)
    w.start()
    try:
        time.sleep(0.1)
        staged = tmp_path / "desired.new"
        staged.mkdir()
        (staged / "web.xml").write_text("x")
        os.rename(directory, tmp_path / "desired.old")
        os.rename(staged, directory)
        rec.until(lambda seen: any(c.rescan for c in seen))
        rec.quiet()
        (directory / "db.xml").write_text("x")
        assert rec.until(lambda seen: directory / "db.xml" in paths(seen))
    finally:
        w.stop()


def test_inotify_overflow_triggers_a_rescan(tmp_path: Path) -> None:
    """Drive watchdog's own IN_Q_OVERFLOW path (it logs and drops the event) and see a rescan."""
    rec, hooks = Recorder(), Hooks()
    w = DesiredWatcher(tmp_path, rec, debounce=0.05, hooks=hooks)
    w.start()
    try:
        InotifyFD.get_instance().handle_event(
            InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))
        got = rec.until(lambda seen: any(c.rescan for c in seen))
        assert any("overflow" in r for c in got for r in c.reasons)
        assert hooks.overflows == 1
    finally:
        w.stop()


def test_dead_emitter_is_detected_and_recovered(tmp_path: Path) -> None:
    rec, hooks = Recorder(), Hooks()
    w = DesiredWatcher(tmp_path, rec, debounce=0.05, hooks=hooks)
    w.start()
    try:
        assert w.healthy()
        assert w._observer is not None
        for emitter in list(w._observer.emitters):
            emitter.stop()
            emitter.join(2)
        assert not w.healthy()
        w.recover("emitter died")
        got = rec.until(lambda seen: any(c.rescan for c in seen))
        assert any("emitter died" in r for c in got for r in c.reasons)
        assert w.healthy()
        (tmp_path / "web.xml").write_text("x")
        assert rec.until(lambda seen: tmp_path / "web.xml" in paths(seen))
    finally:
        w.stop()


def test_watch_limit_error_falls_back_to_rescan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from watchdog.observers.api import BaseObserver

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BaseObserver, "schedule", refuse)
    rec, hooks = Recorder(), Hooks()
    w = DesiredWatcher(tmp_path, rec, debounce=0.05, hooks=hooks)
    w.start()
    try:
        got = rec.until(lambda seen: any(c.rescan for c in seen))
        assert any("watch failed" in r for c in got for r in c.reasons)
        assert not w.healthy()
        assert "error" in hooks.events
    finally:
        w.stop()


def test_stop_is_prompt_and_idempotent(tmp_path: Path) -> None:
    w = DesiredWatcher(tmp_path, Recorder(), debounce=0.05)
    w.start()
    t = threading.Thread(target=w.stop)
    t.start()
    t.join(5)
    assert not t.is_alive()
    w.stop()


def test_directory_created_after_start_is_picked_up(tmp_path: Path) -> None:
    """git-sync may not have cloned yet when the agent starts: the parent watch notices the directory."""
    directory = tmp_path / "desired"
    rec = Recorder()
    w = DesiredWatcher(directory, rec, debounce=0.05)
    w.start()
    try:
        time.sleep(0.1)
        directory.mkdir()
        rec.until(lambda seen: any(c.rescan for c in seen))
        rec.quiet()
        (directory / "web.xml").write_text("x")
        assert rec.until(lambda seen: directory / "web.xml" in paths(seen))
    finally:
        w.stop()
