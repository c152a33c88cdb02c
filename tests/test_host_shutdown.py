"""``xenreconcile host-shutdown`` and the hand-over verbs on the simulated host."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from reconcile_fixtures import OWNER, config, domain_xml

from agent.config import AgentConfig
from agent.lifecycle import host_shutdown
from libxl.hosts import saveimage
from libxl.hosts.sim import SimHost
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy
from reconcilers.state import SAVED, StateDir

CLI = REPO_ROOT / ".venv" / "bin" / "xenreconcile"


class World:
    """Owned guests made by a reconciler, plus one someone else started."""

    def __init__(self, root: Path, names: tuple[str, ...] = ("web", "db")) -> None:
        self.root = root
        self.dir = root / "desired"
        self.dir.mkdir()
        self.state = StateDir(root / "state")
        self.host = SimHost(shutdown_delay=0.0)
        self.policy = Policy(owner=OWNER, shutdown_timeout=5.0)
        for name in names:
            (self.dir / f"{name}.xml").write_text(domain_xml(name))
        Reconciler(self.host, self.policy, self.state.path).reconcile_all(load_desired(self.dir))
        self.rogue = self.host.create(config("rogue"))

    def names(self) -> dict[str, str]:
        return {d.name: d.state for d in self.host.list_domains() if d.domid != 0}

    def run(self, mode: str, **kw: object) -> list:
        inventory = self.state.load()
        args = {"parallel": 2, "timeout": 5.0, "save_dir": self.root / "save", **kw}
        out = host_shutdown(self.host, inventory, self.policy, mode=mode, **args)  # type: ignore[arg-type]
        self.state.record_departures(inventory.departed.values())
        return out


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_shutdown_stops_the_owned_guests_only(world: World) -> None:
    outcomes = world.run("shutdown")
    assert sorted((o.name, o.outcome) for o in outcomes) == [("db", "shut-down"), ("web", "shut-down")]
    assert world.names() == {"rogue": "running"}


def test_a_guest_that_ignores_the_shutdown_is_destroyed_after_the_timeout(world: World) -> None:
    web = next(d for d in world.host.list_domains() if d.name == "web")
    world.host.set_unresponsive(web.domid)
    start = time.monotonic()
    outcomes = {o.name: o for o in world.run("shutdown", timeout=0.3)}
    assert time.monotonic() - start < 5
    assert outcomes["web"].outcome == "destroyed" and "host_shutdown_timeout" in outcomes["web"].detail
    assert outcomes["db"].outcome == "shut-down"
    assert world.names() == {"rogue": "running"}


def test_parallelism_bounds_the_guests_in_flight(tmp_path: Path) -> None:
    world = World(tmp_path, names=("a", "b", "c", "d", "e"))
    in_flight, peak, lock = 0, 0, threading.Lock()
    real = world.host.shutdown

    def slow_shutdown(domid: int, timeout: float) -> bool:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.05)
        try:
            return real(domid, timeout)
        finally:
            with lock:
                in_flight -= 1

    world.host.shutdown = slow_shutdown  # type: ignore[method-assign]
    assert len(world.run("shutdown", parallel=2)) == 5
    assert peak == 2


def test_parallel_zero_asks_every_guest_at_once(tmp_path: Path) -> None:
    """The default, xendomains' way: no guest's shutdown waits for another's (here each shutdown
    waits until all five have been asked, which a bounded pool would never reach)."""
    world = World(tmp_path, names=("a", "b", "c", "d", "e"))
    everyone = threading.Barrier(5, timeout=10)
    real = world.host.shutdown

    def shutdown_together(domid: int, timeout: float) -> bool:
        everyone.wait()
        return real(domid, timeout)

    world.host.shutdown = shutdown_together  # type: ignore[method-assign]
    assert AgentConfig().host_shutdown_parallel == 0
    outcomes = world.run("shutdown", parallel=0)
    assert sorted(o.name for o in outcomes if o.outcome == "shut-down") == ["a", "b", "c", "d", "e"]


def test_save_writes_images_and_the_next_reconcile_restores_them(world: World) -> None:
    outcomes = world.run("save")
    assert {o.outcome for o in outcomes} == {"saved"}
    assert world.names() == {"rogue": "running"}
    images = sorted(p.name for p in (world.root / "save").iterdir())
    assert images == ["db.xr-save", "web.xr-save"]
    assert saveimage.image_config(str(world.root / "save" / "web.xr-save"))["c_info"]["name"] == "web"
    assert {n: d.reason for n, d in world.state.load().departed.items()} == {"db": SAVED, "web": SAVED}
    # The host comes back: the agent's first reconcile restores instead of creating.
    agent = Reconciler(world.host, world.policy, world.state.path)
    results = {r.name: [a.kind for a in r.applied] for r in agent.reconcile_all(load_desired(world.dir))}
    assert results == {"db": ["restore"], "web": ["restore"]}
    assert world.names() == {"db": "running", "rogue": "running", "web": "running"}
    assert list((world.root / "save").iterdir()) == []
    assert not agent.plan(load_desired(world.dir)).has_changes


def test_a_guest_that_cannot_be_saved_is_shut_down_instead(world: World) -> None:
    (world.root / "save").write_text("not a directory")
    outcomes = {o.name: o for o in world.run("save")}
    assert outcomes["web"].outcome == "shut-down" and "save failed" in outcomes["web"].detail
    assert world.names() == {"rogue": "running"}
    assert world.state.load().departed == {}


def test_leave_touches_nothing(world: World) -> None:
    assert {o.outcome for o in world.run("leave")} == {"left"}
    assert world.names() == {"db": "running", "rogue": "running", "web": "running"}


# ---- the verbs, as subprocesses on a file-backed host ----------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess[str]:
    if not CLI.exists():
        pytest.skip(f"{CLI} is missing: run .venv/bin/pip install -e .")
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def filed(tmp_path: Path) -> tuple[Path, str, Path]:
    """A TOML settings file over a file-backed host; returns (settings, uri, desired dir)."""
    uri = f"test://{tmp_path / 'host.json'}"
    desired = tmp_path / "desired"
    desired.mkdir()
    settings = tmp_path / "agent.toml"
    settings.write_text(f'uri = "{uri}"\ndesired_dir = "{desired}"\nstate_dir = "{tmp_path / "state"}"\n'
                        f'owner = "{OWNER}"\nsave_dir = "{tmp_path / "save"}"\nsocket_path = ""\n'
                        'on_host_shutdown = "save"\nstrict_modes = false\n')
    return settings, uri, desired


def test_host_shutdown_verb_saves_owned_guests_and_apply_restores_them(filed, tmp_path: Path) -> None:
    settings, uri, desired = filed
    (desired / "web.xml").write_text(domain_xml("web"))
    common = ["--uri", uri, "--state-dir", str(tmp_path / "state")]
    assert cli("apply", "--dir", str(desired), "--owner", OWNER, *common).returncode == 0
    SimHost(path=tmp_path / "host.json").create(config("rogue"))
    done = cli("host-shutdown", "--config", str(settings))
    assert done.returncode == 0, done.stderr
    assert "web (domid 1): saved" in done.stdout and "rogue" not in done.stdout
    assert (tmp_path / "save" / "web.xr-save").exists()
    again = cli("apply", "--dir", str(desired), "--owner", OWNER, *common)
    assert again.returncode == 0 and "restore" in again.stdout
    listed = json.loads(cli("list", "--uri", uri, "--json").stdout)
    assert sorted(d["name"] for d in listed) == ["Domain-0", "rogue", "web"]


def test_host_shutdown_refuses_to_run_beside_the_agent(filed, tmp_path: Path) -> None:
    settings, _uri, _desired = filed
    with StateDir(tmp_path / "state").exclusive():
        done = cli("host-shutdown", "--config", str(settings))
    assert done.returncode == 1 and "in use by another xenreconcile" in done.stderr


def test_adopt_verb_takes_a_running_guest_over(filed, tmp_path: Path) -> None:
    settings, uri, desired = filed
    host = SimHost(path=tmp_path / "host.json")
    domid = host.create(config("web", memkb=524288))
    (desired / "web.xml").write_text(domain_xml("web", memory_mib=512, current_mib=256))
    common = ["--dir", str(desired), "--uri", uri, "--state-dir", str(tmp_path / "state"), "--owner", OWNER]
    assert cli("plan", *common).returncode == 1  # Unowned: in the way
    done = cli("adopt", "web", "ghost", "--config", str(settings))
    assert done.returncode == 1
    assert "web: adopted" in done.stdout and "ghost: not adopted" in done.stderr
    plan = cli("plan", *common)
    assert plan.returncode == 2 and "set-memory" in plan.stdout  # drift reported as usual
    assert cli("adopt", "web", "--config", str(settings)).returncode == 1  # already owned
    assert next(d for d in host.list_domains() if d.name == "web").domid == domid


def test_clear_verb_forgets_a_departure(filed, tmp_path: Path) -> None:
    settings, _uri, _desired = filed
    state = StateDir(tmp_path / "state")
    from reconcilers.state import Departure
    state.record_departures([Departure("web", SAVED)])
    done = cli("clear", "web", "db", "--config", str(settings))
    assert done.returncode == 1 and "web: cleared" in done.stdout and "db: nothing held" in done.stderr
    assert state.load().departed == {}


def test_adoption_refuses_a_guest_carrying_the_uuid_under_another_name(tmp_path: Path) -> None:
    from reconcile_fixtures import uuid_for

    from reconcilers.handover import adoption
    from reconcilers.state import Inventory

    (tmp_path / "web.xml").write_text(domain_xml("web"))
    desired = load_desired(tmp_path)
    host = SimHost()
    cfg = config("old-web")
    cfg["c_info"]["uuid"] = uuid_for("web")
    host.create(cfg)
    verdict, entry = adoption("web", desired, host.list_domains(), Inventory(), Policy(owner=OWNER))
    assert not verdict.adopted and entry is None and "named 'old-web'" in verdict.detail
    host.create(config("web2"))
    verdict, entry = adoption("nope", desired, host.list_domains(), Inventory(), Policy(owner=OWNER))
    assert not verdict.adopted and "no valid desired file" in verdict.detail
