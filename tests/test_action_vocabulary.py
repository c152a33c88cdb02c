"""The action vocabulary (``reconcilers.actions``): every action kind planned, printed and executed.

The printed plan and its JSON below were produced by the code before the vocabulary became an
enum (``main`` at e541126, the three spellings in diff.py, plan.py and apply.py): a value that
drifts from today's spelling, a payload field renamed or reordered, changes what operators,
scripts and dashboards read, and fails here.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

from reconcile_fixtures import OWNER, actual, config, desired_domain, desired_set, uuid_for

from agent.cli.commands.reconcile import format_plan
from libxl.hosts.sim import SimHost
from reconcilers import actions
from reconcilers import plan as pl
from reconcilers.actions import ActionKind, ChangeKind
from reconcilers.apply import _HANDLERS, Reconciler, for_create
from reconcilers.desired import load_desired
from reconcilers.policy import Policy
from reconcilers.state import SAVED, Departure, Inventory, OwnedDomain


def _with(cfg: dict[str, Any], **b_info: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    out["b_info"].update(b_info)
    return out


def _hot_pair() -> tuple[dict[str, Any], dict[str, Any]]:
    """Desired and actual config of one guest that differ in every hot way at once."""
    have = config("k-hot", disks=("xvda", "xvdc"))
    have["disks"].append({"pdev_path": "/iso/a.iso", "vdev": "xvdd", "format": "raw", "is_cdrom": 1,
                          "removable": 1})
    have["nics"] = [{"devid": 0, "mac": "00:16:3e:00:00:01", "bridge": "br0"}]
    want = _with(have, max_memkb=1048576, target_memkb=786432, avail_vcpus=[0], cpumap=[0, 1],
                 sched_params={"weight": 512})
    want["disks"] = [have["disks"][0], {"pdev_path": "/img/k-hot-xvdb.img", "vdev": "xvdb", "format": "raw",
                                        "readwrite": 1}, {**have["disks"][2], "pdev_path": "/iso/b.iso"}]
    want["nics"] = [{"devid": 0, "mac": "00:16:3e:00:00:02", "bridge": "br0"}]
    return want, have


def _scenario(prune: str) -> pl.Plan:
    """One plan with every action kind (``prune`` decides whether the orphan is shut down or destroyed)."""
    hot_want, hot_have = _hot_pair()
    crashed = _with(config("e-crashed"))
    crashed["on_crash"] = "coredump_restart"
    saved, stale = config("b-saved"), config("c-stale")
    desired = desired_set(
        desired_domain(config("a-new")), desired_domain(saved),
        desired_domain(_with(stale, kernel="/boot/new")),
        desired_domain(_with(config("d-theirs"), target_memkb=262144)), desired_domain(crashed),
        desired_domain(config("g-stopped"), power_state="stopped"),
        desired_domain(config("h-kernel", kernel="/boot/vmlinuz-6.1")),
        desired_domain(config("i-pause"), power_state="paused"), desired_domain(config("j-unpause")),
        desired_domain(hot_want))
    host = [actual(config("d-theirs"), 4, owner=None), actual(crashed, 5, state="crashed", reason="crash"),
            actual(config("f-orphan"), 6), actual(config("g-stopped"), 7), actual(config("h-kernel"), 8),
            actual(config("i-pause"), 9), actual(config("j-unpause"), 10, state="paused"),
            actual(hot_have, 11)]
    inventory = Inventory({uuid_for(n): OwnedDomain(n, uuid_for(n)) for n in ("e-crashed", "f-orphan")})
    for name, cfg in (("b-saved", saved), ("c-stale", stale)):
        inventory.departed[name] = Departure(name, SAVED, uuid_for(name), f"hash-{name}", 1.0,
                                             f"/var/lib/xen/save/{name}.xr-save", cfg)
    policy = Policy(owner=OWNER, restart="always", prune=prune, adopt=True, dump_dir="/var/lib/xen/dump")
    return pl.plan(desired, host, policy, inventory)


_EXPECTED = Path(__file__).parent / "data" / "plan-every-action"


def _every_action() -> list[pl.Action]:
    """The actions of both scenarios: the destroy one's, and the orphan's shutdown of the other."""
    return (_scenario("destroy").actions
            + [a for a in _scenario("shutdown").actions if a.domain == "f-orphan"])


def test_the_scenario_plans_every_action_kind() -> None:
    """So the comparisons below cover every spelling (a new kind needs a line in the scenario)."""
    assert {a.kind for a in _every_action()} == set(ActionKind)


def test_printed_plan_is_unchanged() -> None:
    assert format_plan(_scenario("destroy")) == (_EXPECTED / "plan.txt").read_text()


def test_plan_json_is_unchanged() -> None:
    """Kinds, payload field names, their order and values, as ``plan --json`` prints them."""
    got = "".join(json.dumps(a.to_json()) + "\n" for a in _every_action())
    assert got == (_EXPECTED / "actions.jsonl").read_text()


def test_payloads_keep_the_fields_the_json_leaves_out() -> None:
    """``details`` as the code before the payloads had it (captured there): configs and devices too."""
    fields_by_kind = {a.kind: list(a.details) for a in _every_action()}
    assert {k: fields_by_kind[k] for k in ("create", "restore", "recreate", "hotplug-nic-add")} == {
        "create": ["config", "paused"], "restore": ["path", "config", "paused"],
        "recreate": ["domid", "uuid", "config", "paused", "changes"], "hotplug-nic-add": ["domid", "device"]}
    hot_add = next(a for a in _every_action() if a.kind == "hotplug-disk-add")
    assert hot_add.details["device"]["pdev_path"] == "/img/k-hot-xvdb.img"


def test_change_kinds_keep_their_spelling() -> None:
    assert [k.value for k in ChangeKind] == [
        "disk-add", "disk-remove", "nic-add", "nic-remove", "cdrom-change", "set-memory", "set-vcpus",
        "set-affinity", "set-sched", "set-maxmem", "restart"]


def _payload_classes() -> dict[ActionKind, type[actions.Payload]]:
    """The concrete payload classes (those that name a kind), by kind; a kind claimed twice fails."""
    out: dict[ActionKind, type[actions.Payload]] = {}
    for cls in vars(actions).values():
        if isinstance(cls, type) and issubclass(cls, actions.Payload) and "kind" in vars(cls):
            assert cls.kind not in out, f"{cls.kind} has two payload classes"
            out[cls.kind] = cls
    return out


def test_every_action_kind_has_one_payload_class() -> None:
    assert set(_payload_classes()) == set(ActionKind)


def test_every_action_kind_is_dispatched_to_the_handler_of_its_payload() -> None:
    """A kind missing from the table, or wired to another kind's handler, fails here."""
    classes = _payload_classes()
    assert set(_HANDLERS) == set(ActionKind)
    for kind, handler in _HANDLERS.items():
        assert typing.get_type_hints(handler)["p"] is classes[kind], kind


