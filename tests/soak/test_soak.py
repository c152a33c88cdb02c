"""The fault soak with a small budget (CI), and proof that its invariants catch a careless agent.

``XENRECONCILE_SOAK_CHANGES=1000`` runs the full soak through pytest; ``tests/soak/soak_driver.py``
runs it as a script with a table of figures (README "Fault soak").
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconcilers.policy import Policy
from tests.soak.soak_driver import OWNER, POLICY, Figures, run_inprocess, run_subprocess

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
