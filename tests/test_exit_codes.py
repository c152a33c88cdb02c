"""``plan`` exits 2 whenever a change is pending, RestartRequired included; ``apply`` exits 3 when it
leaves only RestartRequired changes unapplied (issue 15), so a CI gate never reads success for a
change that will not happen."""

from __future__ import annotations

from pathlib import Path

from reconcile_fixtures import domain_xml
from test_reconcile_cli import Host, host  # noqa: F401 (a fixture)


def test_restart_required_alone_makes_plan_exit_2_and_apply_exit_3(host: Host) -> None:  # noqa: F811
    (host.dir / "web.xml").write_text(domain_xml("web"))
    assert host.run("apply").returncode == 0
    assert host.run("plan").returncode == 0
    (host.dir / "web.xml").write_text(domain_xml("web", kernel="/boot/new"))
    plan = host.run("plan")
    assert plan.returncode == 2, plan.stdout
    assert "RestartRequired" in plan.stdout and "No changes" in plan.stdout
    applied = host.run("apply")
    assert applied.returncode == 3 and "Restart required" in applied.stdout
    assert host.run("apply", "--restart", "always").returncode == 0
    assert host.run("plan").returncode == 0


def test_apply_with_something_else_left_still_exits_1(host: Host, tmp_path: Path) -> None:  # noqa: F811
    (host.dir / "web.xml").write_text(domain_xml("web"))
    (host.dir / "bad.xml").write_text("<domain")
    assert host.run("apply").returncode == 1
