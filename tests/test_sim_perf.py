"""The simulated host's cheap transactions: no whole-host copies, yet the same isolation, plus the
``op_log`` that the benchmarks read (speed itself is measured in tests/bench/, never here)."""

from __future__ import annotations

import json

import pytest
from test_sim import config

from libxl.errors import BackendError, ConfigError
from libxl.hosts.sim import SimHost
from libxl.hosts.uri import open_backend, parse_uri


def test_op_log_has_one_line_per_committed_change(tmp_path):
    log = tmp_path / "ops.log"
    host = SimHost(op_log=log, shutdown_delay=0)
    domid = host.create(config("web"))
    host.list_domains()
    host.domain_config(domid)
    host.set_memory_target(domid, 256 * 1024)
    with pytest.raises(BackendError):
        host.set_memory_target(domid, 10 * 1024 * 1024 * 1024)  # refused: not logged
    host.destroy(domid)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["op"], e["domid"], e["name"]) for e in entries] == [
        ("domain_create", domid, "web"), ("set_memory_target", domid, "web"),
        ("domain_destroy", domid, "web")]
    assert entries[0]["t"] <= entries[1]["t"] <= entries[2]["t"]


def test_op_log_is_a_uri_parameter(tmp_path):
    log = tmp_path / "ops.log"
    host = open_backend(f"test:///default?op_log={log}")
    host.create(config("web"))
    assert json.loads(log.read_text())["op"] == "domain_create"
    with pytest.raises(ConfigError, match="op_log"):
        parse_uri("test:///default?op_log=relative.log")


@pytest.mark.parametrize("persisted", [False, True])
def test_failed_operation_leaves_no_partial_change(tmp_path, persisted):
    host = SimHost(path=tmp_path / "host.json" if persisted else None)
    domid = host.create(config("web"))
    before = host.domain_config(domid)
    disk = {"vdev": "xvdb", "pdev_path": "/img/b", "format": "raw"}
    host.disk_add(domid, disk)
    with pytest.raises(BackendError, match="already exists"):
        host.disk_add(domid, disk)
    host.disk_remove(domid, disk)
    assert host.domain_config(domid) == before


def test_returned_configs_are_copies_not_the_host_state():
    host = SimHost()
    domid = host.create(config("web"))
    returned = host.domain_config(domid)
    returned["b_info"]["max_memkb"] = 1
    returned["disks"].clear()
    again = host.domain_config(domid)
    assert again["b_info"]["max_memkb"] != 1 and again["disks"]


def test_state_saved_without_the_shutdown_index_still_shuts_guests_down(tmp_path):
    path = tmp_path / "host.json"
    domid = SimHost(path=path).create(config("web"))
    state = json.loads(path.read_text())
    del state["pending_shutdowns"]  # as written before the index existed
    state["domains"][str(domid)]["shutdown_due"] = 1.0  # long overdue
    path.write_text(json.dumps(state))
    assert [d.domid for d in SimHost(path=path).list_domains()] == [0]


def test_a_change_by_another_instance_is_seen_through_the_cache(tmp_path):
    path = tmp_path / "host.json"
    reader, writer = SimHost(path=path), SimHost(path=path)
    domid = writer.create(config("web"))
    assert [d.name for d in reader.list_domains()] == ["Domain-0", "web"]
    writer.set_memory_target(domid, 128 * 1024)
    assert reader.list_domains()[1].memory_kib == 128 * 1024


def test_state_file_is_the_canonical_json_of_the_state_after_partial_re_encoding(tmp_path):
    path = tmp_path / "host.json"
    host = SimHost(path=path, shutdown_delay=0)
    web, db = host.create(config("web")), host.create(config("db"))
    host.set_memory_target(db, 128 * 1024)  # one record re-encoded, the other reused
    host.destroy(web)
    host.create(config("cache"))
    data = path.read_bytes()
    state = json.loads(data)
    assert data == json.dumps(state, sort_keys=True).encode()
    assert sorted(d["config"]["c_info"]["name"] for d in state["domains"].values()) == ["cache", "db"]
    assert state["domains"][str(db)]["memory_kib"] == 128 * 1024


def test_each_save_is_stamped_and_a_file_edited_by_hand_is_reloaded(tmp_path):
    path = tmp_path / "host.json"
    host = SimHost(path=path)
    domid = host.create(config("web"))
    first = json.loads(path.read_bytes())["_generation"]
    host.set_memory_target(domid, 131072)
    assert json.loads(path.read_bytes())["_generation"] != first
    state = json.loads(path.read_bytes())
    del state["_generation"]  # as written before stamps, then edited: same size, other content
    path.write_text(json.dumps(state, sort_keys=True))
    assert host.list_domains()[1].memory_kib == 131072
    state["domains"][str(domid)]["memory_kib"] = 262144
    path.write_text(json.dumps(state, sort_keys=True))
    assert host.list_domains()[1].memory_kib == 262144


@pytest.mark.parametrize("persisted", [False, True])
def test_creates_see_every_change_committed_between_them(tmp_path, persisted):
    """A create checks names, uuids and free memory against what other calls changed since the
    last create (destroy, balloon, a guest's own shutdown, a refused create), never a stale count."""
    gib = 1024 * 1024
    host = SimHost(path=tmp_path / "host.json" if persisted else None, total_memory_kib=5 * gib,
                   dom0_memory_kib=gib, shutdown_delay=0)
    a = host.create(config("a", memory_kib=2 * gib))
    with pytest.raises(BackendError, match="name 'a' already exists"):
        host.create(config("a", memory_kib=gib))
    b = host.create(config("b", memory_kib=2 * gib))
    with pytest.raises(BackendError, match="ERROR_NOMEM"):
        host.create(config("c", memory_kib=gib))
    host.set_memory_target(b, gib)  # ballooned down: room for c
    c = host.create(config("c", memory_kib=gib))
    host.destroy(a)  # name, uuid and memory free again
    a = host.create(config("a", memory_kib=gib))
    with pytest.raises(BackendError, match="uuid .* already exists"):
        host.create(config("d", uuid=config("a")["c_info"]["uuid"]))
    host.shutdown(c, timeout=5)  # the guest goes away by itself (on_poweroff=destroy)
    assert [d.name for d in host.list_domains()] == ["Domain-0", "b", "a"]
    host.create(config("c", memory_kib=gib))
    with pytest.raises(BackendError, match="ERROR_NOMEM"):
        host.create(config("e", memory_kib=2 * gib))
