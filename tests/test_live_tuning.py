"""Live tuning (issue 15 item 7): vcpu affinity, scheduler weight/cap and maximum memory are hot
changes, applied through the libxl calls ``xl vcpu-pin``, ``xl sched-credit2`` and ``xl mem-max``
make, and the simulated host accepts and refuses them as libxl does."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from reconcile_fixtures import OWNER, config, desired_domain, desired_set, domain_xml

from libxl.errors import BackendError
from libxl.hosts.sim import SimHost
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.diff import diff_domain
from reconcilers.policy import Policy


def _with(cfg: dict[str, Any], **b_info: Any) -> dict[str, Any]:
    out = copy.deepcopy(cfg)
    out["b_info"].update(b_info)
    return out


BASE = config("web", vcpus=2)


# -- classification -------------------------------------------------------------------------------

@pytest.mark.parametrize(("desired", "actual", "kinds"), [
    (_with(BASE, cpumap=[0, 1]), BASE, ["set-affinity"]),
    (_with(BASE, vcpu_hard_affinity=[[2], [3]]), _with(BASE, cpumap=[2, 3]), ["set-affinity"]),
    (_with(BASE, vcpu_soft_affinity=[[0, 1], [0, 1]]), BASE, ["set-affinity"]),
    (_with(BASE, sched_params={"weight": 512}), _with(BASE, sched_params={"sched": "credit2", "weight": 256}),
     ["set-sched"]),
    (_with(BASE, sched_params={"cap": 50}), BASE, ["set-sched"]),
    (_with(BASE, max_memkb=1048576), BASE, ["set-maxmem"]),
    # Raising both: the maximum first, so the new target fits under it.
    (_with(BASE, max_memkb=1048576, target_memkb=786432), BASE, ["set-maxmem", "set-memory"]),
    # Lowering both: the target first, since libxl refuses a maximum below the current target.
    (_with(BASE, max_memkb=262144, target_memkb=131072), BASE, ["set-memory", "set-maxmem"]),
], ids=["cpumap", "per-vcpu-hard", "soft", "weight", "cap", "maxmem", "maxmem-up-first", "maxmem-down-last"])
def test_live_tuning_is_hot_and_ordered(desired, actual, kinds) -> None:
    result = diff_domain(desired, actual)
    assert result.classification == "hot", result.restart
    assert [c.kind for c in result.hot] == kinds


@pytest.mark.parametrize(("desired", "actual"), [
    # The legacy all-vcpus cpumap and libxl's per-vcpu expansion of it are the same pinning.
    (_with(BASE, cpumap=[1, 0]), _with(BASE, vcpu_hard_affinity=[[0, 1], [0, 1]])),
    # Left out of the file: libxl's (or its NUMA placement's) choice, not compared.
    (BASE, _with(BASE, vcpu_soft_affinity=[[0, 1, 2, 3]] * 2, sched_params={"weight": 256, "cap": 0})),
    # libxl's "default" (-1) is no setting at all.
    (_with(BASE, sched_params={"weight": -1, "cap": -1}), BASE),
])
def test_equal_tuning_is_no_change(desired, actual) -> None:
    assert diff_domain(desired, actual).empty


def test_other_scheduler_parameters_still_need_a_restart() -> None:
    result = diff_domain(_with(BASE, sched_params={"period": 10000}), BASE)
    assert [c.path for c in result.restart] == ["b_info.sched_params.period"]


# -- the simulated host behaves like libxl ---------------------------------------------------------

@pytest.fixture
def host() -> SimHost:
    return SimHost(shutdown_delay=0, nr_cpus=4)


def test_sim_pins_vcpus_and_keeps_it_in_the_config(host: SimHost) -> None:
    domid = host.create(_with(BASE, cpumap=[0, 1, 2]))
    host.set_vcpu_affinity(domid, 1, [3], [2, 3])
    b_info = host.domain_config(domid)["b_info"]
    assert b_info["vcpu_hard_affinity"] == [[0, 1, 2], [3]]
    assert b_info["vcpu_soft_affinity"] == [[], [2, 3]]
    assert "cpumap" not in b_info


@pytest.mark.parametrize(("call", "problem"), [
    (lambda h, d: h.set_vcpu_affinity(d, 2, [0], None), "vcpu 2 out of range"),
    (lambda h, d: h.set_vcpu_affinity(d, 0, [4], None), "names cpu 4, the host has 0..3"),
    (lambda h, d: h.set_vcpu_affinity(d, 0, [], None), "empty hard affinity"),
    (lambda h, d: h.set_sched_params(d, {"weight": 0}), "weight out of range.*1 to 65535"),
    (lambda h, d: h.set_sched_params(d, {"weight": 65536}), "weight out of range"),
    (lambda h, d: h.set_sched_params(d, {"cap": 201}), "cap out of range.*0 to 200"),
    (lambda h, d: h.set_sched_params(d, {"period": 5}), "not credit2's"),
    (lambda h, d: h.set_max_memory(d, 262143), "memory_static_max must be greater"),
])
def test_sim_refuses_what_libxl_refuses(host: SimHost, call, problem: str) -> None:
    domid = host.create(_with(BASE, target_memkb=262144))
    before = host.domain_config(domid)
    with pytest.raises(BackendError, match=problem):
        call(host, domid)
    assert host.domain_config(domid) == before


def test_sim_sched_and_maxmem_are_reported(host: SimHost) -> None:
    domid = host.create(BASE)
    host.set_sched_params(domid, {"weight": 512, "cap": 150})
    host.set_max_memory(domid, 1048576)
    b_info = host.domain_config(domid)["b_info"]
    assert b_info["sched_params"] == {"sched": "credit2", "weight": 512, "cap": 150}
    info = next(d for d in host.list_domains() if d.domid == domid)
    assert info.max_memory_kib == 1048576
    host.set_memory_target(domid, 1048576)  # the new ceiling is the balloon's too


# -- end to end through the reconciler --------------------------------------------------------------

def test_reconciler_applies_tuning_live_and_converges(tmp_path: Path, host: SimHost) -> None:
    rec = Reconciler(host, Policy(owner=OWNER), tmp_path / "state")
    rec.reconcile_all(desired_set(desired_domain(BASE)))
    domid = next(d.domid for d in host.list_domains() if d.name == "web")
    tuned = _with(BASE, vcpu_hard_affinity=[[0], [1]], vcpu_soft_affinity=[[0, 1], [0, 1]],
                  sched_params={"weight": 768, "cap": 100}, max_memkb=1048576, target_memkb=786432)
    want = desired_set(desired_domain(tuned))
    [result] = rec.reconcile_all(want)
    assert result.ok and result.status == "in-sync", result
    assert [a.kind for a in result.applied] == ["set-max-memory", "set-memory", "set-vcpu-affinity",
                                                "set-sched-params"]
    info = next(d for d in host.list_domains() if d.name == "web")
    assert (info.domid, info.max_memory_kib, info.memory_kib) == (domid, 1048576, 786432)
    assert not rec.plan(want).has_changes


def test_a_refused_tuning_is_an_error_not_a_restart(tmp_path: Path, host: SimHost) -> None:
    rec = Reconciler(host, Policy(owner=OWNER, restart="always"), tmp_path / "state")
    rec.reconcile_all(desired_set(desired_domain(BASE)))
    domid = next(d.domid for d in host.list_domains() if d.name == "web")
    [result] = rec.reconcile_all(desired_set(desired_domain(_with(BASE, sched_params={"weight": 70000}))))
    assert result.status == "error" and "weight out of range" in (result.error or "")
    assert next(d.domid for d in host.list_domains() if d.name == "web") == domid


def test_domain_xml_cpuset_shares_and_memory_apply_live(tmp_path: Path, host: SimHost) -> None:
    desired_dir = tmp_path / "desired"
    desired_dir.mkdir()
    path = desired_dir / "web.xml"
    path.write_text(domain_xml("web", memory_mib=512))
    rec = Reconciler(host, Policy(owner=OWNER), tmp_path / "state")
    rec.reconcile_all(load_desired(desired_dir))
    domid = next(d.domid for d in host.list_domains() if d.name == "web")
    text = domain_xml("web", memory_mib=1024, current_mib=512).replace(
        "<vcpu>2</vcpu>", "<vcpu cpuset='1-2'>2</vcpu><cputune><shares>512</shares></cputune>")
    path.write_text(text)
    [result] = rec.reconcile_all(load_desired(desired_dir))
    assert result.status == "in-sync" and result.ok, result
    assert {a.kind for a in result.applied} == {"set-max-memory", "set-vcpu-affinity", "set-sched-params"}
    b_info = host.domain_config(domid)["b_info"]
    assert b_info["vcpu_hard_affinity"] == [[1, 2], [1, 2]] and b_info["sched_params"]["weight"] == 512
    assert not rec.plan(load_desired(desired_dir)).has_changes


def test_sim_refuses_an_out_of_range_weight_at_create_too(host: SimHost) -> None:
    with pytest.raises(BackendError, match="weight out of range"):
        host.create(_with(BASE, sched_params={"weight": 0}))
    with pytest.raises(BackendError, match="cap out of range.*0 to 200"):
        host.create(_with(BASE, sched_params={"cap": 300}))
    host.create(_with(BASE, sched_params={"weight": -1, "cap": 200}))
