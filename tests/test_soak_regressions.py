"""Bugs the fault soak (tests/soak/) found, each pinned by a deterministic test."""

from __future__ import annotations

from pathlib import Path

from reconcile_fixtures import OWNER, domain_xml

from libxl.hosts.sim import SimHost
from reconcilers import status as st
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy
from reconcilers.state import StateDir

POLICY = Policy(owner=OWNER, prune="destroy", restart="always")


def _created_then_killed_before_recording(tmp_path: Path) -> tuple[SimHost, Path, Path]:
    """A guest created by an agent that was SIGKILLed before its inventory entry was written: it
    carries the owner marker but the inventory does not know its file."""
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "a.xml").write_text(domain_xml("a"))
    host = SimHost(shutdown_delay=0.0)
    Reconciler(host, POLICY, tmp_path / "state").reconcile_all(load_desired(desired))
    state = StateDir(tmp_path / "state")
    state.delete(list(state.load().domains))
    return host, desired, tmp_path / "state"


def test_unrecorded_guest_of_a_broken_file_is_not_pruned(tmp_path: Path) -> None:
    """Soak finding: after a restart the broken file has no last good version and the inventory no
    record of the guest, so the guest looked like an orphan and prune=destroy destroyed it."""
    host, desired, state = _created_then_killed_before_recording(tmp_path)
    before = [d.domid for d in host.list_domains() if d.name == "a"]
    (desired / "a.xml").chmod(0o666)  # now refused (strict_modes), and never parsed by this agent
    results = {r.name: r for r in Reconciler(host, POLICY, state).reconcile_all(load_desired(desired))}
    assert results["a"].applied == [] and results["a"].status == st.INVALID
    assert [d.domid for d in host.list_domains() if d.name == "a"] == before
    # Once nothing invalid could declare it, an undeclared owned guest is pruned as before.
    (desired / "a.xml").unlink()
    (desired / "b.xml").write_text(domain_xml("b"))  # not empty: an empty directory prunes nothing
    results = {r.name: r for r in Reconciler(host, POLICY, state).reconcile_all(load_desired(desired))}
    assert [a.kind for a in results["a"].applied] == ["destroy"]


def test_reconcile_records_an_owned_guest_missing_from_the_inventory(tmp_path: Path) -> None:
    """The next successful reconcile ties the unrecorded guest to its file again."""
    host, desired, state = _created_then_killed_before_recording(tmp_path)
    Reconciler(host, POLICY, state).reconcile_all(load_desired(desired))
    entries = StateDir(state).load().domains.values()
    uuid = next(d.uuid for d in host.list_domains() if d.name == "a")
    assert [(e.name, e.uuid, e.file) for e in entries] == [("a", uuid, str(desired / "a.xml"))]
