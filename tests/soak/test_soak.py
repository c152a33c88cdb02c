"""The fault soak with a small budget (CI), and proof that its invariants catch a careless agent.

``XENRECONCILE_SOAK_CHANGES=1000`` runs the full soak through pytest; ``tests/soak/soak_driver.py``
runs it as a script with a table of figures (README "Fault soak").
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from libxl.hosts.backend import LibxlConfig
from libxl.hosts.sim import SimHost
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy
from tests.soak.soak_driver import (
    OWNER,
    POLICY,
    Figures,
    Settled,
    Spec,
    World,
    run_inprocess,
    run_subprocess,
    settled_domid,
)

#: Changes per variant: a bounded budget by default, the full soak when asked for.
CHANGES = int(os.environ.get("XENRECONCILE_SOAK_CHANGES", "0")) or None


def _report(variant: str, figures: Figures) -> None:
    r = figures.to_json()
    print(f"\nsoak {variant}: {r['changes_applied']} changes applied, "
          f"{r['faults_injected']} faults injected, "
          f"{r['invariants_checked']} invariants checked, {r['agent_kills']} agent kills, "
          f"{r['guest_crashes']} guest crashes, {r['violations']} violations")


@pytest.mark.parametrize("seed", [11, 12])
def test_soak_inprocess(tmp_path: Path, seed: int) -> None:
    figures = run_inprocess(tmp_path, CHANGES or 120, seed)
    _report("in-process", figures)
    assert figures.violations == []
    assert sum(figures.changes.values()) == (CHANGES or 120)
    assert figures.faults_injected > 0 and figures.invariants_checked > 0
    assert figures.changes["break"] > 0 and figures.changes["crash"] > 0


def test_soak_agent_process_killed_at_random(tmp_path: Path) -> None:
    figures = run_subprocess(tmp_path, CHANGES or 80, seed=21)
    _report("subprocess", figures)
    assert figures.violations == []
    assert figures.kills > 0 and figures.invariants_checked > 0


def test_invariants_catch_an_agent_that_applies_hostile_files(tmp_path: Path) -> None:
    """Without the security checks a world-writable file's hostile edit is applied: the guest of a
    broken file is recreated, which the soak must report."""
    figures = run_inprocess(tmp_path, 150, 5, security=None)
    assert any("destroyed while its file is broken" in v for v in figures.violations)


def test_invariants_catch_an_agent_that_takes_over_unowned_guests(tmp_path: Path) -> None:
    careless = Policy(prune=POLICY.prune, restart=POLICY.restart, owner=OWNER, adopt=True)
    figures = run_inprocess(tmp_path, 150, 5, policy=careless)
    assert any("unowned" in v for v in figures.violations)


# -- what the driver guards: only a guest the agent is done with (``settled_domid``) ----------------

class _GoneOnceAsked(SimHost):
    """A host where ``doomed`` dies when its config is asked for: what a driver's look at the host
    meets when the agent's shutdown request (a restart for a valid edit) is committed between the
    listing and the config call, and applied by that very call (a shutdown is applied by whichever
    caller touches the host next)."""

    doomed: int | None = None

    def domain_config(self, domid: int) -> LibxlConfig:
        if domid == self.doomed:
            self.destroy(domid)
        return super().domain_config(domid)


def _one_guest(tmp_path: Path) -> tuple[World, _GoneOnceAsked, Reconciler, int]:
    world = World(tmp_path, 1)
    host = _GoneOnceAsked(shutdown_delay=0.0)
    world.specs["g1"] = Spec("g1")
    world.write("g1", world.specs["g1"].render())
    agent = Reconciler(host, POLICY, world.state_dir)
    agent.reconcile_all(load_desired(world.dir))
    return world, host, agent, next(d.domid for d in host.list_domains() if d.name == "g1")


def _judge(world: World, host: SimHost) -> Settled:
    """The subprocess variant's judge: a fresh plan on the agent's state directory."""
    def judge(name: str) -> int | None:
        return settled_domid(Reconciler(host, POLICY, world.state_dir), load_desired(world.dir), name)
    return judge


def test_a_guest_the_agent_is_taking_down_is_not_guarded(tmp_path: Path) -> None:
    """Soak flake under load, ``step 53 (break): g4 (domid 7) was destroyed while its file is broken``:
    the agent's restart of g4 for a valid kernel edit had its shutdown committed when the driver
    judged g4 before breaking its file. The driver's plan listed domid 7, could not read its config
    (gone by then), planned nothing ("Pending") and that was taken for converged; domid 7, looked up
    separately before, was guarded and reported destroyed at every check while the file stayed broken."""
    world, host, _, domid = _one_guest(tmp_path)
    judge = _judge(world, host)
    assert judge("g1") == domid  # the agent applied this version and the host runs it
    host.doomed = domid
    assert world._break(host, judge)
    world.check(host, "after the break")
    assert world.guarded == {} and world.figures.violations == []


def test_a_guest_is_settled_only_once_the_agent_applied_that_very_version(tmp_path: Path) -> None:
    """A host that matches the file is not enough: the agent's state must record this version (the
    agent may still be on an earlier one), and the version must tell which write that was."""
    world, host, agent, domid = _one_guest(tmp_path)
    judge = _judge(world, host)
    a = world.specs["g1"]
    world.write("g1", a.render() + "\n")  # the same guest, another version the agent has not seen
    assert judge("g1") is None
    agent.reconcile_all(load_desired(world.dir))
    assert judge("g1") == domid
    # A, B, A: the agent's record of A may date from before B, which it may still be applying.
    world.write("g1", replace(a, memory_mib=1024).render())
    world.write("g1", a.render() + "\n")
    assert judge("g1") == domid and not world.unmistakable("g1")
    assert world._break(host, judge) and world.guarded == {}


def test_a_broken_version_between_two_equal_ones_leaves_the_last_unmistakable(tmp_path: Path) -> None:
    """The agent never applies a broken version, so A, broken, A tells which write it applied."""
    world, _, _, _ = _one_guest(tmp_path)
    text = world.specs["g1"].render()
    world.broken["g1"] = "syntax"
    world.write("g1", text[:20])
    del world.broken["g1"]
    world.write("g1", text)
    assert world.unmistakable("g1")
