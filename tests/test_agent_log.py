"""structlog output: JSON lines off a terminal, console on a real pty, domain fields always bound."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import pytest
import structlog

from agent import log


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_json_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    assert log.configure("auto", "info", stream=out) == "json"
    log.domain_logger("web", "/d/web.xml", "create", "abc123").info("applied", reason="not on the host")
    log.get_logger().debug("hidden at info level")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert {k: record[k] for k in ("domain", "file", "action", "reconcile_id", "event", "level")} == {
        "domain": "web", "file": "/d/web.xml", "action": "create", "reconcile_id": "abc123",
        "event": "applied", "level": "info"}
    assert record["timestamp"].endswith("Z")


def test_console_on_a_real_terminal() -> None:
    master, slave = os.openpty()
    with os.fdopen(slave, "w", buffering=1) as tty:
        assert log.configure("auto", "debug", stream=tty) == "console"
        log.domain_logger("web", "/d/web.xml", "reconcile").debug("in sync")
        tty.flush()
        text = os.read(master, 4096).decode()
    os.close(master)
    assert "in sync" in text and "domain" in text and "web" in text
    with pytest.raises(ValueError):
        json.loads(text)


def test_explicit_format_wins_over_detection() -> None:
    out = io.StringIO()
    assert log.configure("console", "info", stream=out) == "console"
    log.get_logger().info("hello")
    assert "hello" in out.getvalue() and not out.getvalue().startswith("{")


def test_every_domain_line_gets_a_reconcile_id() -> None:
    out = io.StringIO()
    log.configure("json", "info", stream=out)
    log.domain_logger("a", None, "reconcile").info("x")
    log.domain_logger("a", None, "reconcile").info("y")
    ids = [json.loads(line)["reconcile_id"] for line in out.getvalue().splitlines()]
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]
