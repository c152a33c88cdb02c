"""xen+ssh:// against a real sshd on 127.0.0.1: list and plan run the project's CLI on the "remote"
side (this checkout's .venv/bin/xenreconcile) against a simulated host, as a GitOps CI job would.

The sshd is Debian's openssh-server, started in the foreground on a free port with a throw-away host
key and user key, root login by key only; the client side is the system ``ssh`` with the URI's
``keyfile=`` and ``known_hosts=`` (so the test never touches ~/.ssh).
"""

from __future__ import annotations

import getpass
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from libxl.hosts.sim import SimHost
from tests.conftest import REPO_ROOT

SSHD = Path("/usr/sbin/sshd")
XENRECONCILE = Path(sys.executable).parent / "xenreconcile"
PV_CFG = (REPO_ROOT / "examples" / "desired" / "pv-xl.cfg").read_text()


@dataclass(frozen=True)
class Remote:
    port: int
    tmp: Path
    host_json: Path
    agent_toml: Path

    def query(self, **extra: str) -> str:
        params = {"keyfile": str(self.tmp / "id"), "known_hosts": str(self.tmp / "known_hosts"),
                  "command": str(XENRECONCILE), "config": str(self.agent_toml), **extra}
        return "&".join(f"{k}={v}" for k, v in params.items())

    def uri(self, **extra: str) -> str:
        """The README's xen+ssh form; the remote agent's TOML points xen:///system at the sim host."""
        return f"xen+ssh://{getpass.getuser()}@127.0.0.1:{self.port}/system?{self.query(**extra)}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    if not SSHD.exists():
        pytest.skip("/usr/sbin/sshd is absent: install Debian's openssh-server (.ci/run does)")
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("the ssh client (ssh, ssh-keygen) is absent: install openssh-client")
    if os.geteuid() != 0:
        pytest.skip("sshd needs root for privilege separation; run the suite as root (CI does)")
    if not XENRECONCILE.exists():
        pytest.skip(f"{XENRECONCILE} is missing: run `.venv/bin/pip install -e .`")
    tmp = tmp_path_factory.mktemp("sshd")
    _keygen(tmp / "host_key")
    _keygen(tmp / "id")
    (tmp / "authorized_keys").write_text((tmp / "id.pub").read_text())
    port = _free_port()
    (tmp / "known_hosts").write_text(f"[127.0.0.1]:{port} {(tmp / 'host_key.pub').read_text()}")
    config = tmp / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {tmp / 'host_key'}",
        f"PidFile {tmp / 'sshd.pid'}",
        f"AuthorizedKeysFile {tmp / 'authorized_keys'}", "PermitRootLogin prohibit-password",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PubkeyAuthentication yes",
        "StrictModes no", "UsePAM no", f"AllowUsers {getpass.getuser()}", "LogLevel ERROR", "",
    ]))
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # Debian's sshd wants its privsep directory
    log = (tmp / "sshd.log").open("w")
    server = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30  # readiness wait, not a timing assertion
        while True:
            if server.poll() is not None:
                pytest.fail(f"sshd exited {server.returncode}: {(tmp / 'sshd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("sshd did not start listening within 30 s")
                time.sleep(0.05)
        host_json = tmp / "host.json"
        agent_toml = tmp / "agent.toml"
        agent_toml.write_text(f'uri = "test://{host_json}"\nstate_dir = "{tmp / "state"}"\n')
        yield Remote(port, tmp, host_json, agent_toml)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(XENRECONCILE), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_remote_list_renders_the_remote_host(remote: Remote) -> None:
    SimHost(path=remote.host_json).create(
        {"c_info": {"name": "unmanaged", "type": "pv"}, "b_info": {"max_memkb": 65536, "kernel": "/k"}})
    done = cli("list", "--uri", remote.uri())
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()[1:]]
    assert names == ["Domain-0", "unmanaged"]
    as_json = cli("list", "--json", "--uri", remote.uri())
    assert '"name": "unmanaged"' in as_json.stdout


