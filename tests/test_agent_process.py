"""The agent as a real process: notify datagrams, HTTP endpoints, SIGHUP, SIGTERM, SIGKILL + restart."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from libxl.hosts.uri import open_backend
from reconcilers.state import StateDir
from tests.agent_helpers import wait_for, write_atomic
from tests.reconcile_fixtures import domain_xml

REPO = Path(__file__).resolve().parent.parent


class Agent:
    """``xenreconcile run`` in a subprocess, its JSON log lines collected by a thread."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [sys.executable, "-m", "agent.cli", "run", "--metrics-listen", "127.0.0.1:0",
               "--log-format", "json", "--debounce", "0.05", "--owner", "test-agent", *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})}, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[dict[str, object]] = []
        self.raw: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.raw.append(line)
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(line))

    def logged(self, event: str) -> list[dict[str, object]]:
        return [x for x in list(self.lines) if x.get("event") == event]

    @property
    def url(self) -> str:
        start = wait_for(lambda: self.logged("agent starting"), what="agent start line")[0]
        return str(start["metrics"]).removesuffix("/metrics")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            print("".join(self.raw[-15:]))  # shown by pytest on failure: the agent's last words
            raise


class NotifyListener:
    """A stand-in for systemd's manager: reads every datagram as it arrives, as systemd does."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.messages: list[dict[str, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(path)
        self._sock.settimeout(0.1)
        self._closed = False
        self._seen = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self._sock.recv(4096).decode()
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(dict(line.split("=", 1) for line in data.splitlines()))

    def until(self, wanted: str, timeout: float = 20.0) -> list[dict[str, str]]:
        """Messages since the last call, up to the first containing ``wanted`` (KEY=VALUE)."""
        key, value = wanted.split("=", 1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i in range(self._seen, len(self.messages)):
                if self.messages[i].get(key) == value:
                    got, self._seen = self.messages[self._seen:i + 1], i + 1
                    return got
            time.sleep(0.01)
        raise AssertionError(f"no {wanted} within {timeout} s; got {self.messages[self._seen:]}")

    def close(self) -> None:
        self._closed = True
        self._sock.close()


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(str(tmp_path / "notify.sock"))
    yield listener
    listener.close()


def host(tmp_path: Path) -> str:
    return f"test://{tmp_path}/host.json?memory_mib=65536"


def setup_dir(tmp_path: Path, names: list[str]) -> Path:
    desired = tmp_path / "desired"
    desired.mkdir()
    for name in names:
        write_atomic(desired / f"{name}.xml", domain_xml(name, memory_mib=64))
    return desired


def guests(tmp_path: Path) -> list[str]:
    backend = open_backend(f"test://{tmp_path}/host.json")
    try:
        return sorted(d.name for d in backend.list_domains() if d.domid != 0)
    finally:
        backend.close()


def test_notify_endpoints_status_and_sigterm(tmp_path: Path, notify: NotifyListener) -> None:
    desired = setup_dir(tmp_path, ["web", "db"])
    agent = Agent(tmp_path, "--uri", host(tmp_path), "--dir", str(desired),
                  "--state-dir", str(tmp_path / "st"),
                  env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"})
    try:
        ready = notify.until("READY=1")
        assert "2 in-sync" in ready[-1]["STATUS"]
        assert guests(tmp_path) == ["db", "web"]
        # The loop itself keeps pinging the watchdog (every WATCHDOG_USEC/2 = 0.2 s).
        for _ in range(3):
            assert notify.until("WATCHDOG=1", timeout=5)[-1] == {"WATCHDOG": "1"}
        assert agent.get("/readyz") == (200, "ready\n")
        assert agent.get("/healthz") == (200, "ok\n")
        code, text = agent.get("/metrics")
        assert code == 200
        values = {(s.name, tuple(sorted(s.labels.items()))): s.value
                  for fam in text_string_to_metric_families(text) for s in fam.samples}
        assert values[("xenreconcile_domain_desired", (("domain", "web"),))] == 1
        assert values[("xenreconcile_libxl_call_duration_seconds_count", (("operation", "create"),))] == 2
        promtool = shutil.which("promtool")
        if promtool:  # the full check of the exposition is in test_metrics.py; this is a live scrape
            check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                                   text=True, timeout=60)
            assert check.returncode == 0 and not (check.stdout + check.stderr).strip(), check.stdout
        status = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url", agent.url],
                                cwd=REPO, capture_output=True, text=True, timeout=30)
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        assert [line.split()[:2] for line in lines] == [["db", "in-sync"], ["web", "in-sync"]]
        as_json = subprocess.run([sys.executable, "-m", "agent.cli", "status", "--url", agent.url, "--json"],
                                 cwd=REPO, capture_output=True, text=True, timeout=30)
        assert json.loads(as_json.stdout)["domains"]["web"]["state"] == "in-sync"
        assert agent.stop(signal.SIGTERM) == 0
        notify.until("STOPPING=1")
        # SIGTERM never touches guests.
        assert guests(tmp_path) == ["db", "web"]
    finally:
        agent.stop(signal.SIGKILL)


def test_sighup_rereads_config_and_rescans(tmp_path: Path, notify: NotifyListener) -> None:
    desired = setup_dir(tmp_path, ["web", "db"])
    config = tmp_path / "agent.toml"
    config.write_text(f'uri = "{host(tmp_path)}"\ndesired_dir = "{desired}"\n'
                      f'state_dir = "{tmp_path / "st"}"\nprune = "none"\n')
    agent = Agent(tmp_path, "--config", str(config), env={"NOTIFY_SOCKET": notify.path})
    try:
        notify.until("READY=1")
        (desired / "db.xml").unlink()
        wait_for(lambda: any(x.get("domain") == "db" and x.get("status") == "drifted"
                             for x in agent.logged("reconciled")), what="db reported as orphan")
        assert guests(tmp_path) == ["db", "web"], "prune=none keeps the guest"
        config.write_text(config.read_text().replace('prune = "none"', 'prune = "destroy"'))
        agent.proc.send_signal(signal.SIGHUP)
        msgs = notify.until("READY=1")
        reloading = next(m for m in msgs if m.get("RELOADING") == "1")
        assert int(reloading["MONOTONIC_USEC"]) > 0
        # The reload re-read the config and rescanned: the orphan is now pruned.
        wait_for(lambda: guests(tmp_path) == ["web"], what="orphan pruned after reload")
        assert agent.proc.poll() is None
    finally:
        assert agent.stop() == 0


def test_a_second_agent_on_the_same_state_directory_exits_at_once(tmp_path: Path) -> None:
    desired = setup_dir(tmp_path, ["web"])
    args = ("--uri", host(tmp_path), "--dir", str(desired), "--state-dir", str(tmp_path / "st"))
    first = Agent(tmp_path, *args)
    try:
        wait_for(lambda: first.logged("ready"), timeout=60, what="first agent ready")
        second = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", "/dev/null",
                                 "--metrics-listen", "127.0.0.1:0", *args], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 1
        assert f"in use by another xenreconcile (pid {first.proc.pid})" in second.stderr
        assert first.proc.poll() is None
    finally:
        assert first.stop() == 0


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text("wokers = 3\n")
    result = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", str(config)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "wokers: unknown setting" in result.stderr
    bad_flag = subprocess.run([sys.executable, "-m", "agent.cli", "run", "--config", "/dev/null",
                               "--metrics-listen", "nowhere"], cwd=REPO, capture_output=True, text=True,
                              timeout=60)
    assert bad_flag.returncode == 2
    assert "metrics_listen" in bad_flag.stderr


def test_sigkill_mid_apply_then_restart_converges_without_duplicates(tmp_path: Path) -> None:
    names = [f"g{i}" for i in range(6)]
    desired = setup_dir(tmp_path, names)
    slow = f"test://{tmp_path}/host.json?memory_mib=65536&latency=0.15"
    args = ("--uri", slow, "--dir", str(desired), "--state-dir", str(tmp_path / "st"))
    first = Agent(tmp_path, *args)
    try:
        wait_for(lambda: 1 <= len(guests(tmp_path)) < len(names), timeout=60, what="apply under way")
        first.stop(signal.SIGKILL)
        partial = guests(tmp_path)
        assert 1 <= len(partial) < len(names), partial
    finally:
        first.stop(signal.SIGKILL)
    second = Agent(tmp_path, *args)
    try:
        wait_for(lambda: second.logged("ready"), timeout=60, what="second agent ready")
        backend = open_backend(f"test://{tmp_path}/host.json")
        listed = [d for d in backend.list_domains() if d.domid != 0]
        backend.close()
        assert sorted(d.name for d in listed) == names  # each name exactly once
        assert all(d.owner == "test-agent" for d in listed)
        recorded = [entry.uuid for entry in StateDir(tmp_path / "st").load().domains.values()]
        assert len(recorded) == len(set(recorded))
        assert set(recorded) <= {d.uuid for d in listed}, "the inventory names no phantom guest"
        # Guests created before the kill were kept, not recreated.
        assert not [x for x in second.logged("applied") if x.get("domain") in partial]
    finally:
        assert second.stop() == 0
