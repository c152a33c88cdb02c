"""sd_notify datagrams received on a real AF_UNIX socket, path and abstract namespace."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.daemon.systemd import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def recv(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_ready_status_watchdog_stopping_on_a_path_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier({"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready("3 domains in sync")
    assert recv(sock) == {"READY": "1", "STATUS": "3 domains in sync"}
    assert n.status("reconciling")
    assert recv(sock) == {"STATUS": "reconciling"}
    assert n.watchdog()
    assert recv(sock) == {"WATCHDOG": "1"}
    assert n.stopping()
    assert recv(sock) == {"STOPPING": "1"}


def test_reloading_carries_a_current_monotonic_timestamp(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier({"NOTIFY_SOCKET": path}).reloading()
    msg = recv(sock)
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert msg["RELOADING"] == "1"
    assert before <= int(msg["MONOTONIC_USEC"]) <= after


def test_abstract_namespace_socket() -> None:
    name = f"xenreconcile-test-{os.getpid()}-{time.monotonic_ns()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert recv(sock) == {"READY": "1"}
    finally:
        sock.close()


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog_interval is None


def test_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}).ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_pid_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "20000000"}).watchdog_interval == 10.0
    assert Notifier({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 10.0
    assert Notifier({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_interval is None


def test_a_full_socket_never_blocks_the_sender(listener: tuple[socket.socket, str]) -> None:
    """Nobody reads the socket: sends fail fast instead of hanging the reconcile loop."""
    _, path = listener
    n = Notifier({"NOTIFY_SOCKET": path}, send_timeout=0.05)
    assert n.watchdog() is True
    for _ in range(100_000):  # fill the receive queue; the first refused send ends the loop
        start = time.monotonic()
        if not n.watchdog():
            break
    else:
        pytest.fail("the socket never filled up")
    assert time.monotonic() - start < 2  # dropped after the send timeout, not hung
