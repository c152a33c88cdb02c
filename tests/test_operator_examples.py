"""The operator pictures (issue 15): the Grafana dashboard and the Prometheus alert rules in
examples/ are checked by promtool, and use only metrics the agent really exports."""

from __future__ import annotations

import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent import log as agentlog
from agent.daemon.loop import Controller
from libxl.hosts.uri import open_backend
from tests.agent_helpers import settings
from tests.citools import ci_tool
from tests.reconcile_fixtures import domain_xml

REPO_ROOT = Path(__file__).resolve().parent.parent
RULES = sorted((REPO_ROOT / "examples" / "prometheus").glob("*.yml"))
RULE_TESTS = sorted((REPO_ROOT / "tests" / "data" / "prometheus").glob("*.test.yml"))
DASHBOARDS = sorted((REPO_ROOT / "examples" / "grafana").glob("*.json"))
METRIC = re.compile(r"\bxenreconcile_[a-z0-9_]+")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",),
             "info": ("_info",), "unknown": ("",), "summary": ("_sum", "_count", "")}


def test_the_examples_exist() -> None:
    assert RULES and RULE_TESTS and DASHBOARDS


@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_promtool_checks_the_rules(path: Path) -> None:
    result = subprocess.run([ci_tool("promtool", "prometheus"), "check", "rules", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests_of_the_alerts_pass(path: Path) -> None:
    result = subprocess.run([ci_tool("promtool", "prometheus"), "test", "rules", path.name], cwd=path.parent,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


_RULE_KEY = re.compile(r"^\s*(?:- )?(alert|expr|severity|summary|description): (.*)$")


def _rules() -> list[dict[str, str]]:
    """Each alert's one-line keys (no YAML library in the project: promtool, above, checks the
    structure; this reads the values the other checks look at)."""
    rules: list[dict[str, str]] = []
    for path in RULES:
        for line in path.read_text().splitlines():
            match = _RULE_KEY.match(line)
            if match is None:
                continue
            key, value = match.groups()
            if key == "alert":
                rules.append({})
            rules[-1][key] = value.strip().strip('"')
    return rules


def test_the_rules_alert_on_what_operators_asked_for() -> None:
    """A guest drifted, restart required, a desired file invalid, reconcile errors, not ready."""
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    for metric in ("xenreconcile_domain_drifted", "xenreconcile_domain_restart_required",
                   "xenreconcile_desired_file_invalid", "xenreconcile_reconcile_errors_total",
                   "xenreconcile_ready"):
        assert any(metric in expr for expr in exprs.values()), metric
    assert len(exprs) == len(_rules())  # no alert name used twice
    for rule in _rules():
        assert rule["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["summary"] and rule["description"], rule["alert"]


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for p in panels:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24, p["title"]
        mine = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        if p["type"] != "row":
            assert p["targets"] and all(t["expr"] for t in p["targets"]), p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
    exprs = " ".join(_dashboard_exprs(dashboard))
    # Both halves of the picture: the controller's series and the guests' runtime series.
    for metric in ("xenreconcile_ready", "xenreconcile_domain_drifted", "xenreconcile_reconcile_total",
                   "xenreconcile_domain_cpu_seconds_total", "xenreconcile_domain_memory_bytes",
                   "xenreconcile_domain_block_read_bytes_total",
                   "xenreconcile_domain_network_receive_bytes_total"):
        assert metric in exprs, metric


def exported_names(tmp_path: Path) -> set[str]:
    """Every series name a real agent's /metrics offers, after one full resync of a host with a
    graphical guest and an invalid file (so every per-domain and per-file family has samples)."""
    agentlog.configure("json", "warning", stream=io.StringIO())  # not a stream another test closed
    cfg = settings(tmp_path)
    desired = Path(cfg.desired_dir)
    (desired / "web.xml").write_text(domain_xml("web", memory_mib=64).replace(
        "</devices>", "<graphics type='vnc'/></devices>"))
    (desired / "bad.xml").write_text("<domain")
    controller = Controller(cfg, open_backend(cfg.uri))
    controller.reconciler.ports._probe = lambda port: True
    try:
        assert controller.full_resync()
        text = generate_latest(controller.metrics.registry).decode()
    finally:
        controller.backend.close()
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in _SUFFIXES[family.type]}
        names |= {s.name for s in family.samples}
    return names


def test_every_metric_the_pictures_use_is_exported(tmp_path: Path) -> None:
    exported = exported_names(tmp_path)
    used = {m for rule in _rules() for m in METRIC.findall(rule["expr"])}
    for path in DASHBOARDS:
        used |= {m for expr in _dashboard_exprs(json.loads(path.read_text())) for m in METRIC.findall(expr)}
    assert used, "no xenreconcile metric found in the examples"
    assert sorted(used - exported) == []
    # The runtime and display-port series really have samples for the guest.
    assert {"xenreconcile_domain_cpu_seconds_total", "xenreconcile_domain_display_port"} <= exported
