"""The controller end to end in one process: real watcher, queue, reconciler and simulated host."""

from __future__ import annotations

import collections
import io
import json
import threading
from pathlib import Path

import pytest
import structlog

from agent import log as agentlog
from agent.daemon.desiredcache import affected_names
from agent.daemon.loop import Controller, Gate
from agent.daemon.queue import Outcome
from agent.daemon.systemd import Notifier
from libxl.hosts.uri import open_backend
from reconcilers.apply import Result
from reconcilers.desired import DesiredSet, load_desired
from tests.agent_helpers import names_on_host, running, settings, wait_for, write_atomic
from tests.reconcile_fixtures import domain_xml


def test_initial_sync_creates_guests_and_becomes_ready(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    for name in ("web", "db"):
        (Path(cfg.desired_dir) / f"{name}.xml").write_text(domain_xml(name, memory_mib=64))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready, what="ready")
        assert names_on_host(backend) == ["db", "web"]
        assert c.ready() == (True, "ready")
        assert c.healthy() == (True, "ok")
        doc = c.status_document()
        assert {n: s["state"] for n, s in doc["domains"].items()} == {"db": "in-sync", "web": "in-sync"}
        assert c.metrics.registry.get_sample_value("xenreconcile_last_full_sync_timestamp_seconds") > 0


def test_edit_create_and_delete_are_applied(tmp_path: Path) -> None:
    cfg = settings(tmp_path, prune="destroy")
    desired = Path(cfg.desired_dir)
    write_atomic(desired / "web.xml", domain_xml("web", memory_mib=256, current_mib=128))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready)

        def memory(name: str) -> int | None:
            return next((d.memory_kib for d in backend.list_domains() if d.name == name), None)

        assert memory("web") == 128 * 1024
        write_atomic(desired / "web.xml", domain_xml("web", memory_mib=256, current_mib=200))
        wait_for(lambda: memory("web") == 200 * 1024, what="memory target applied")
        write_atomic(desired / "db.xml", domain_xml("db", memory_mib=64))
        wait_for(lambda: "db" in names_on_host(backend), what="db created")
        (desired / "db.xml").unlink()
        wait_for(lambda: "db" not in names_on_host(backend), what="db pruned")
        assert names_on_host(backend) == ["web"]


def test_invalid_file_is_terminal_until_it_changes(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    desired = Path(cfg.desired_dir)
    write_atomic(desired / "web.xml", domain_xml("web", memory_mib=64))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready)
        calls: collections.Counter[str] = collections.Counter()
        outcomes: list[Outcome] = []
        handle = c._handle

        def counting(name: object) -> Outcome:
            calls[str(name)] += 1
            outcomes.append(handle(name))
            return outcomes[-1]

        c.pool._handler = counting
        write_atomic(desired / "web.xml", "<domain type='xen'><name>web</name>")  # broken XML
        wait_for(lambda: calls["web"] == 1, what="reconcile of the broken file")
        wait_for(lambda: c.queue.in_flight() == 0)
        threading.Event().wait(0.5)
        assert calls["web"] == 1, "an invalid file must not be retried"
        assert outcomes == [Outcome.TERMINAL]
        assert c.status.get("web").state == "invalid"
        assert names_on_host(backend) == ["web"], "the last good version stays in force"
        assert c.metrics.registry.get_sample_value("xenreconcile_desired_files_invalid") == 1
        write_atomic(desired / "web.xml", domain_xml("web", memory_mib=64))
        wait_for(lambda: calls["web"] == 2, what="reconcile after the fix")
        wait_for(lambda: c.status.get("web").state == "in-sync")