def test_every_hot_change_becomes_an_action() -> None:
    assert set(pl._HOT) == set(ChangeKind) - {ChangeKind.RESTART}
    hot = [a.kind for a in _scenario("destroy").actions if a.domain == "k-hot"]
    assert len(hot) == len(set(hot)) == len(pl._HOT)  # each change kind its own action


def test_no_action_on_an_existing_guest_reaches_one_that_is_not_ours(tmp_path: Path) -> None:
    """The executor's ownership check holds for every kind that acts on an existing domain."""
    host = SimHost(shutdown_delay=0.0)
    domid = host.create(config("theirs"))
    info = next(d for d in host.list_domains() if d.name == "theirs")
    before = host.domain_config(domid)
    reconciler = Reconciler(host, Policy(owner=OWNER, shutdown_timeout=5.0), tmp_path / "state")
    (tmp_path / "desired").mkdir()
    desired = load_desired(tmp_path / "desired")
    on_domain = [a for a in _every_action() if isinstance(a.payload, actions.OnDomain)]
    assert {a.kind for a in on_domain} == set(ActionKind) - {
        ActionKind.CREATE, ActionKind.RESTORE, ActionKind.SET_ASIDE, ActionKind.ADOPT}
    for action in on_domain:
        bogus = pl.Action("theirs", action.reason, dataclasses.replace(action.payload, domid=domid))
        results = reconciler._execute(pl.Plan([pl.DomainPlan("theirs", actions=[bogus])]),
                                      [pl.ActualDomain(info, None)], desired)
        said = [results[0].error or "", *(n.message for n in results[0].notes)]  # a core dump's is a note
        assert any(f"refusing to {action.kind} domid {domid}: not owned" in m for m in said), action.kind
        assert results[0].applied == []
    untouched = [dataclasses.replace(d, cpu_time_ns=0) for d in host.list_domains() if d.name == "theirs"]
    assert untouched == [dataclasses.replace(info, cpu_time_ns=0)]
    assert host.domain_config(domid) == before


def test_every_hot_action_runs_on_the_simulated_host_and_converges(tmp_path: Path) -> None:
    """Each hot handler reaches its backend call: afterwards the guest is what its file says."""
    want, have = _hot_pair()
    host = SimHost(shutdown_delay=0.0)
    host.create(for_create(have, OWNER))
    reconciler = Reconciler(host, Policy(owner=OWNER), tmp_path / "state")
    desired = desired_set(desired_domain(want))
    [result] = reconciler.reconcile_all(desired)
    assert result.error is None
    # The scenario's k-hot guest: one action for each kind of hot change (see above).
    assert [a.kind for a in result.applied] == [a.kind for a in _scenario("destroy").actions
                                                if a.domain == "k-hot"]
    assert not reconciler.plan(desired).has_changes
