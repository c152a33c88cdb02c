"""A plan's domains side by side: phase by phase, ``parallel`` domains at a time, each domain's
actions in order, and memory never promised twice to guests built at once (reconcilers.apply,
libxl.hosts.balloon)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from reconcile_fixtures import OWNER, domain_xml

from libxl.errors import BackendError
from libxl.hosts.backend import LibxlConfig
from libxl.hosts.balloon import AutoballoonBackend, memory_needed
from libxl.hosts.sim import GIB_KIB, SimHost
from reconcilers import status as st
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy

MIB = 1024


class Watched:
    """A simulated host whose calls are logged and can be held: ``gate(name)`` makes that guest's
    create wait for ``release``; ``barrier`` makes every create wait until that many are in."""

    def __init__(self, host: SimHost, barrier: int = 0) -> None:
        self.host = host
        self.log: list[str] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.barrier = threading.Barrier(barrier, timeout=10) if barrier else None
        self.fail: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.host, name)

    def _note(self, what: str) -> None:
        with self._lock:
            self.log.append(what)

    def create(self, config: LibxlConfig, *, paused: bool = False) -> int:
        name = config["c_info"]["name"]
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        self._note(f"create {name}")
        try:
            if self.barrier is not None:
                self.barrier.wait()  # serial creates never get here together: BrokenBarrierError
            if name in self.fail:
                raise BackendError("domain_create", "no room", domain=name)
            return self.host.create(config, paused=paused)
        finally:
            with self._lock:
                self.in_flight -= 1

    def shutdown(self, domid: int, timeout: float) -> bool:
        self._note(f"shutdown {domid}")
        done = self.host.shutdown(domid, timeout)
        self._note(f"shut down {domid}")
        return done


def reconciler(tmp_path: Path, backend: Any, parallel: int, **policy: Any) -> Reconciler:
    return Reconciler(backend, Policy(owner=OWNER, shutdown_timeout=5.0, **policy), tmp_path / "state",
                      parallel=parallel)


def desired_dir(tmp_path: Path, *names: str) -> Path:
    directory = tmp_path / "desired"
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for name in names:
        (directory / f"{name}.xml").write_text(domain_xml(name))
    return directory


def test_new_guests_are_created_side_by_side(tmp_path: Path) -> None:
    names = [f"g{i}" for i in range(4)]
    host = Watched(SimHost(shutdown_delay=0.0), barrier=4)  # all four creates must be in at once
    results = reconciler(tmp_path, host, 4).reconcile_all(load_desired(desired_dir(tmp_path, *names)))
    assert {r.name: r.status for r in results} == dict.fromkeys(names, st.IN_SYNC)
    assert sorted(d.name for d in host.list_domains() if d.domid) == names


@pytest.mark.parametrize("parallel", [1, 2, 3])
def test_never_more_domains_at_once_than_parallel(tmp_path: Path, parallel: int) -> None:
    names = [f"g{i}" for i in range(6)]
    host = Watched(SimHost(shutdown_delay=0.0), barrier=parallel)  # each wave waits until it is full
    reconciler(tmp_path, host, parallel).reconcile_all(load_desired(desired_dir(tmp_path, *names)))
    assert host.most == parallel
    assert sorted(d.name for d in host.list_domains() if d.domid) == names


def test_resources_are_freed_before_anything_starts(tmp_path: Path) -> None:
    """Phase order holds across domains: the pruned guest is down before the new one is built."""
    host = Watched(SimHost(shutdown_delay=0.0))
    rec = reconciler(tmp_path, host, 4, prune="shutdown")
    rec.reconcile_all(load_desired(desired_dir(tmp_path, "old", "keep")))
    old = next(d.domid for d in host.list_domains() if d.name == "old")
    host.log.clear()
    rec.reconcile_all(load_desired(desired_dir(tmp_path, "keep", "new")))
    assert host.log == [f"shutdown {old}", f"shut down {old}", "create new"]


def test_a_failing_domain_does_not_stop_the_others(tmp_path: Path) -> None:
    host = Watched(SimHost(shutdown_delay=0.0))
    host.fail.add("bad")
    results = {r.name: r for r in reconciler(tmp_path, host, 4).reconcile_all(
        load_desired(desired_dir(tmp_path, "a", "bad", "b")))}
    assert results["bad"].status == st.ERROR and "no room" in (results["bad"].error or "")
    assert results["a"].status == results["b"].status == st.IN_SYNC
    assert sorted(d.name for d in host.list_domains() if d.domid) == ["a", "b"]


def test_results_keep_the_plans_order_whatever_finished_first(tmp_path: Path) -> None:
    names = [f"g{i}" for i in range(5)]
    host = Watched(SimHost(shutdown_delay=0.0))
    results = reconciler(tmp_path, host, 5).reconcile_all(load_desired(desired_dir(tmp_path, *names)))
    assert [r.name for r in results] == names


# -- memory for guests built at once (AutoballoonBackend) -----------------------------------------

def pv(name: str, mib: int) -> LibxlConfig:
    return {"c_info": {"name": name, "type": "pv"},
            "b_info": {"max_memkb": mib * MIB, "target_memkb": mib * MIB, "kernel": "/k"}}


class Held:
    """A host whose create of a guest in ``hold`` waits for ``release``; ``entered`` per name."""

    def __init__(self, host: SimHost, *hold: str) -> None:
        self.host = host
        self.release = threading.Event()
        self.hold = set(hold)
        self.entered = {name: threading.Event() for name in ("a", "b")}
        self.order: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.host, name)

    def create(self, config: LibxlConfig, *, paused: bool = False) -> int:
        name = config["c_info"]["name"]
        self.order.append(f"enter {name}")
        self.entered[name].set()
        if name in self.hold:
            assert self.release.wait(10)
        domid = self.host.create(config, paused=paused)
        self.order.append(f"built {name}")
        return domid


def build(backend: AutoballoonBackend, config: LibxlConfig, errors: list[str]) -> threading.Thread:
    def run() -> None:
        try:
            backend.create(config)
        except BackendError as err:
            errors.append(err.message)
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_guests_that_fit_together_are_built_at_once() -> None:
    host = Held(SimHost(total_memory_kib=4 * GIB_KIB, dom0_memory_kib=1024 * MIB), "a")
    balloon = AutoballoonBackend(host, "off")  # type: ignore[arg-type]
    errors: list[str] = []
    first = build(balloon, pv("a", 512), errors)
    assert host.entered["a"].wait(10)
    second = build(balloon, pv("b", 512), errors)
    assert host.entered["b"].wait(10), "b waited although both fit"
    host.release.set()
    first.join(10)
    second.join(10)
    assert errors == [] and host.order[:2] == ["enter a", "enter b"]


def test_a_guest_that_does_not_fit_beside_a_build_waits_for_it() -> None:
    """Free memory for one of the two: the second build must not start on the pages promised to
    the first (it would pass the check and fail in libxl); it looks again once the first is built,
    then is refused with the memory needed and free."""
    sim = SimHost(total_memory_kib=2 * GIB_KIB, dom0_memory_kib=1024 * MIB)
    host = Held(sim, "a")
    balloon = AutoballoonBackend(host, "off")  # type: ignore[arg-type]
    errors: list[str] = []
    first = build(balloon, pv("a", 600), errors)
    assert host.entered["a"].wait(10)
    second = build(balloon, pv("b", 600), errors)
    assert not host.entered["b"].wait(0.5), "b was built on memory promised to a"
    host.release.set()
    first.join(10)
    second.join(10)
    assert host.order == ["enter a", "built a"]
    need = memory_needed(pv("b", 600))
    assert len(errors) == 1 and errors[0].startswith(f"not enough free memory for b: needs {need} KiB")


def test_restore_holds_memory_like_create(tmp_path: Path) -> None:
    """A restore goes through the same check (a saved guest needs its memory back)."""
    sim = SimHost(total_memory_kib=2 * GIB_KIB, dom0_memory_kib=1536 * MIB)
    with pytest.raises(BackendError, match="not enough free memory for big"):
        AutoballoonBackend(sim, "off").restore(str(tmp_path / "big.save"), pv("big", 1024))
