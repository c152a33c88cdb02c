"""Scenario tests of the Reconciler on the simulated host: files in a directory, a real apply."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from reconcile_fixtures import OWNER, config, domain_xml, uuid_for

from libxl.hosts.sim import SimHost
from reconcilers.apply import Reconciler
from reconcilers.desired import DesiredSet, load_desired
from reconcilers.policy import Policy
from reconcilers.state import StateDir


class Env:
    """A desired directory, a simulated host and a reconciler over them."""

    def __init__(self, root: Path, **policy: object) -> None:
        self.dir = root / "desired"
        self.dir.mkdir()
        self.state_dir = root / "state"
        self.host = SimHost(shutdown_delay=0.0)
        self.desired: DesiredSet | None = None
        self.reconciler = self.make(**policy)

    def make(self, **policy: object) -> Reconciler:
        args = {"owner": OWNER, "shutdown_timeout": 5.0, **policy}
        return Reconciler(self.host, Policy(**args), self.state_dir)  # type: ignore[arg-type]

    def write(self, name: str, text: str) -> None:
        (self.dir / name).write_text(text)

    def sync(self, reconciler: Reconciler | None = None) -> dict[str, object]:
        """Rescan (keeping the last good versions, like the agent) and reconcile everything."""
        self.desired = load_desired(self.dir, self.desired)
        results = (reconciler or self.reconciler).reconcile_all(self.desired)
        return {r.name: r for r in results}

    def plan_is_empty(self) -> bool:
        return not self.reconciler.plan(load_desired(self.dir, self.desired)).has_changes

    def dom(self, name: str):
        return next((d for d in self.host.list_domains() if d.name == name), None)

    def inventory(self) -> dict[str, str]:
        """The inventory as recorded on disk (read by a state directory of its own)."""
        return {d.name: d.uuid for d in StateDir(self.state_dir).load().domains.values()}


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path)


def actions(result) -> list[str]:
    return [a.kind for a in result.applied]


def test_create_marks_ownership_and_is_idempotent(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    first = env.sync()
    assert actions(first["web"]) == ["create"]
    web = env.dom("web")
    assert web.state == "running" and web.owner == OWNER
    assert env.inventory() == {"web": uuid_for("web")}
    assert env.reconciler.status.get("web").state == "in-sync"
    assert env.reconciler.status.get("web").last_action == "create"
    second = env.sync()
    assert actions(second["web"]) == []
    assert env.dom("web").domid == web.domid
    assert env.plan_is_empty()


def test_memory_edit_balloons_the_running_guest(env: Env) -> None:
    env.write("web.xml", domain_xml("web", memory_mib=1024))
    env.sync()
    domid = env.dom("web").domid
    env.write("web.xml", domain_xml("web", memory_mib=1024, current_mib=512))
    assert actions(env.sync()["web"]) == ["set-memory"]
    web = env.dom("web")
    assert (web.domid, web.memory_kib) == (domid, 524288)
    assert env.plan_is_empty()


def test_added_disk_is_hotplugged_and_vcpus_onlined(env: Env) -> None:
    env.write("web.xml", domain_xml("web", vcpus=4, current_vcpus=1))
    env.sync()
    domid = env.dom("web").domid
    env.write("web.xml", domain_xml("web", vcpus=4, current_vcpus=3, disks=("xvda", "xvdb")))
    assert sorted(actions(env.sync()["web"])) == ["hotplug-disk-add", "set-vcpus"]
    assert env.dom("web").domid == domid and env.dom("web").vcpus_online == 3
    assert [d["vdev"] for d in env.host.domain_config(domid)["disks"]] == ["xvda", "xvdb"]
    env.write("web.xml", domain_xml("web", vcpus=4, current_vcpus=3))
    assert actions(env.sync()["web"]) == ["hotplug-disk-remove"]
    assert env.plan_is_empty()


def test_kernel_change_is_reported_restart_required_and_the_guest_kept(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    domid = env.dom("web").domid
    env.write("web.xml", domain_xml("web", kernel="/boot/vmlinuz-new"))
    result = env.sync()["web"]
    assert actions(result) == []
    assert [n.kind for n in result.notes] == ["RestartRequired"]
    assert env.reconciler.status.get("web").state == "restart-required"
    assert env.dom("web").domid == domid
    assert env.host.domain_config(domid)["b_info"]["kernel"] == "/boot/vmlinuz"
    assert env.plan_is_empty()


def test_restart_always_recreates_with_shutdown_first(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    old = env.dom("web").domid
    env.write("web.xml", domain_xml("web", kernel="/boot/vmlinuz-new"))
    result = env.sync(env.make(restart="always"))["web"]
    assert actions(result) == ["recreate"]
    new = env.dom("web")
    assert new.domid != old and new.owner == OWNER
    assert env.host.domain_config(new.domid)["b_info"]["kernel"] == "/boot/vmlinuz-new"
    assert env.inventory() == {"web": uuid_for("web")}


def test_restart_always_destroys_a_guest_that_ignores_shutdown(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    old = env.dom("web").domid
    env.host.set_unresponsive(old)
    env.write("web.xml", domain_xml("web", kernel="/boot/vmlinuz-new"))
    result = env.sync(env.make(restart="always", shutdown_timeout=0.0))["web"]
    assert result.ok and actions(result) == ["recreate"]
    assert env.dom("web").domid != old


@pytest.mark.parametrize(("prune", "still_there", "status"),
                         [("none", True, "drifted"), ("shutdown", False, "pruned"),
                          ("destroy", False, "pruned")])
def test_deleted_file_follows_the_prune_policy(tmp_path: Path, prune: str, still_there: bool,
                                               status: str) -> None:
    env = Env(tmp_path, prune=prune)
    env.write("web.xml", domain_xml("web"))
    env.write("db.xml", domain_xml("db"))
    env.sync()
    (env.dir / "web.xml").unlink()
    env.sync()
    assert (env.dom("web") is not None) is still_there
    assert env.dom("db") is not None
    assert env.reconciler.status.get("web").state == status
    assert ("web" in env.inventory()) is still_there
    assert env.plan_is_empty()


def test_empty_directory_prunes_nothing_unless_allowed(tmp_path: Path) -> None:
    env = Env(tmp_path, prune="destroy")
    env.write("web.xml", domain_xml("web"))
    env.sync()
    (env.dir / "web.xml").unlink()
    env.sync()
    assert env.dom("web") is not None
    env.sync(env.make(prune="destroy", allow_empty=True))
    assert env.dom("web") is None


def test_broken_file_leaves_the_guest_untouched(tmp_path: Path) -> None:
    env = Env(tmp_path, prune="destroy", restart="always")
    env.write("web.xml", domain_xml("web"))
    env.sync()
    domid = env.dom("web").domid
    env.write("web.xml", domain_xml("web", memory_mib=2048).replace("</domain>", "<oops"))
    result = env.sync()["web"]
    assert actions(result) == [] and [n.kind for n in result.notes] == ["Invalid"]
    assert env.reconciler.status.get("web").state == "invalid"
    # A fresh process (the CLI) has no last good version: the inventory still protects the guest.
    cold = env.make(prune="destroy", restart="always")
    cold_result = cold.reconcile_all(load_desired(env.dir))
    assert [n.kind for n in cold_result[0].notes] == ["Invalid"] and cold_result[0].applied == []
    assert env.dom("web").domid == domid


def test_duplicate_names_create_nothing(env: Env) -> None:
    env.write("a.xml", domain_xml("web"))
    env.write("b.xml", domain_xml("web", uuid=uuid_for("other")))
    result = env.sync()["web"]
    assert actions(result) == [] and result.status == "conflict"
    assert env.dom("web") is None


def test_unowned_domain_is_never_touched(tmp_path: Path) -> None:
    env = Env(tmp_path, prune="destroy", restart="always", allow_empty=True)
    theirs = env.host.create(config("web"))
    other = env.host.create(config("legacy"))
    before = {d: env.host.domain_config(d) for d in (theirs, other)}
    env.write("web.xml", domain_xml("web", memory_mib=1024, kernel="/other"))
    result = env.sync()["web"]
    assert actions(result) == [] and result.status == "conflict"
    assert [n.kind for n in result.notes] == ["Unowned"]
    (env.dir / "web.xml").unlink()
    env.sync()
    assert {d: env.host.domain_config(d) for d in (theirs, other)} == before
    assert [(d.name, d.state) for d in env.host.list_domains()[1:]] == [("web", "running"),
                                                                         ("legacy", "running")]


def test_adopt_takes_an_unowned_domain_into_the_inventory(tmp_path: Path) -> None:
    env = Env(tmp_path, adopt=True)
    domid = env.host.create(config("web", memkb=524288))
    env.write("web.xml", domain_xml("web", memory_mib=512, current_mib=256))
    result = env.sync()["web"]
    assert actions(result) == ["adopt", "set-memory"]
    assert env.inventory() == {"web": uuid_for("web")}
    assert (env.dom("web").domid, env.dom("web").memory_kib) == (domid, 262144)
    assert env.plan_is_empty()


def test_crashed_desired_domain_is_created_again(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.write("db.xml", domain_xml("db", lifecycle="<on_crash>preserve</on_crash>"))
    env.sync()
    env.host.crash(env.dom("web").domid)  # on_crash destroy: gone
    env.host.crash(env.dom("db").domid)  # on_crash preserve: listed as crashed
    assert env.dom("db").state == "crashed"
    results = env.sync()
    assert actions(results["web"]) == ["create"]
    # Issue 15: preserve keeps the crashed guest for inspection (it was destroyed and re-created).
    assert actions(results["db"]) == [] and results["db"].status == "crashed"
    assert env.dom("db").state == "crashed"
    env.host.destroy(env.dom("db").domid)  # the operator is done with it
    assert actions(env.sync()["db"]) == ["create"]
    assert env.dom("web").state == env.dom("db").state == "running"
    assert env.plan_is_empty()


def test_power_states(env: Env) -> None:
    env.write("web.xml", domain_xml("web", power="paused"))
    env.sync()
    assert env.dom("web").state == "paused"
    env.write("web.xml", domain_xml("web", power="running"))
    assert actions(env.sync()["web"]) == ["unpause"]
    env.write("web.xml", domain_xml("web", power="stopped"))
    assert actions(env.sync()["web"]) == ["shutdown"]
    assert env.dom("web") is None
    assert env.plan_is_empty()


def test_backend_failure_is_a_per_domain_error(env: Env) -> None:
    env.write("huge.xml", domain_xml("huge", memory_mib=64 * 1024))
    env.write("web.xml", domain_xml("web"))
    results = env.sync()
    assert not results["huge"].ok and "not enough free memory" in results["huge"].error
    status = env.reconciler.status.get("huge")
    assert status.state == "error" and "not enough free memory" in status.last_error
    assert results["web"].ok and env.dom("web") is not None


def test_reconcile_one_key_touches_only_that_domain(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.write("db.xml", domain_xml("db"))
    desired = load_desired(env.dir)
    result = env.reconciler.reconcile("web", desired)
    assert actions(result) == ["create"]
    assert env.dom("web") is not None and env.dom("db") is None
    assert actions(env.reconciler.reconcile("web", desired)) == []


def test_executor_refuses_unowned_domids_even_if_a_plan_asks(env: Env) -> None:
    """The second ownership check: a hand-made plan cannot destroy a guest that is not ours."""
    from reconcilers import plan as pl
    from reconcilers.actions import Destroy

    domid = env.host.create(config("theirs"))
    info = env.dom("theirs")
    bogus = pl.Plan([pl.DomainPlan("theirs", actions=[pl.Action("theirs", "test",
                                                                 Destroy(domid=domid, uuid=info.uuid))])])
    results = env.reconciler._execute(bogus, [pl.ActualDomain(info, None)], load_desired(env.dir))
    assert "not owned" in results[0].error
    assert env.dom("theirs") is not None


def test_inventory_is_reloaded_by_a_new_reconciler(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    fresh = env.make()
    assert fresh.inventory.owns(uuid_for("web"))
    assert copy.deepcopy(fresh.inventory.by_name("web")).file == str(env.dir / "web.xml")


def test_create_records_the_uuid_even_when_the_read_back_config_has_none(tmp_path: Path) -> None:
    """Real libxl can leave ``c_info.uuid`` out of a retrieved config: the inventory must still get
    the guest's uuid (from the domain list), or the guest would be created again and again."""
    env = Env(tmp_path)
    real = env.host.domain_config

    def without_uuid(domid: int) -> dict:
        cfg = copy.deepcopy(real(domid))
        cfg["c_info"].pop("uuid", None)
        return cfg

    env.host.domain_config = without_uuid  # type: ignore[method-assign]
    env.write("web.xml", domain_xml("web"))
    results = env.sync()
    assert results["web"].ok, results["web"].error
    assert env.inventory() == {"web": env.dom("web").uuid}
    assert env.plan_is_empty()


