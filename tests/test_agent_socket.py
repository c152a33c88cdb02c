"""xen+unix:///system: the agent's root-only socket serving status and list."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.daemon.socket_api import AgentSocket, query
from libxl.errors import BackendUnavailable
from tests.agent_helpers import wait_for

CLI = Path(sys.executable).parent / "xenreconcile"
STATUS = {"ready": True, "invalid_files": {},
          "domains": {"web": {"state": "InSync", "last_action": "create", "file": "/d/web.xml"}}}
ROWS = [{"name": "Domain-0", "domid": 0, "uuid": "00000000-0000-0000-0000-000000000000", "state": "running",
         "memory_kib": 1048576, "max_memory_kib": 1048576, "vcpus_online": 2, "vcpus_max": 2,
         "shutdown_reason": None, "owner": None, "cpu_time_ns": 0}]


@pytest.fixture
def served(tmp_path: Path):
    path = tmp_path / "run" / "agent.sock"
    server = AgentSocket(str(path), {"status": lambda: STATUS, "list": lambda: ROWS})
    server.start()
    yield path
    server.stop()


def test_socket_is_root_only_and_answers(served: Path) -> None:
    assert stat.S_IMODE(served.stat().st_mode) == 0o600
    assert query(str(served), "status") == STATUS
    assert query(str(served), "list") == ROWS
    with pytest.raises(BackendUnavailable, match="refused: unknown request 'bogus'"):
        query(str(served), "bogus")


def test_cli_reads_list_and_status_through_the_socket(served: Path) -> None:
    uri = f"xen+unix:///system?socket={served}"
    listed = subprocess.run([str(CLI), "list", "--uri", uri], capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == ["Domain-0", "0"]
    status = subprocess.run([str(CLI), "status", "--json", "--uri", uri], capture_output=True, text=True,
                            timeout=60)
    assert json.loads(status.stdout) == STATUS
    plan = subprocess.run([str(CLI), "plan", "--uri", uri, "--dir", "."], capture_output=True, text=True,
                          timeout=60)
    assert (plan.returncode, plan.stderr) == (
        1, "xenreconcile plan: xen+unix:// URIs are read-only (list, status): it serves list, status only.\n")


def test_no_agent_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([str(CLI), "list", "--uri", f"xen+unix:///system?socket={tmp_path}/none.sock"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (
        1, f"xenreconcile list: no agent socket at {tmp_path}/none.sock (is `xenreconcile run` active?)\n")


def test_stale_socket_is_replaced_and_a_live_one_kept(tmp_path: Path, served: Path) -> None:
    with pytest.raises(OSError, match="another agent is listening"):
        AgentSocket(str(served), {})
    stale = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(stale))
    dead.close()  # the file stays, nobody listens: a crashed agent's leftover
    replacement = AgentSocket(str(stale), {"list": lambda: []})
    replacement.start()
    try:
        assert query(str(stale), "list") == []
    finally:
        replacement.stop()
    assert not stale.exists()


def test_the_agent_serves_its_socket(tmp_path: Path) -> None:
    sock = tmp_path / "agent.sock"
    desired = tmp_path / "desired"
    desired.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'uri = "test://{tmp_path}/host.json"\ndesired_dir = "{desired}"\n'
                      f'state_dir = "{tmp_path / "state"}"\nmetrics_listen = "127.0.0.1:0"\n'
                      f'socket_path = "{sock}"\nxl_conf = ""\nlibxl_conf = ""\nlog_format = "json"\n')
    agent = subprocess.Popen([str(CLI), "run", "--config", str(config)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        wait_for(sock.exists, timeout=30, what="the agent's socket")
        uri = f"xen+unix:///system?socket={sock}"

        def status() -> dict:
            done = subprocess.run([str(CLI), "status", "--json", "--uri", uri], capture_output=True,
                                  text=True, timeout=60)
            return json.loads(done.stdout)

        wait_for(lambda: status()["ready"], timeout=30, what="a ready status")
        assert status()["desired_dir"] == str(desired)
        listed = subprocess.run([str(CLI), "list", "--json", "--uri", uri], capture_output=True, text=True,
                                timeout=60)
        assert [row["name"] for row in json.loads(listed.stdout)] == ["Domain-0"]
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=30) == 0
    assert not os.path.exists(sock)
