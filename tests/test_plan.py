"""Pure plan tests: hand-built desired sets and host snapshots, no backend."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from reconcile_fixtures import OWNER, actual, config, desired_domain, desired_set, uuid_for

from libxl.errors import ConfigError
from reconcilers import plan as pl
from reconcilers.policy import Policy
from reconcilers.state import Inventory, OwnedDomain

POLICY = Policy(owner=OWNER)


def kinds(result: pl.Plan | pl.DomainPlan) -> list[tuple[str, str]]:
    return [(a.domain, a.kind) for a in result.actions]


def notes(result: pl.Plan | pl.DomainPlan) -> list[tuple[str, str]]:
    return [(n.domain, n.kind) for n in result.notes]


def run(desired, host, policy=POLICY, inventory=None) -> pl.Plan:
    return pl.plan(desired, host, policy, inventory or Inventory())


def test_absent_domain_is_created_and_running_by_default() -> None:
    result = run(desired_set(desired_domain(config("web"))), [])
    assert kinds(result) == [("web", "create")]
    assert result.actions[0].details["paused"] is False
    assert result.has_changes


def test_power_state_paused_creates_paused_and_stopped_creates_nothing() -> None:
    paused = run(desired_set(desired_domain(config("a"), power_state="paused")), [])
    assert paused.actions[0].details["paused"] is True
    stopped = run(desired_set(desired_domain(config("b"), power_state="stopped")), [])
    assert not stopped.has_changes


def test_in_sync_domain_plans_nothing() -> None:
    cfg = config("web")
    result = run(desired_set(desired_domain(cfg)), [actual(cfg, 3)])
    assert not result.has_changes and not result.notes
    assert result.domains[0].outcome == "in-sync"


def test_unowned_domain_with_desired_name_is_a_conflict_and_untouched() -> None:
    cfg = config("web")
    changed = config("web", target=262144)
    result = run(desired_set(desired_domain(changed)), [actual(cfg, 3, owner=None)])
    assert kinds(result) == []
    assert notes(result) == [("web", "Unowned")]
    assert result.domains[0].outcome == "conflict"


def test_another_agents_marker_is_not_ours() -> None:
    cfg = config("web")
    result = run(desired_set(desired_domain(config("web", target=262144))), [actual(cfg, 3, owner="other")])
    assert notes(result) == [("web", "Unowned")]


def test_adopt_takes_over_an_unowned_domain_but_never_domain0() -> None:
    policy = Policy(owner=OWNER, adopt=True)
    cfg = config("web")
    result = run(desired_set(desired_domain(config("web", target=262144))), [actual(cfg, 3, owner=None)],
                 policy)
    assert kinds(result) == [("web", "adopt"), ("web", "set-memory")]
    dom0 = run(desired_set(desired_domain(config("Domain-0"))), [actual(config("Domain-0"), 0, owner=None)],
               policy)
    assert notes(dom0) == [("Domain-0", "Unowned")] and not dom0.has_changes


def test_inventory_uuid_makes_a_domain_owned_without_marker() -> None:
    cfg = config("web")
    inventory = Inventory({uuid_for("web"): OwnedDomain("web", uuid_for("web"))})
    result = run(desired_set(desired_domain(config("web", target=262144))), [actual(cfg, 3, owner=None)],
                 inventory=inventory)
    assert kinds(result) == [("web", "set-memory")]


def test_unowned_domain_not_desired_is_ignored_entirely() -> None:
    policy = Policy(owner=OWNER, prune="destroy", allow_empty=True)
    result = run(desired_set(), [actual(config("theirs"), 4, owner=None)], policy)
    assert result.domains == []


def test_prune_policies_for_an_owned_domain_whose_file_disappeared() -> None:
    host = [actual(config("gone"), 5)]
    keep = desired_set(desired_domain(config("web")))
    none = run(keep, host)
    assert notes(none) == [("gone", "Orphan")] and kinds(none) == [("web", "create")]
    shutdown = run(keep, host, Policy(owner=OWNER, prune="shutdown"))
    assert ("gone", "shutdown") in kinds(shutdown)
    assert shutdown.actions[0].details["prune"] is True
    destroy = run(keep, host, Policy(owner=OWNER, prune="destroy"))
    assert kinds(destroy)[0] == ("gone", "destroy")
    assert [d.outcome for d in destroy.domains if d.name == "gone"] == ["pruned"]


def test_prune_shutdown_of_a_dead_guest_destroys_directly() -> None:
    host = [actual(config("gone"), 5, state="shutdown", reason="poweroff")]
    result = run(desired_set(desired_domain(config("web"))), host, Policy(owner=OWNER, prune="shutdown"))
    assert ("gone", "destroy") in kinds(result)


def test_empty_desired_directory_prunes_nothing_unless_allowed() -> None:
    host = [actual(config("a"), 5), actual(config("b"), 6)]
    empty = desired_set(empty_suspicious=True)
    held = run(empty, host, Policy(owner=OWNER, prune="destroy"))
    assert not held.has_changes
    assert notes(held) == [("a", "EmptyDesired"), ("b", "EmptyDesired")]
    allowed = run(empty, host, Policy(owner=OWNER, prune="destroy", allow_empty=True))
    assert kinds(allowed) == [("a", "destroy"), ("b", "destroy")]


def test_conflicting_files_apply_neither_and_prune_nothing() -> None:
    files = [Path("/desired/a.xml"), Path("/desired/b.cfg")]
    desired = desired_set(conflicts={"web": files})
    result = run(desired, [actual(config("web"), 3)], Policy(owner=OWNER, prune="destroy"))
    assert not result.has_changes
    assert notes(result) == [("web", "Conflict")]
    assert "a.xml" in result.notes[0].message and "b.cfg" in result.notes[0].message


def test_invalid_file_keeps_the_last_good_version_in_force() -> None:
    good = desired_domain(config("web"))
    err = ConfigError("bad memory unit", file=str(good.file), line=3)
    desired = desired_set(good, invalid={good.file: err}, last_good={good.file: good})
    result = run(desired, [actual(config("web"), 3)], Policy(owner=OWNER, prune="destroy"))
    assert not result.has_changes
    assert notes(result) == [("web", "Invalid")]
    assert "bad memory unit" in result.notes[0].message
    assert result.domains[0].outcome == "invalid"


def test_invalid_file_without_last_good_protects_the_guest_through_the_inventory() -> None:
    path = Path("/desired/web.xml")
    desired = desired_set(invalid={path: ConfigError("not well-formed", file=str(path), line=1)})
    inventory = Inventory({uuid_for("web"): OwnedDomain("web", uuid_for("web"), file=str(path))})
    result = run(desired, [actual(config("web"), 3)], Policy(owner=OWNER, prune="destroy"), inventory)
    assert not result.has_changes
    assert notes(result) == [("web", "Invalid")]


def test_crashed_or_shut_down_desired_domain_is_destroyed_then_created() -> None:
    cfg = config("web")
    for state, reason in (("crashed", None), ("shutdown", "poweroff")):
        result = run(desired_set(desired_domain(cfg)), [actual(cfg, 3, state=state, reason=reason)])
        assert kinds(result) == [("web", "destroy"), ("web", "create")]
    stopped = run(desired_set(desired_domain(cfg, power_state="stopped")), [actual(cfg, 3, state="crashed")])
    assert kinds(stopped) == [("web", "destroy")]


def test_dying_domain_is_pending() -> None:
    cfg = config("web")
    result = run(desired_set(desired_domain(cfg)), [actual(cfg, 3, state="dying")])
    assert notes(result) == [("web", "Pending")] and not result.has_changes


def test_restart_required_change_is_reported_or_recreated_by_policy() -> None:
    old, new = config("web"), config("web", kernel="/boot/vmlinuz-6.1", target=262144)
    never = run(desired_set(desired_domain(new)), [actual(old, 3)])
    assert notes(never) == [("web", "RestartRequired")]
    assert "b_info.kernel" in never.notes[0].message
    assert kinds(never) == [("web", "set-memory")]  # hot changes still applied
    assert never.domains[0].outcome == "restart-required"
    always = run(desired_set(desired_domain(new)), [actual(old, 3)], Policy(owner=OWNER, restart="always"))
    assert kinds(always) == [("web", "recreate")]
    assert always.actions[0].details["changes"] == ["b_info.kernel"]


def test_hot_changes_become_backend_actions() -> None:
    old = config("web")
    new = config("web", target=262144, disks=("xvda", "xvdb"))
    new["b_info"]["avail_vcpus"] = [0]
    result = run(desired_set(desired_domain(new)), [actual(old, 3)])
    assert sorted(kinds(result)) == [("web", "hotplug-disk-add"), ("web", "set-memory"), ("web", "set-vcpus")]
    by_kind = {a.kind: a.details for a in result.actions}
    assert by_kind["set-memory"] == {"domid": 3, "target_kib": 262144}
    assert by_kind["set-vcpus"] == {"domid": 3, "count": 1}
    assert by_kind["hotplug-disk-add"]["device"]["vdev"] == "xvdb"


def test_power_state_pause_and_unpause() -> None:
    cfg = config("web")
    pause = run(desired_set(desired_domain(cfg, power_state="paused")), [actual(cfg, 3)])
    assert kinds(pause) == [("web", "pause")]
    unpause = run(desired_set(desired_domain(cfg)), [actual(cfg, 3, state="paused")])
    assert kinds(unpause) == [("web", "unpause")]
    stop = run(desired_set(desired_domain(cfg, power_state="stopped")), [actual(cfg, 3)])
    assert kinds(stop) == [("web", "shutdown")]


def test_actions_free_resources_before_starting_guests() -> None:
    desired = desired_set(desired_domain(config("a-new")))
    host = [actual(config("z-old"), 7)]
    result = run(desired, host, Policy(owner=OWNER, prune="destroy"))
    assert kinds(result) == [("z-old", "destroy"), ("a-new", "create")]


def test_plan_json_leaves_out_payloads() -> None:
    result = run(desired_set(desired_domain(config("web"))), [])
    data = result.to_json()
    assert data["changes"] is True
    assert data["actions"] == [
        {"domain": "web", "kind": "create", "reason": "not on the host", "paused": False}]
    assert data["domains"]["web"]["file"] == "/desired/web.xml"


def test_a_file_that_never_parsed_still_gets_a_note_keyed_by_its_file() -> None:
    broken = Path("/desired/broken.xml")
    desired = desired_set(desired_domain(config("web")),
                          invalid={broken: ConfigError("unknown unit", file=str(broken), line=4)})
    result = run(desired, [])
    assert ("broken.xml", "Invalid") in notes(result)
    assert "broken.xml:4: unknown unit" in result.notes[-1].message
    assert kinds(result) == [("web", "create")]


def test_a_paused_guest_of_ours_without_a_config_is_half_created_and_built_again() -> None:
    """Seen on real Xen after SIGKILL mid-create: libxl lists the domain, paused, but has no config
    for it. It never ran; it is destroyed and created again. Running ones stay Pending."""
    cfg = config("web")
    half = dataclasses.replace(actual(cfg, 7, state="paused"), config=None)
    result = run(desired_set(desired_domain(cfg)), [half])
    assert kinds(result) == [("web", "destroy"), ("web", "create")]
    assert result.actions[0].details["domid"] == 7
    running = dataclasses.replace(actual(cfg, 7), config=None)
    assert notes(run(desired_set(desired_domain(cfg)), [running])) == [("web", "Pending")]
    wanted_paused = run(desired_set(desired_domain(cfg, power_state="paused")), [half])
    assert notes(wanted_paused) == [("web", "Pending")] and not wanted_paused.has_changes


def _nameless(cfg: dict, domid: int) -> pl.ActualDomain:
    """What ``xl list`` shows as ``(null)``: a domain whose create died before xenstore had it."""
    info = actual(cfg, domid, state="paused", owner=None).info
    return pl.ActualDomain(dataclasses.replace(info, name=""), None)


def test_nameless_remains_the_inventory_lists_are_destroyed_before_the_create() -> None:
    """The inventory entry, written before each create, names what the nameless domain was to be."""
    cfg = config("web")
    inventory = Inventory({uuid_for("web"): OwnedDomain("web", uuid_for("web"))})
    result = run(desired_set(desired_domain(cfg)), [_nameless(cfg, 9)], inventory=inventory)
    assert kinds(result) == [("web", "destroy"), ("web", "create")]
    assert result.actions[0].details["domid"] == 9
    assert "cut short" in result.actions[0].reason
    # The same from the per-key reconcile, which plans one name.
    actual_list = [_nameless(cfg, 9)]
    one = pl.plan_domain("web", desired_set(desired_domain(cfg)), pl.index_actual(actual_list), POLICY,
                         inventory, remains=pl.remains_by_name(actual_list, inventory).get("web"))
    assert [a.kind for a in one.actions] == ["destroy", "create"]


def test_nameless_remains_go_even_when_the_file_is_gone_and_prune_is_none() -> None:
    cfg = config("web")
    inventory = Inventory({uuid_for("web"): OwnedDomain("web", uuid_for("web"))})
    result = run(desired_set(desired_domain(config("other"))), [_nameless(cfg, 9)],
                 policy=Policy(owner=OWNER, prune="none"), inventory=inventory)
    assert ("web", "destroy") in kinds(result)
    assert next(d for d in result.domains if d.name == "web").outcome == "pruned"


def test_a_nameless_domain_the_inventory_does_not_list_is_someone_elses_and_left_alone() -> None:
    cfg = config("web")
    result = run(desired_set(desired_domain(cfg)), [_nameless(cfg, 9)])
    assert kinds(result) == [("web", "create")]
    assert all(a.details.get("domid") != 9 for a in result.actions)
