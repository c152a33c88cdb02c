"""One release number: pyproject.toml (pip), debian/changelog (the .deb) and ``agent.VERSION``
(what build_info, the HTTP Server header and ``--version`` report) must agree."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from agent import VERSION
from agent.cli.main import main

PROJECT = Path(__file__).resolve().parent.parent


def test_pyproject_and_debian_changelog_carry_the_agents_version() -> None:
    pyproject = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
    first = (PROJECT / "debian" / "changelog").read_text().splitlines()[0]
    upstream = re.match(r"xenreconcile \(([^)-]+)(?:-[^)]*)?\)", first)
    assert upstream, first
    assert (pyproject, upstream.group(1)) == (VERSION, VERSION)


def test_version_flag_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert (done.value.code, capsys.readouterr().out) == (0, f"xenreconcile {VERSION}\n")