def test_files_without_a_uuid_get_one_each_and_converge(tmp_path: Path) -> None:
    """libxl leaves a missing uuid nil, and then cannot find the guest's config again (seen on real
    Xen): the agent gives each new guest a fresh uuid, as xl does, and the plan stays empty."""
    env = Env(tmp_path)
    for name in ("a", "b"):
        env.write(f"{name}.xml", domain_xml(name).replace(f"<uuid>{uuid_for(name)}</uuid>", ""))
    results = env.sync()
    assert all(r.ok for r in results.values()), {n: r.error for n, r in results.items()}
    uuids = {env.dom(n).uuid for n in ("a", "b")}
    assert len(uuids) == 2 and "00000000-0000-0000-0000-000000000000" not in uuids
    assert env.plan_is_empty()


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, no ``except Exception`` catches it."""


class DiesMidCreate(SimHost):
    """A host whose next create is cut short at ``stage`` by the agent's death."""

    def __init__(self, stage: str) -> None:
        super().__init__(shutdown_delay=0.0)
        self.stage: str | None = stage

    def create(self, config, *, paused=False):  # noqa: ANN001, ANN201
        if self.stage is None:
            return super().create(config, paused=paused)
        self.create_cut_short(config, self.stage)
        self.stage = None
        raise Killed


