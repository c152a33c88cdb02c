"""The shipped unit file: `systemd-analyze verify` accepts it without a single warning."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "etc" / "systemd" / "xenreconcile.service"


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package 'systemd')")
    return subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    # ExecStart names the packaged binary; point it at this checkout's entry point so verify can
    # check the rest (it refuses a missing executable).
    binary = Path(sys.executable).with_name("xenreconcile")
    if not binary.exists():
        pytest.skip(f"{binary} missing: run `pip install -e .` first")
    text = UNIT.read_text().replace("ExecStart=/usr/bin/xenreconcile", f"ExecStart={binary}")
    assert text != UNIT.read_text()
    copy = tmp_path / "xenreconcile.service"
    copy.write_text(text)
    result = verify(copy)
    # Unknown keys and bad values are only warnings (exit 0): demand silence, not just status 0.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_unmodified_unit_only_lacks_the_installed_binary() -> None:
    result = verify(UNIT)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert problems == ["xenreconcile.service: Command /usr/bin/xenreconcile is not executable: "
                        "No such file or directory"] or (result.returncode == 0 and not problems)


def test_unit_declares_what_the_agent_relies_on() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    service, unit = parser["Service"], parser["Unit"]
    assert service["Type"] == "notify"
    assert service["KillMode"] == "process"  # guests and qemu survive an agent restart
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert "WatchdogSec" in service
    assert service["DevicePolicy"] == "closed"
    assert "PrivateDevices" not in service  # it would hide /dev/xen
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    assert "xendomains.service" in unit["Conflicts"]
    assert "xenstored.service" in unit["After"]
    assert unit["ConditionPathExists"] == "/proc/xen/capabilities"
    allowed = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
               if line.startswith("DeviceAllow=")]
    assert "/dev/xen/privcmd rw" in allowed and "/dev/xen/evtchn rw" in allowed