def test_thousand_file_burst_reconciles_each_domain_once(tmp_path: Path) -> None:
    """Coalescing is the agent's job: count reconciles (the simulated host's per-operation state copy
    makes 1,000 real creates a benchmark, not a test; the real path is covered with 50 below)."""
    cfg = settings(tmp_path, workers=4)
    desired = Path(cfg.desired_dir)
    with running(cfg) as c:
        wait_for(lambda: c.state.ready)
        calls: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def counting(name: str, desired_set: DesiredSet) -> Result:
            assert name in desired_set.domains
            with lock:
                calls[name] += 1
            return Result(name, "in-sync")

        c.reconciler.reconcile = counting  # type: ignore[method-assign]
        names = [f"g{i:04d}" for i in range(1000)]
        for name in names:
            write_atomic(desired / f"{name}.xml", domain_xml(name, memory_mib=16, vcpus=1))
        wait_for(lambda: len(calls) == 1000, timeout=60, what="1000 reconciles")
        threading.Event().wait(0.5)  # any duplicate would arrive within a debounce or two
        assert set(calls) == set(names)
        assert max(calls.values()) == 1, [n for n, k in calls.items() if k > 1][:10]
        assert c.metrics.registry.get_sample_value("xenreconcile_reconcile_total",
                                                   {"result": "success"}) == 1000


def test_burst_of_real_creates_converges(tmp_path: Path) -> None:
    cfg = settings(tmp_path, workers=4)
    desired = Path(cfg.desired_dir)
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready)
        names = [f"g{i:02d}" for i in range(50)]
        for name in names:
            write_atomic(desired / f"{name}.xml", domain_xml(name, memory_mib=16, vcpus=1))
        wait_for(lambda: names_on_host(backend) == names, timeout=60, what="50 guests created")
        wait_for(lambda: all(c.status.get(n) and c.status.get(n).state == "in-sync" for n in names))


def test_backend_event_requeues_the_domain_at_once(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    write_atomic(Path(cfg.desired_dir) / "web.xml",
                 domain_xml("web", memory_mib=64, lifecycle="<on_crash>coredump-restart</on_crash>"))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready)
        first = next(d for d in backend.list_domains() if d.name == "web")
        backend.crash(first.domid)  # libxl leaves it crashed: the dump and restart are the agent's
        # No resync is due for an hour: only the crash event can bring the guest back.
        wait_for(lambda: any(d.name == "web" and d.domid != first.domid and d.state != "crashed"
                             for d in backend.list_domains()), what="crashed guest recreated")
        assert names_on_host(backend) == ["web"]
        assert "simulated core of web" in (Path(cfg.dump_dir) / "web").read_text()


def test_overflow_rescan_picks_up_changes_the_watcher_missed(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    desired = Path(cfg.desired_dir)
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready)
        c.watcher.stop()  # events from here on are lost, as after an inotify overflow
        write_atomic(desired / "web.xml", domain_xml("web", memory_mib=64))
        threading.Event().wait(0.3)
        assert names_on_host(backend) == []
        c.watcher = c._new_watcher(c.settings)
        c.watcher.start()
        c.watcher.overflowed()
        wait_for(lambda: names_on_host(backend) == ["web"], what="rescan after overflow")
        assert c.metrics.registry.get_sample_value("xenreconcile_watch_overflows_total") == 1


def test_periodic_resync_repairs_drift_without_events(tmp_path: Path) -> None:
    cfg = settings(tmp_path, resync_interval=0.3, resync_jitter=0.0)
    write_atomic(Path(cfg.desired_dir) / "web.xml", domain_xml("web", memory_mib=64, current_mib=32))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.ready)
        dom = next(d for d in backend.list_domains() if d.name == "web")
        backend.set_memory_target(dom.domid, 48 * 1024)  # drift behind the agent's back
        wait_for(lambda: next(d for d in backend.list_domains() if d.name == "web").memory_kib == 32 * 1024,
                 what="drift repaired by resync")