@pytest.mark.parametrize("stage", ["domain", "xenstore"])
@pytest.mark.parametrize("prune", ["none", "destroy"])
def test_a_create_cut_short_by_a_kill_converges_on_restart(tmp_path: Path, stage: str, prune: str) -> None:
    """Seen on real Xen (e2e, SIGKILL mid-way): killed after libxl made the domain but before it
    named it in xenstore, the agent left a paused ``(null)`` domain; restarted, it must destroy it
    (whatever the prune policy: it never ran) and create the guest once."""
    env = Env(tmp_path, prune=prune)
    env.host = DiesMidCreate(stage)
    env.reconciler = env.make(prune=prune)
    env.write("web.xml", domain_xml("web", uuid=None))
    with pytest.raises(Killed):
        env.sync()
    left = [d for d in env.host.list_domains() if d.domid != 0]
    assert len(left) == 1 and left[0].state == "paused"
    assert left[0].name == ("" if stage == "domain" else "web")
    assert env.inventory() == {"web": left[0].uuid}  # recorded before libxl was asked
    env.reconciler = env.make(prune=prune)  # the restart
    results = env.sync()
    assert actions(results["web"]) == ["destroy", "create"]
    rows = [d for d in env.host.list_domains() if d.domid != 0]
    assert [(d.name, d.state) for d in rows] == [("web", "running")]
    assert env.inventory() == {"web": rows[0].uuid}
    assert env.plan_is_empty()