def test_remote_plan_is_what_merging_would_change(remote: Remote, tmp_path: Path) -> None:
    """The README's CI example: local files, remote host, plan exit codes 2 then 0."""
    hosts = tmp_path / "hosts" / "host-a"
    hosts.mkdir(parents=True)
    (hosts / "pv-xl.cfg").write_text(PV_CFG)
    plan = cli("plan", "--uri", remote.uri(), "--dir", "./hosts/host-a/", cwd=tmp_path)
    assert plan.returncode == 2, plan.stderr
    assert "+ pv-xl  create" in plan.stdout
    assert "Plan: 1 to create" in plan.stdout
    # the remote agent applies (locally, on its host); the same plan then has nothing to do
    applied = cli("apply", "--uri", f"test://{remote.host_json}", "--dir", str(hosts),
                  "--state-dir", str(remote.tmp / "state"))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = cli("plan", "--uri", remote.uri(), "--dir", "./hosts/host-a/", cwd=tmp_path)
    assert (again.returncode, again.stdout.strip()) == (0, "No changes. The host matches the desired state.")


def test_remote_plan_names_local_files_and_fails_on_invalid_ones(remote: Remote, tmp_path: Path) -> None:
    (tmp_path / "broken.cfg").write_text('name = "broken"\nmemory = "lots"\n')
    plan = cli("plan", "--json", "--uri", remote.uri(), "--dir", str(tmp_path))
    assert plan.returncode == 1
    assert f"{tmp_path}/broken.cfg" in plan.stdout  # the caller's path, not the remote temp dir
    assert "xenreconcile-remote-" not in plan.stdout + plan.stderr


def test_test_driver_over_ssh(remote: Remote) -> None:
    uri = f"test+ssh://127.0.0.1:{remote.port}{remote.host_json}?{remote.query()}"
    done = cli("list", "--uri", uri)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].startswith("Domain-0")


def test_missing_remote_program_is_one_line(remote: Remote) -> None:
    done = cli("list", "--uri", remote.uri(command="/nonexistent/xenreconcile"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"xenreconcile list: xenreconcile is not installed on {getpass.getuser()}@127.0.0.1: the remote "
        "command '/nonexistent/xenreconcile' was not found (name its path with ?command=)"]


def test_ssh_failure_is_one_line(remote: Remote, tmp_path: Path) -> None:
    _keygen(tmp_path / "stranger")
    done = cli("list", "--uri", remote.uri(keyfile=str(tmp_path / "stranger")))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"xenreconcile list: ssh to {getpass.getuser()}@127.0.0.1 failed: ")
    assert "Permission denied" in line


def test_unknown_host_key_is_refused_unless_no_verify(remote: Remote, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    refused = cli("list", "--uri", remote.uri(known_hosts=str(empty)))
    assert refused.returncode == 1
    assert "Host key verification failed" in refused.stderr
    accepted = cli("list", "--uri", remote.uri(known_hosts=str(empty), no_verify="1"))
    assert accepted.returncode == 0, accepted.stderr
    host_key = (remote.tmp / "host_key.pub").read_text().split()[1]
    assert host_key in empty.read_text()  # ssh recorded the key it accepted (hashed name or not)


def test_writing_verbs_refuse_remote_uris(remote: Remote, tmp_path: Path) -> None:
    done = cli("apply", "--uri", remote.uri(), "--dir", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr == ("xenreconcile apply: xen+ssh:// URIs are read-only (list, plan, status): "
                           "applying stays the host agent's job.\n")


def test_remote_status_reads_that_hosts_agent(remote: Remote) -> None:
    """``status`` runs on the remote side, so it reads the agent listening on that host's loopback."""
    doc = {"ready": True, "domains": {"pv-xl": {"state": "InSync", "last_action": "create",
                                                  "file": "/etc/xenreconcile/desired/pv-xl.cfg"}},
           "invalid_files": {}}

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps(doc).encode()
            self.send_response(200 if self.path == "/status" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    agent = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    threading.Thread(target=agent.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{agent.server_address[1]}"
        done = cli("status", "--uri", remote.uri(), "--url", url)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["pv-xl", "InSync", "create", "/etc/xenreconcile/desired/pv-xl.cfg"]
        as_json = cli("status", "--json", "--uri", remote.uri(), "--url", url)
        assert json.loads(as_json.stdout) == doc
    finally:
        agent.shutdown()
        agent.server_close()
