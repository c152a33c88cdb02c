"""Shared helpers for the agent tests: a controller on a simulated host, waiting, atomic writes."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from agent.daemon.loop import Controller
from libxl.hosts.uri import open_backend


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def write_atomic(path: Path, text: str) -> None:
    """Write like a config manager: a dotted temporary file renamed over the target."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.rename(tmp, path)


def settings(tmp_path: Path, **overrides: Any) -> AgentConfig:
    desired = tmp_path / "desired"
    desired.mkdir(exist_ok=True)
    base = AgentConfig(uri="test:///default?memory_mib=1048576&cpus=64", desired_dir=str(desired),
                       state_dir=str(tmp_path / "state"), resync_interval=3600.0, debounce=0.05,
                       backoff_base=0.005, backoff_cap=0.2, log_format="json", owner="test-agent",
                       dump_dir=str(tmp_path / "dump"), save_dir=str(tmp_path / "save"))
    return replace(base, **overrides)


@contextmanager
def running(config: AgentConfig, backend: Any = None) -> Iterator[Controller]:
    """A controller running its loop in a thread; stopped (like SIGTERM) on exit."""
    controller = Controller(config, backend or open_backend(config.uri))
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(controller.run()), daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        controller.request_stop()
        thread.join(30)
        assert not thread.is_alive(), "controller did not stop"
        assert result == [0]


def names_on_host(backend: Any) -> list[str]:
    return sorted(d.name for d in backend.list_domains() if d.domid != 0)