def test_a_nameless_domain_the_agent_never_recorded_is_left_alone(env: Env) -> None:
    foreign = env.host.create_cut_short(config("theirs"), "domain")
    env.write("web.xml", domain_xml("web"))
    assert actions(env.sync()["web"]) == ["create"]
    assert any(d.domid == foreign and d.name == "" for d in env.host.list_domains())
    assert env.plan_is_empty()


def test_a_refused_create_leaves_no_inventory_entry(env: Env) -> None:
    env.write("big.xml", domain_xml("big", memory_mib=10**6))
    result = env.sync()["big"]
    assert result.error is not None and "memory" in result.error
    assert "big" not in env.inventory()


def test_the_full_resync_forgets_inventory_entries_the_host_does_not_list(env: Env) -> None:
    """A create recorded and then killed before libxl made anything, or a guest destroyed behind
    the agent's back: the entry names nothing and goes, so the uuid can never be mistaken later."""
    env.write("web.xml", domain_xml("web"))
    env.sync()
    web = env.dom("web")
    env.host.destroy(web.domid)
    (env.dir / "web.xml").unlink()
    env.write("db.xml", domain_xml("db"))
    env.sync()
    assert list(env.inventory()) == ["db"]


def test_a_key_naming_a_guest_that_is_not_ours_leaves_no_status(env: Env) -> None:
    """A host event names an unowned guest: its reconcile does nothing, and the status book (the
    reconciler's alone) keeps nothing of it, so status and metrics list only what the agent manages."""
    env.write("web.xml", domain_xml("web"))
    env.sync()
    env.host.create(config("stray"))
    result = env.reconciler.reconcile("stray", env.desired)
    assert (result.status, result.applied, result.notes, result.error) == ("in-sync", [], [], None)
    assert result.recorded is not None and result.recorded.state == "in-sync"  # what the log line reads
    assert env.reconciler.status.get("stray") is None
    assert env.reconciler.status.get("web").state == "in-sync"


def test_a_reconcile_that_could_not_run_is_recorded_by_the_reconciler(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    result = env.reconciler.failed("web", "host unreachable")
    status = env.reconciler.status.get("web")
    assert (result.status, result.error, result.recorded) == ("error", "host unreachable", status)
    assert (status.state, status.last_error, status.file) == ("error", "host unreachable",
                                                              str(env.dir / "web.xml"))
