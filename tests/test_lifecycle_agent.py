"""The running agent and the host lifecycle: readiness with failing guests, ``xl save`` and
``xl migrate`` seen through host events, the hand-over verbs over the agent's socket."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from conftest import REPO_ROOT
from prometheus_client.parser import text_string_to_metric_families
from reconcile_fixtures import config, domain_xml
from test_agent_process import Agent, NotifyListener, notify  # noqa: F401 (a fixture)

from libxl.hosts.sim import SimHost
from tests.agent_helpers import wait_for, write_atomic

CLI = REPO_ROOT / ".venv" / "bin" / "xenreconcile"


def start(tmp_path: Path, names: dict[str, int],
          listener: NotifyListener | None = None) -> tuple[Agent, Path]:
    """An agent over a file-backed host with 4 GiB, its desired files (name -> MiB) and settings."""
    desired = tmp_path / "desired"
    desired.mkdir()
    for name, mib in names.items():
        write_atomic(desired / f"{name}.xml", domain_xml(name, memory_mib=mib))
    settings = tmp_path / "agent.toml"
    settings.write_text(f'uri = "test://{tmp_path}/host.json?memory_mib=4096"\ndesired_dir = "{desired}"\n'
                        f'state_dir = "{tmp_path / "st"}"\nsocket_path = "{tmp_path / "agent.sock"}"\n'
                        'owner = "test-agent"\nstrict_modes = false\n')
    env = {"NOTIFY_SOCKET": listener.path} if listener else None
    return Agent(tmp_path, "--config", str(settings), env=env), settings


def sim(tmp_path: Path) -> SimHost:
    return SimHost(path=tmp_path / "host.json")


def domains(tmp_path: Path) -> dict[str, tuple[int, str]]:
    return {d.name: (d.domid, d.state) for d in sim(tmp_path).list_domains() if d.domid != 0}


def test_a_guest_that_cannot_be_created_does_not_hold_readiness(tmp_path: Path,
                                                                notify: NotifyListener) -> None:  # noqa: F811
    agent, _ = start(tmp_path, {"web": 64, "huge": 8192}, notify)  # huge: more than the host has
    try:
        ready = notify.until("READY=1")
        assert "1 error" in ready[-1]["STATUS"] and "1 in-sync" in ready[-1]["STATUS"]
        assert agent.get("/readyz") == (200, "ready\n")
        status = json.loads(agent.get("/status")[1])
        assert status["domains"]["huge"]["state"] == "error"
        assert "not enough free memory" in status["domains"]["huge"]["last_error"]
        text = agent.get("/metrics")[1]
        values = {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert values[("xenreconcile_domain_status", (("domain", "huge"), ("state", "error")))] == 1
        assert domains(tmp_path).keys() == {"web"}
    finally:
        agent.stop(signal.SIGKILL)


def test_xl_save_and_migrate_are_respected_and_clear_starts_the_guest(tmp_path: Path) -> None:
    agent, settings = start(tmp_path, {"web": 64, "db": 64})
    try:
        wait_for(lambda: domains(tmp_path).keys() == {"web", "db"}, what="guests created")
        web, db = domains(tmp_path)["web"][0], domains(tmp_path)["db"][0]
        sim(tmp_path).save(web, str(tmp_path / "web.save"))  # xl save: suspend, then destroy
        host = sim(tmp_path)
        host.suspend_for_migration(db)  # xl migrate: NAME--migratedaway ...
        wait_for(lambda: any(x.get("domain") == "db" and x.get("status") == "migrated-away"
                             for x in agent.logged("reconciled")), what="db migrating away")
        host.destroy(db)  # ... destroyed once the other host runs it
        wait_for(lambda: any(x.get("domain") == "web" and x.get("reason") == "saved"
                             for x in agent.logged("guest left the host")), what="save recorded")
        status = lambda: json.loads(agent.get("/status")[1])["domains"]  # noqa: E731
        wait_for(lambda: status()["web"]["state"] == "saved" and status()["db"]["state"] == "migrated-away",
                 what="saved and migrated-away reported")
        assert domains(tmp_path) == {}
        done = subprocess.run([str(CLI), "clear", "web", "--config", str(settings)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0 and "web: cleared" in done.stdout, done.stderr
        wait_for(lambda: "web" in domains(tmp_path), what="web started after clear")
        assert "db" not in domains(tmp_path)
    finally:
        agent.stop(signal.SIGKILL)


def test_adopt_over_the_socket_takes_a_running_guest_over(tmp_path: Path) -> None:
    sim(tmp_path).create(config("web", memkb=65536))  # started by xl before the hand-over
    agent, settings = start(tmp_path, {"web": 64})
    try:
        status = lambda: json.loads(agent.get("/status")[1])["domains"].get("web", {})  # noqa: E731
        wait_for(lambda: status().get("state") == "conflict", what="web reported unowned")
        done = subprocess.run([str(CLI), "adopt", "web", "--config", str(settings)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0 and "web: adopted" in done.stdout, done.stderr
        wait_for(lambda: status().get("state") not in (None, "conflict"), what="web reconciled as owned")
        # The xl-made guest differs from its file (devices the file adds): reported, not applied.
        assert status()["state"] == "restart-required", json.dumps(status())
        assert domains(tmp_path)["web"][0] == 1  # the same guest, never restarted
    finally:
        agent.stop(signal.SIGKILL)


def test_agent_socket_passes_names_to_verbs_and_refuses_bad_arguments(tmp_path: Path) -> None:
    import pytest

    from agent.daemon.socket_api import AgentSocket, query
    from libxl.errors import BackendUnavailable

    path = str(tmp_path / "a.sock")
    server = AgentSocket(path, {"status": lambda: {"ok": True},
                                "clear": lambda *names: {"cleared": list(names)}})
    server.start()
    try:
        assert query(path, "clear web db") == {"cleared": ["web", "db"]}
        assert query(path, "status") == {"ok": True}
        with pytest.raises(BackendUnavailable, match="takes other arguments"):
            query(path, "status now")
        with pytest.raises(BackendUnavailable, match="unknown request"):
            query(path, "reboot web")
    finally:
        server.stop()


def test_status_follows_a_guest_that_fails_after_ready(tmp_path: Path, notify: NotifyListener) -> None:  # noqa: F811
    agent, _ = start(tmp_path, {"web": 64}, notify)
    try:
        notify.until("READY=1")
        write_atomic(tmp_path / "desired" / "huge.xml", domain_xml("huge", memory_mib=8192))
        wait_for(lambda: any("1 error" in m.get("STATUS", "") for m in notify.messages),
                 what="STATUS= naming the failed guest")
    finally:
        agent.stop(signal.SIGKILL)
