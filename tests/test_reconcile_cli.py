"""End to end: ``xenreconcile plan`` / ``apply`` as subprocesses on a file-backed simulated host."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from reconcile_fixtures import domain_xml

from reconcilers.state import StateDir

CLI = REPO_ROOT / ".venv" / "bin" / "xenreconcile"


class Host:
    def __init__(self, root: Path) -> None:
        self.uri = f"test://{root / 'host.json'}"
        self.dir = root / "desired"
        self.dir.mkdir()
        self.state = root / "state"

    def run(self, verb: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(CLI), verb, "--uri", self.uri, "--dir", str(self.dir),
                               "--state-dir", str(self.state), *extra],
                              capture_output=True, text=True, timeout=120, check=False)

    def names(self) -> list[str]:
        out = subprocess.run([str(CLI), "list", "--uri", self.uri, "--json"], capture_output=True, text=True,
                             timeout=120, check=True)
        return [d["name"] for d in json.loads(out.stdout) if d["domid"] != 0]


@pytest.fixture
def host(tmp_path: Path) -> Host:
    if not CLI.exists():
        pytest.skip(f"{CLI} is missing: run .venv/bin/pip install -e .")
    return Host(tmp_path)


def test_plan_apply_plan_round_trip(host: Host) -> None:
    (host.dir / "web.xml").write_text(domain_xml("web"))
    (host.dir / "db.xml").write_text(domain_xml("db"))
    plan = host.run("plan")
    assert plan.returncode == 2, plan.stderr
    assert "+ web  create" in plan.stdout and "Plan: 2 to create" in plan.stdout
    assert host.names() == []  # plan changed nothing
    apply = host.run("apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert sorted(host.names()) == ["db", "web"]
    again = host.run("plan")
    assert again.returncode == 0 and "No changes" in again.stdout


def test_plan_shows_updates_replacements_and_prunes(host: Host) -> None:
    (host.dir / "web.xml").write_text(domain_xml("web"))
    (host.dir / "db.xml").write_text(domain_xml("db"))
    assert host.run("apply").returncode == 0
    (host.dir / "web.xml").write_text(domain_xml("web", current_mib=256, kernel="/boot/new"))
    (host.dir / "db.xml").unlink()
    plan = host.run("plan", "--prune", "destroy", "--restart", "always")
    assert plan.returncode == 2
    assert "-/+ web  recreate" in plan.stdout and "- db  destroy" in plan.stdout
    data = json.loads(host.run("plan", "--json").stdout)
    assert [(a["domain"], a["kind"]) for a in data["actions"]] == [("web", "set-memory")]
    assert {n["kind"] for n in data["notes"]} == {"RestartRequired", "Orphan"}
    # Issue 15: the kernel change is left unapplied (restart never), which apply reports as 3.
    assert host.run("apply", "--prune", "destroy").returncode == 3
    assert host.names() == ["web"]


def test_invalid_file_makes_plan_and_apply_fail_without_touching_the_guest(host: Host) -> None:
    (host.dir / "web.xml").write_text(domain_xml("web"))
    assert host.run("apply").returncode == 0
    (host.dir / "web.xml").write_text("<domain type='xen'><name>web</name>")
    plan = host.run("plan", "--prune", "destroy")
    assert plan.returncode == 1
    assert "! web  Invalid" in plan.stdout
    assert host.run("apply", "--prune", "destroy").returncode == 1
    assert host.names() == ["web"]


def test_errors_exit_1_with_a_message(host: Host) -> None:
    bad_uri = subprocess.run([str(CLI), "plan", "--uri", "bogus:///", "--dir", str(host.dir)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert bad_uri.returncode == 1 and "bogus" in bad_uri.stderr
    (host.dir / "big.xml").write_text(domain_xml("big", memory_mib=1024 * 1024))
    apply = host.run("apply")
    assert apply.returncode == 1 and "not enough free memory" in apply.stdout
    (host.dir / "big.xml").unlink()
    missing = host.run("plan", "--dir", str(host.dir / "absent"))
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_apply_refuses_while_another_writer_holds_the_state_directory(host: Host) -> None:
    """An agent (or another apply) holds the lock: apply changes nothing and says who holds it."""
    (host.dir / "web.xml").write_text(domain_xml("web"))
    with StateDir(host.state).exclusive():
        apply = host.run("apply")
        plan = host.run("plan")  # read-only: no lock needed
    assert apply.returncode == 1
    assert f"in use by another xenreconcile (pid {os.getpid()})" in apply.stderr
    assert host.names() == []
    assert plan.returncode == 2 and "+ web  create" in plan.stdout


def test_xl_cfg_applies_as_xl_builds_it_and_plans_clean_after(host: Host) -> None:
    """An xl.cfg goes through the xl front end: created, then in sync; its caveats on stderr."""
    cfg = host.dir / "pvguest.cfg"
    cfg.write_text('name = "pvguest"\nmemory = 128\nkernel = "/boot/vmlinuz"\nvcpus = 2\n'
                   'cpus = [ "0", "1" ]\nvif = [ "bridge=xenbr0,rate=10MB/s@20ms" ]\ncolour = "blue"\n')
    cfg.chmod(0o644)
    apply = host.run("apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    assert f"{cfg}:7: colour: unknown key: xl ignores it, so does the agent (warning)" in apply.stderr
    assert host.names() == ["pvguest"]
    again = host.run("plan")
    assert again.returncode == 0 and "No changes" in again.stdout, again.stdout
