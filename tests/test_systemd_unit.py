"""The shipped unit file: `systemd-analyze verify` accepts it without a single warning."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "etc" / "systemd" / "xenreconcile.service"
GUESTS_UNIT = UNIT.with_name("xenreconcile-guests.service")


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze not installed (Debian package 'systemd')")
    return subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=120)


def verify_with_this_checkout(unit: Path, key: str, tmp_path: Path) -> None:
    """``key`` names the packaged binary; point it at this checkout's entry point so verify can
    check the rest (it refuses a missing executable), and demand silence."""
    binary = Path(sys.executable).with_name("xenreconcile")
    if not binary.exists():
        pytest.skip(f"{binary} missing: run `pip install -e .` first")
    text = unit.read_text().replace(f"{key}=/usr/bin/xenreconcile", f"{key}={binary}")
    assert text != unit.read_text()
    copy = tmp_path / unit.name
    copy.write_text(text)
    result = verify(copy)
    # Unknown keys and bad values are only warnings (exit 0): demand silence, not just status 0.
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    verify_with_this_checkout(UNIT, "ExecStart", tmp_path)


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
    # Issue 16: the default 90 s start timeout restarted a slow dom0's agent before its first full
    # reconcile could finish (READY=1), in a loop.
    assert int(service["TimeoutStartSec"]) >= 300
    assert service["DevicePolicy"] == "closed"
    assert "PrivateDevices" not in service  # it would hide /dev/xen
    assert service["ProtectSystem"] == "strict"
    assert service["NoNewPrivileges"] == "yes"
    # Issue 15: no Conflicts= with xendomains (systemd would stop it, and it stops the guests).
    assert "xendomains.service" not in unit.get("Conflicts", "")
    assert "xenstored.service" in unit["After"]
    assert "xen.service" in unit["After"].split()  # Debian's sysv script starts xenstored
    assert unit["ConditionPathExists"] == "/proc/xen/capabilities"
    allowed = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines()
               if line.startswith("DeviceAllow=")]
    assert "/dev/xen/privcmd rw" in allowed and "/dev/xen/evtchn rw" in allowed


def _parsed(unit: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    return parser


def test_guests_unit_verifies_cleanly(tmp_path: Path) -> None:
    verify_with_this_checkout(GUESTS_UNIT, "ExecStop", tmp_path)


def test_guests_unit_acts_at_host_shutdown_only_after_the_agent_stopped() -> None:
    unit, service = _parsed(GUESTS_UNIT)["Unit"], _parsed(GUESTS_UNIT)["Service"]
    # Started before the agent, so stopped after it (stop order is the reverse of start order).
    assert "xenreconcile.service" in unit["Before"].split()
    assert {"xenstored.service", "xenconsoled.service"} <= set(unit["After"].split())
    # Debian's sysv units (no native xenstored.service there): stopped before xen's daemons stop and
    # before xendomains would save the same guests (issue 16).
    assert {"xen.service", "xendomains.service"} <= set(unit["After"].split())
    assert (service["Type"], service["RemainAfterExit"]) == ("oneshot", "yes")
    assert "ExecStart" not in service  # starting it does nothing
    assert service["ExecStop"].split()[1:3] == ["host-shutdown", "--config"]
    # Nothing ties it to the agent's restarts: restarting or stopping the agent leaves it running.
    agent = _parsed(UNIT)["Unit"]
    for key in ("Requires", "BindsTo", "PartOf", "Wants"):
        assert "xenreconcile-guests.service" not in agent.get(key, "")
        assert "xenreconcile.service" not in unit.get(key, "")
