"""Host lifecycle in the reconciler, on the simulated host: saved and migrated guests are not
re-created, migration names are never touched, run strategies, crash actions, saved images."""

from __future__ import annotations

from pathlib import Path

import pytest
from reconcile_fixtures import domain_xml
from test_apply import Env, actions
from test_run_strategy_formats import strategy_xml

from libxl.hosts import saveimage
from libxl.hosts.backend import DomainEvent
from reconcilers import plan as pl
from reconcilers.state import MIGRATED_AWAY, SAVED, Departure, StateDir


@pytest.fixture
def env(tmp_path: Path) -> Env:
    return Env(tmp_path, dump_dir=str(tmp_path / "dump"))


def departed(env: Env) -> dict[str, str]:
    return {n: d.reason for n, d in StateDir(env.state_dir).load().departed.items()}


def status(env: Env, name: str) -> str:
    return env.reconciler.status.get(name).state


def test_guest_suspended_on_the_host_is_left_alone_and_not_recreated(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    domid = env.dom("web").domid
    env.host.suspend_for_migration(domid)  # suspended ...
    env.host.rename(domid, "web")  # ... and still listed under its name (xl save mid-way)
    result = env.sync()["web"]
    assert actions(result) == [] and result.status == "saved"
    assert (env.dom("web").domid, env.dom("web").state) == (domid, "shutdown")
    assert departed(env) == {"web": SAVED}
    env.host.destroy(domid)  # xl save finishes
    result = env.sync()["web"]
    assert actions(result) == [] and status(env, "web") == "saved" and env.dom("web") is None
    assert env.plan_is_empty()


def test_save_seen_through_the_event_is_respected_and_an_edit_starts_the_guest(env: Env, tmp_path) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    info = env.dom("web")
    env.host.save(info.domid, str(tmp_path / "web.save"))  # xl save: gone at once
    # The agent's event thread records the suspend before the death is reconciled.
    recorded = env.reconciler.note_event(DomainEvent("shutdown", info.domid, "web", "suspend"), env.desired)
    assert recorded is not None and recorded.reason == SAVED
    assert actions(env.sync()["web"]) == [] and status(env, "web") == "saved"
    env.write("web.xml", domain_xml("web", memory_mib=256))  # the operator changes the file
    assert actions(env.sync()["web"]) == ["create"]
    assert departed(env) == {} and env.dom("web").state == "running"


def test_events_of_unowned_guests_and_plain_poweroffs_of_always_guests_record_nothing(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    assert env.reconciler.note_event(DomainEvent("shutdown", 9, "other", "suspend"), env.desired) is None
    assert env.reconciler.note_event(DomainEvent("shutdown", 1, "web", "poweroff"), env.desired) is None
    assert departed(env) == {}


def test_clear_lets_the_agent_start_a_saved_guest(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    info = env.dom("web")
    env.reconciler.note_event(DomainEvent("shutdown", info.domid, "web", "suspend"), env.desired)
    env.host.destroy(info.domid)
    assert actions(env.sync()["web"]) == []
    assert env.reconciler.clear(["web", "nobody"]) == ["web"]
    assert actions(env.sync()["web"]) == ["create"]


def test_migration_out_is_recorded_and_its_domain_never_touched(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.write("db.xml", domain_xml("db"))
    env.sync()
    domid = env.dom("web").domid
    env.host.suspend_for_migration(domid)
    env.host.set_unresponsive(domid)
    ops_before = env.dom("web--migratedaway")
    results = env.sync()
    assert actions(results["web"]) == [] and results["web"].status == "migrated-away"
    assert "web--migratedaway" not in results  # never planned, so never pruned
    assert env.dom("web--migratedaway") == ops_before
    env.host.destroy(domid)  # the migration completed
    assert actions(env.sync()["web"]) == [] and status(env, "web") == "migrated-away"
    assert departed(env) == {"web": MIGRATED_AWAY}
    prune = env.make(prune="destroy")
    assert actions(env.sync(prune)["web"]) == []


def test_incoming_migration_blocks_the_create_and_is_never_touched(env: Env) -> None:
    from reconcile_fixtures import config
    incoming = env.host.create(config("web--incoming"), paused=True)
    env.write("web.xml", domain_xml("web"))
    result = env.sync()["web"]
    assert actions(result) == [] and result.status == "pending"
    assert any(n.kind == pl.MIGRATING for n in result.notes)
    assert env.dom("web--incoming").state == "paused" and env.dom("web") is None
    env.host.rename(incoming, "web")  # xl migrate finished: someone else's guest now
    result = env.sync()["web"]
    assert [n.kind for n in result.notes] == [pl.UNOWNED] and env.dom("web").domid == incoming


def test_desired_file_declaring_a_migration_name_is_not_acted_on(env: Env) -> None:
    env.write("odd.xml", domain_xml("odd--incoming"))
    result = env.sync()["odd--incoming"]
    assert actions(result) == [] and env.dom("odd--incoming") is None


def _strategy(env: Env, name: str, strategy: str, lifecycle: str = "") -> None:
    xml = strategy_xml(name, strategy)
    env.write(f"{name}.xml", xml.replace("</os>", f"</os>{lifecycle}", 1))


def test_rerun_on_failure_stays_off_after_a_clean_poweroff_but_reruns_after_a_crash(env: Env) -> None:
    _strategy(env, "web", "RerunOnFailure", "<on_poweroff>preserve</on_poweroff>")
    _strategy(env, "db", "RerunOnFailure")
    env.sync()
    env.host.shutdown_from_inside(env.dom("web").domid, "poweroff")  # listed: shutdown (poweroff)
    env.host.crash(env.dom("db").domid)  # on_crash destroy: gone
    results = env.sync()
    assert actions(results["web"]) == ["destroy"] and results["web"].status == "stopped"
    assert actions(results["db"]) == ["create"]
    assert actions(env.sync()["web"]) == [] and env.dom("web") is None
    assert env.plan_is_empty()


def test_manual_starts_once_and_never_again_by_itself(env: Env) -> None:
    _strategy(env, "web", "Manual")
    assert actions(env.sync()["web"]) == ["create"]
    env.host.destroy(env.dom("web").domid)  # xl destroy behind the agent's back, no event seen
    result = env.sync()["web"]
    assert actions(result) == [] and result.status == "stopped"
    assert departed(env) == {"web": "destroyed"}
    assert actions(env.sync()["web"]) == []
    env.reconciler.clear(["web"])
    assert actions(env.sync()["web"]) == ["create"]


def test_manual_guest_whose_file_changes_is_started(env: Env) -> None:
    _strategy(env, "web", "Manual")
    env.sync()
    env.host.destroy(env.dom("web").domid)
    env.sync()
    env.write("web.xml", strategy_xml("web", "Manual").replace(">512<", ">256<"))
    assert actions(env.sync()["web"]) == ["create"]


def test_halted_shuts_a_guest_down_and_never_creates_it(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    env.write("web.xml", strategy_xml("web", "Halted"))
    assert actions(env.sync()["web"]) == ["shutdown"]
    assert env.dom("web") is None
    assert actions(env.sync()["web"]) == [] and env.plan_is_empty()


def test_always_comes_back_after_a_poweroff(env: Env) -> None:
    _strategy(env, "web", "Always")
    env.sync()
    env.host.shutdown_from_inside(env.dom("web").domid, "poweroff")
    assert actions(env.sync()["web"]) == ["create"]
    assert departed(env) == {}


def test_coredump_restart_dumps_before_the_restart(env: Env, tmp_path: Path) -> None:
    env.write("web.xml", domain_xml("web", lifecycle="<on_crash>coredump-restart</on_crash>"))
    env.sync()
    crashed = env.dom("web").domid
    env.host.crash(crashed)
    result = env.sync()["web"]
    assert actions(result) == ["core-dump", "destroy", "create"]
    assert f"domid {crashed}" in (tmp_path / "dump" / "web").read_text()
    assert env.dom("web").state == "running"


def test_a_failed_core_dump_is_reported_and_the_action_goes_ahead(env: Env, tmp_path: Path) -> None:
    (tmp_path / "dump").write_text("not a directory")
    env.write("web.xml", domain_xml("web", lifecycle="<on_crash>coredump-destroy</on_crash>"))
    env.sync()
    env.host.crash(env.dom("web").domid)
    result = env.sync()["web"]
    assert actions(result) == ["destroy", "create"] and result.ok
    assert [n.kind for n in result.notes] == [pl.CORE_DUMP_FAILED]


def test_preserve_under_manual_stays_down_once_destroyed(env: Env) -> None:
    _strategy(env, "web", "Manual", "<on_crash>preserve</on_crash>")
    env.sync()
    env.host.crash(env.dom("web").domid)
    assert env.sync()["web"].status == "crashed"
    env.host.destroy(env.dom("web").domid)
    assert actions(env.sync()["web"]) == [] and status(env, "web") == "stopped"


def _saved(env: Env, tmp_path: Path, name: str) -> Path:
    """Save ``name`` the way host-shutdown does and record its departure."""
    info = env.dom(name)
    config = env.host.domain_config(info.domid)
    image = tmp_path / f"{name}{saveimage.SUFFIX}"
    env.host.save(info.domid, str(image))
    state = StateDir(env.state_dir)
    inventory = state.load()
    entry = inventory.domains[info.uuid]
    state.record_departures([Departure(name, SAVED, info.uuid, entry.content_hash, 1.0, str(image), config)])
    env.reconciler = env.make(dump_dir=str(tmp_path / "dump"))  # the agent after the host's reboot
    return image


def test_saved_image_is_restored_when_the_file_still_describes_the_guest(env: Env, tmp_path: Path) -> None:
    env.write("web.xml", domain_xml("web", current_mib=384))
    env.sync()
    image = _saved(env, tmp_path, "web")
    env.write("web.xml", domain_xml("web", current_mib=256))  # a live change only
    result = env.sync()["web"]
    assert actions(result) == ["restore"]
    assert not image.exists() and env.dom("web").state == "running"
    assert env.dom("web").memory_kib == 384 * 1024  # what was saved ...
    assert actions(env.sync()["web"]) == ["set-memory"]  # ... then the file's change, live
    assert StateDir(env.state_dir).load().departed == {}


def test_saved_image_no_longer_matching_is_set_aside_and_the_guest_created(env: Env, tmp_path: Path) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    image = _saved(env, tmp_path, "web")
    env.write("web.xml", domain_xml("web", kernel="/boot/other"))
    result = env.sync()["web"]
    assert actions(result) == ["set-aside-image", "create"]
    assert "b_info.kernel" in result.applied[0].reason
    assert not image.exists()
    assert len(list(tmp_path.glob("web.xr-save.set-aside-*"))) == 1


def test_saved_image_of_a_guest_without_file_is_kept_on_record(env: Env, tmp_path: Path) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    image = _saved(env, tmp_path, "web")
    (env.dir / "web.xml").unlink()
    env.write("db.xml", domain_xml("db"))  # not an empty directory
    result = env.sync()["web"]
    assert actions(result) == [] and result.status == "saved" and image.exists()


def test_plan_marks_departure_records_as_bookkeeping_not_changes(env: Env) -> None:
    env.write("web.xml", domain_xml("web"))
    env.sync()
    domid = env.dom("web").domid
    env.host.suspend_for_migration(domid)
    env.host.rename(domid, "web")
    plan = env.reconciler.plan(env.desired)
    assert not plan.has_changes
    (web,) = [d for d in plan.domains if d.name == "web"]
    assert web.record is not None and web.record.reason == SAVED and web.outcome == "saved"

