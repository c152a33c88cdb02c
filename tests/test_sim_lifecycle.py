"""The simulated host's save images, restores, core dumps, migrations and crashes, like libxl's."""

from __future__ import annotations

import time

import pytest

from libxl.errors import BackendError
from libxl.hosts import saveimage
from libxl.hosts.backend import DomainEvent
from libxl.hosts.sim import SimHost
from tests import test_sim
from tests.test_sim import config

host = test_sim.host  # the same fixture: a fresh in-memory host whose guests obey at once


def by_name(host: SimHost) -> dict[str, object]:
    return {d.name: d for d in host.list_domains()}


def test_save_writes_an_image_with_the_config_and_destroys_the_guest(host, tmp_path):
    domid = host.create(config("web"))
    host.set_memory_target(domid, 262144)
    image = tmp_path / "web.xr-save"
    host.save(domid, str(image))
    assert "web" not in by_name(host)
    saved = saveimage.image_config(str(image))
    assert saved["c_info"]["name"] == "web" and saved["b_info"]["target_memkb"] == 262144
    new = host.restore(str(image), saved)
    info = by_name(host)["web"]
    assert (info.domid, info.state) == (new, "running") and new != domid


def test_save_is_a_suspend_then_a_death(host, tmp_path):
    seen: list[DomainEvent] = []
    host.watch_events(seen.append)
    domid = host.create(config("web"))
    host.save(domid, str(tmp_path / "img"))
    deadline = time.monotonic() + 5
    while len(seen) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [(e.kind, e.reason) for e in seen[:2]] == [("shutdown", "suspend"), ("death", "destroy")]


def test_save_refuses_an_existing_file_and_keeps_the_guest(host, tmp_path):
    domid = host.create(config("web"))
    image = tmp_path / "web.img"
    image.write_bytes(b"someone else's")
    with pytest.raises(BackendError, match="exists"):
        host.save(domid, str(image))
    assert by_name(host)["web"].state == "running"
    assert image.read_bytes() == b"someone else's"


def test_restore_refuses_what_is_not_an_image_and_conflicting_names(host, tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"hello")
    with pytest.raises(BackendError, match="not a xenreconcile save image"):
        host.restore(str(junk), config("web"))
    image = tmp_path / "web.img"
    host.save(host.create(config("web")), str(image))
    host.create(config("web"))
    with pytest.raises(BackendError, match="already exists"):
        host.restore(str(image), saveimage.image_config(str(image)))


def test_a_header_without_stream_is_refused(host, tmp_path):
    image = tmp_path / "cut.img"
    with open(image, "wb") as out:
        saveimage.write_header(out, config("web"))
    with pytest.raises(BackendError, match="no domain stream"):
        host.restore(str(image), config("web"))
    image.write_bytes(image.read_bytes()[:40])
    with pytest.raises(BackendError, match="damaged save image header"):
        saveimage.image_config(str(image))


def test_core_dump_writes_a_file_and_leaves_the_guest(host, tmp_path):
    cfg = config("web")
    cfg["on_crash"] = "coredump_destroy"
    domid = host.create(cfg)
    host.crash(domid)
    core = tmp_path / "web"
    host.core_dump(domid, str(core))
    assert "simulated core of web" in core.read_text()
    assert by_name(host)["web"].state == "crashed"
    with pytest.raises(BackendError, match="does not exist"):
        host.core_dump(999, str(tmp_path / "none"))


@pytest.mark.parametrize("action", ["coredump_destroy", "coredump_restart", "preserve"])
def test_crash_actions_of_the_toolstack_leave_the_domain_crashed(host, action):
    # libxl only reports the crash: the dump, the destroy and the restart are the toolstack's job.
    cfg = config("web")
    cfg["on_crash"] = action
    domid = host.create(cfg)
    host.crash(domid)
    info = by_name(host)["web"]
    assert (info.domid, info.state, info.shutdown_reason) == (domid, "crashed", "crash")


def test_migration_renames_the_suspended_source(host):
    domid = host.create(config("web"))
    host.suspend_for_migration(domid)
    info = by_name(host)["web--migratedaway"]
    assert (info.domid, info.state, info.shutdown_reason) == (domid, "shutdown", "suspend")
    host.destroy(domid)
    incoming = host.create(config("db--incoming"), paused=True)
    host.rename(incoming, "db")
    assert by_name(host)["db"].domid == incoming
