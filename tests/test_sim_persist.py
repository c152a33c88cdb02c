"""``test:///PATH``: a simulated host in a file, shared by instances and by separate processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
from test_sim import config

from libxl.errors import BackendError
from libxl.hosts.backend import DomainEvent
from libxl.hosts.sim import SimHost


@pytest.fixture
def path(tmp_path):
    return tmp_path / "host.json"


def test_two_instances_see_one_host(path):
    a, b = SimHost(path=path, shutdown_delay=0), SimHost(path=path, shutdown_delay=0)
    domid = a.create(config("shared"))
    assert [d.name for d in b.list_domains()] == ["Domain-0", "shared"]
    b.disk_add(domid, {"vdev": "xvdb", "pdev_path": "/x", "format": "raw"})
    assert [d["vdev"] for d in a.domain_config(domid)["disks"]][-1] == "xvdb"
    with pytest.raises(BackendError, match="already exists"):
        b.create(config("shared"))
    assert b.create(config("other")) == domid + 1


def test_state_file_is_json_and_replaced_atomically(path):
    host = SimHost(path=path, total_memory_kib=8 * 1024 * 1024)
    host.create(config("a"))
    state = json.loads(path.read_text())
    assert state["total_memory_kib"] == 8 * 1024 * 1024 and list(state["domains"]) == ["1"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["host.json", "host.json.lock"]


def test_existing_file_keeps_its_host_sizes(path):
    SimHost(path=path, total_memory_kib=4 * 1024 * 1024)
    assert SimHost(path=path).host_info().total_memory_kib == 4 * 1024 * 1024


def test_corrupt_state_is_reported(path):
    path.write_text("{not json")
    with pytest.raises(BackendError, match="unreadable"):
        SimHost(path=path)


def test_a_separate_process_sees_and_changes_the_host(path):
    host = SimHost(path=path, shutdown_delay=0)
    domid = host.create(config("a"))
    script = (
        "import sys; from libxl.hosts.sim import SimHost\n"
        "h = SimHost(path=sys.argv[1])\n"
        "print(','.join(d.name for d in h.list_domains()))\n"
        "h.destroy(int(sys.argv[2]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path), str(domid)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "Domain-0,a"
    assert [d.domid for d in host.list_domains()] == [0]


def test_events_cross_instances(path):
    watcher, actor = SimHost(path=path), SimHost(path=path)
    domid = actor.create(config("a"))
    seen: list[DomainEvent] = []
    done = threading.Event()

    def on_event(event: DomainEvent) -> None:
        seen.append(event)
        done.set()

    watcher.watch_events(on_event)
    try:
        actor.destroy(domid)
        assert done.wait(10)
        assert (seen[0].kind, seen[0].domid, seen[0].name) == ("death", domid, "a")
    finally:
        watcher.close()


def test_concurrent_creates_from_threads_get_distinct_domids(path):
    hosts = [SimHost(path=path) for _ in range(4)]
    domids: list[int] = []
    lock = threading.Lock()

    def create(i: int) -> None:
        domid = hosts[i].create(config(f"g{i}", memory_kib=65536))
        with lock:
            domids.append(domid)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(domids) == [1, 2, 3, 4]