def test_affected_names_sees_content_renames_and_breakage(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(domain_xml("a"))
    (tmp_path / "b.xml").write_text(domain_xml("b"))
    (tmp_path / "c.xml").write_text(domain_xml("c"))
    one = load_desired(tmp_path)
    assert affected_names(None, one) == {"a", "b", "c"}
    assert affected_names(one, one) == set()
    (tmp_path / "a.xml").write_text(domain_xml("a", memory_mib=1024))
    (tmp_path / "b.xml").rename(tmp_path / "b2.xml")
    (tmp_path / "c.xml").write_text("<domain>")
    two = load_desired(tmp_path, one)
    assert affected_names(one, two) == {"a", "b", "c"}
    # Re-reading an unchanged directory (the next batch of the same burst) affects nothing.
    assert affected_names(two, load_desired(tmp_path, two)) == set()


def test_gate_excludes_workers_during_a_full_resync() -> None:
    gate = Gate()
    order: list[str] = []
    entered = threading.Event()

    def worker() -> None:
        with gate.shared():
            order.append("worker")

    with gate.exclusive():
        t = threading.Thread(target=worker)
        t.start()
        entered.wait(0.2)
        order.append("resync")
    t.join(2)
    assert order == ["resync", "worker"]


def test_healthz_reports_a_stuck_loop(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    with running(cfg) as c:
        wait_for(lambda: c.state.ready)
        assert c.healthy() == (True, "ok")
        c.request_stop()  # the loop thread ends; its heartbeat goes stale
        wait_for(lambda: c.queue.shutting_down)
        c.state.heartbeat -= 1000
        ok, why = c.healthy()
        assert not ok and "stuck" in why


def test_missing_directory_is_not_ready_until_it_appears(tmp_path: Path) -> None:
    cfg = settings(tmp_path, desired_dir=str(tmp_path / "later"))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as c:
        wait_for(lambda: c.state.last_full_sync_error, what="first resync attempt")
        ok, why = c.ready()
        assert not ok and "does not exist" in why
        staged = tmp_path / "staged"
        staged.mkdir()
        write_atomic(staged / "web.xml", domain_xml("web", memory_mib=64))
        staged.rename(tmp_path / "later")
        wait_for(lambda: c.state.ready, what="ready once the directory exists")
        wait_for(lambda: names_on_host(backend) == ["web"])


def test_a_file_that_never_parsed_is_reported_at_once(tmp_path: Path) -> None:
    cfg = settings(tmp_path)
    desired = Path(cfg.desired_dir)
    with running(cfg) as c:
        wait_for(lambda: c.state.ready)
        write_atomic(desired / "junk.xml", "<domain type='xen'><name>")
        # No resync is due for an hour: the watcher batch itself gets the file reported.
        wait_for(lambda: c.status.get("junk.xml") and c.status.get("junk.xml").state == "invalid",
                 what="invalid status for a file with no domain name")
        (desired / "junk.xml").unlink()
        wait_for(lambda: c.status.get("junk.xml") is None, what="status cleared once the file is gone")


def test_an_in_sync_resync_logs_nothing_per_domain_at_info_and_says_in_sync_at_debug(tmp_path: Path) -> None:
    """The 60 s resync of a converged host must not write a line per guest (1,000 guests, every
    minute); at debug level each guest's "in sync" is there for whoever asked for it."""
    config = settings(tmp_path)
    for name in ("a", "b"):
        write_atomic(Path(config.desired_dir) / f"{name}.xml", domain_xml(name))

    def domain_lines(level: str) -> list[tuple[str, str]]:
        out = io.StringIO()
        agentlog.configure("json", level, stream=out)
        assert controller.full_resync()
        lines = [json.loads(line) for line in out.getvalue().splitlines()]
        return sorted((e["domain"], e["event"]) for e in lines if "domain" in e)

    controller = Controller(config, open_backend(config.uri))
    try:
        assert ("a", "applied") in domain_lines("info")  # the first resync creates both
        assert domain_lines("info") == []
        assert domain_lines("debug") == [("a", "in sync"), ("b", "in sync")]
    finally:
        controller.backend.close()
        structlog.reset_defaults()


def test_the_agent_process_freezes_its_start_up_heap_after_the_first_resync(tmp_path: Path) -> None:
    import gc

    config = settings(tmp_path)
    write_atomic(Path(config.desired_dir) / "a.xml", domain_xml("a"))
    gc.unfreeze()
    shared = Controller(config, open_backend(config.uri))  # a test's interpreter: nothing frozen
    assert shared.full_resync() and gc.get_freeze_count() == 0
    shared.backend.close()
    agent = Controller(settings(tmp_path, state_dir=str(tmp_path / "state2")), open_backend(config.uri),
                       freeze_heap=True)
    try:
        assert agent.full_resync()
        assert gc.get_freeze_count() > 0
        gc.unfreeze()
        assert agent.full_resync() and gc.get_freeze_count() == 0  # once, at start-up only
    finally:
        gc.unfreeze()
        agent.backend.close()


def test_an_xl_cfg_warning_is_logged_once_per_version_of_the_file(tmp_path: Path) -> None:
    """What xl would ignore or read leniently is never silent: one warning line per version."""
    config = settings(tmp_path)
    path = Path(config.desired_dir) / "web.cfg"
    write_atomic(path, 'name = "web"\nmemory = 64\nkernel = "/boot/vmlinuz"\ncolour = "blue"\n')
    out = io.StringIO()
    agentlog.configure("json", "info", stream=out)
    controller = Controller(config, open_backend(config.uri))
    try:
        def warnings() -> list[str]:
            lines = [json.loads(line) for line in out.getvalue().splitlines()]
            return [e["warning"] for e in lines if e["event"] == "desired file warning"]

        controller.refresh_desired()
        controller.refresh_desired()
        assert warnings() == [f"{path}:4: colour: unknown key: xl ignores it, so does the agent"]
        write_atomic(path, 'name = "web"\nmemory = 64\nkernel = "/boot/vmlinuz"\ncolor = "blue"\n')
        controller.refresh_desired()
        assert warnings()[1:] == [f"{path}:4: color: unknown key: xl ignores it, so does the agent"]
    finally:
        controller.backend.close()
        structlog.reset_defaults()


def test_the_agent_process_pauses_the_collector_for_a_full_resync_only(tmp_path: Path) -> None:
    """A full resync holds every guest's config at once; the collector would walk them over and
    over. Paused in the agent process (and on again after, a failed resync included), never in a
    test's interpreter."""
    import gc

    seen: list[bool] = []
    config = settings(tmp_path)
    write_atomic(Path(config.desired_dir) / "a.xml", domain_xml("a"))

    def controller(**kw: object) -> Controller:
        made = Controller(config, open_backend(config.uri), **kw)  # type: ignore[arg-type]
        listing = made.backend.list_domains
        def listed() -> list:
            seen.append(gc.isenabled())
            return listing()

        made.backend.list_domains = listed  # type: ignore[method-assign]
        return made

    assert gc.isenabled()
    shared = controller()
    assert shared.full_resync() and seen == [True] and gc.isenabled()
    shared.backend.close()
    agent = controller(freeze_heap=True)
    try:
        assert agent.full_resync() and seen[1:] == [False] and gc.isenabled()
        agent.reconciler.reconcile_all = lambda desired: 1 / 0  # type: ignore[assignment]
        with pytest.raises(ZeroDivisionError):
            agent.full_resync()
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        agent.backend.close()


class _RecordingNotifier(Notifier):
    """Records what would go to systemd instead of sending it."""

    def __init__(self) -> None:
        super().__init__({})
        self.sent: list[str] = []

    def notify(self, **fields: str | int) -> bool:
        self.sent.append(",".join(sorted(k.upper() for k in fields)))
        return True


def test_reload_before_ready_sends_no_ready_to_systemd(tmp_path: Path) -> None:
    """A SIGHUP while the first full reconcile has not run yet must not send READY=1 (systemd
    would end the start early); once ready, a reload is RELOADING=1 then READY=1."""
    cfg = settings(tmp_path)
    notifier = _RecordingNotifier()
    c = Controller(cfg, open_backend(cfg.uri), notifier=notifier)
    try:
        c._reload()
        assert notifier.sent == []
        c.state.ready = True
        c._reload()
        assert notifier.sent == ["MONOTONIC_USEC,RELOADING", "READY,STATUS"]
    finally:
        c.watcher.stop()
