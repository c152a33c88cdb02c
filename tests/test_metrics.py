"""Metrics and health endpoints served over real HTTP, parsed with prometheus_client's parser."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import VERSION
from agent.daemon.endpoints import Endpoints, MetricsServer
from agent.daemon.metrics import AgentMetrics, DomainView
from agent.daemon.queue import WorkQueue
from agent.daemon.timedbackend import TimedBackend
from libxl.errors import BackendError
from reconcilers.status import StatusBook
from tests.citools import ci_tool

BASE_NAMES = [
    "reconcile_total", "reconcile_errors_total", "reconcile_time_seconds", "workqueue_depth",
    "workqueue_adds_total", "workqueue_retries_total", "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds", "workqueue_unfinished_work_seconds",
    "workqueue_longest_running_processor_seconds", "watch_events_total", "watch_overflows_total",
    "watch_rescans_total", "libxl_call_duration_seconds", "libxl_call_errors_total",
    "last_full_sync_timestamp_seconds", "build_info", "domain_desired", "domain_drifted",
    "domain_restart_required", "domain_status", "desired_file_invalid", "desired_files_invalid",
]


class Flaky:
    uri = "test:///x"

    def list_domains(self) -> list[str]:
        return ["dom0"]

    def destroy(self, domid: int) -> None:
        raise BackendError("destroy", "no such domain")


class State:
    healthy = (True, "ok")
    ready = (False, "first full reconcile not done")


@pytest.fixture
def served() -> Iterator[tuple[AgentMetrics, str, State]]:
    metrics = AgentMetrics()
    queue = WorkQueue(hooks=metrics)
    metrics.bind_queue(queue.unfinished_work)
    book = StatusBook()
    book.record("web", "in-sync", file="/d/web.xml")
    book.record("db", "drifted", file="/d/db.cfg")
    book.record("old", "restart-required", file="/d/old.xml")
    metrics.bind_domains(lambda: DomainView(book.snapshot(), {"web", "db", "old", "new"},
                                            {"/d/broken.xml"}))
    state = State()
    server = MetricsServer(("127.0.0.1", 0), metrics.registry, Endpoints(
        healthy=lambda: state.healthy, ready=lambda: state.ready,
        status=lambda: {"domains": {k: v.to_json() for k, v in book.snapshot().items()}}))
    server.start()
    queue.add("web")
    queue.add("db")
    queue.get(timeout=0)
    metrics.observe_reconcile("success", 0.02)
    metrics.observe_reconcile("error", 0.5)
    metrics.event("file")
    metrics.overflow()
    metrics.rescan("inotify queue overflow")
    host, port = server.address
    yield metrics, f"http://{host}:{port}", state
    server.stop()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_scrape_parses_and_has_every_documented_metric(served: tuple[AgentMetrics, str, State]) -> None:
    metrics, url, _ = served
    TimedBackend(Flaky(), metrics).list_domains()
    code, text = get(url + "/metrics")
    assert code == 200
    names = {name for name, _ in samples(text)}
    for base in BASE_NAMES:
        full = f"xenreconcile_{base}"
        assert any(n == full or n.startswith(full + "_") for n in names), full
    s = samples(text)
    assert s[("xenreconcile_reconcile_total", (("result", "success"),))] == 1
    assert s[("xenreconcile_reconcile_total", (("result", "error"),))] == 1
    assert s[("xenreconcile_reconcile_errors_total", ())] == 1
    assert s[("xenreconcile_workqueue_adds_total", ())] == 2
    assert s[("xenreconcile_workqueue_depth", ())] == 1
    assert s[("xenreconcile_watch_overflows_total", ())] == 1
    assert s[("xenreconcile_watch_rescans_total", ())] == 1
    assert s[("xenreconcile_watch_events_total", (("kind", "file"),))] == 1
    assert s[("xenreconcile_workqueue_unfinished_work_seconds", ())] >= 0
    build = [labels for name, labels in s if name == "xenreconcile_build_info"]
    assert build and dict(build[0])["version"] == VERSION  # not "unknown" when installed from the .deb


def test_per_domain_series_by_name(served: tuple[AgentMetrics, str, State]) -> None:
    _, url, _ = served
    s = samples(get(url + "/metrics")[1])
    assert s[("xenreconcile_domain_drifted", (("domain", "db"),))] == 1
    assert s[("xenreconcile_domain_drifted", (("domain", "web"),))] == 0
    assert s[("xenreconcile_domain_restart_required", (("domain", "old"),))] == 1
    assert s[("xenreconcile_domain_desired", (("domain", "new"),))] == 1
    assert s[("xenreconcile_domain_status", (("domain", "web"), ("state", "in-sync")))] == 1
    assert s[("xenreconcile_domain_status", (("domain", "web"), ("state", "drifted")))] == 0
    assert s[("xenreconcile_desired_file_invalid", (("file", "/d/broken.xml"),))] == 1
    assert s[("xenreconcile_desired_files_invalid", ())] == 1
    # Never a domid label anywhere.
    assert not any(k == "domid" for _, labels in s for k, _ in labels)


def test_timed_backend_counts_calls_and_errors(served: tuple[AgentMetrics, str, State]) -> None:
    metrics, url, _ = served
    backend = TimedBackend(Flaky(), metrics)
    assert backend.uri == "test:///x"
    assert backend.list_domains() == ["dom0"]
    with pytest.raises(BackendError):
        backend.destroy(3)
    s = samples(get(url + "/metrics")[1])
    assert s[("xenreconcile_libxl_call_duration_seconds_count", (("operation", "list_domains"),))] == 1
    assert s[("xenreconcile_libxl_call_duration_seconds_count", (("operation", "destroy"),))] == 1
    assert s[("xenreconcile_libxl_call_errors_total", (("operation", "destroy"),))] == 1
    assert ("xenreconcile_libxl_call_errors_total", (("operation", "list_domains"),)) in s


def test_promtool_accepts_the_scrape(served: tuple[AgentMetrics, str, State]) -> None:
    promtool = ci_tool("promtool", "prometheus")
    metrics, url, _ = served
    TimedBackend(Flaky(), metrics).list_domains()
    text = get(url + "/metrics")[1]
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout + result.stderr


def test_health_readiness_and_status(served: tuple[AgentMetrics, str, State]) -> None:
    _, url, state = served
    assert get(url + "/healthz") == (200, "ok\n")
    assert get(url + "/readyz") == (503, "first full reconcile not done\n")
    state.ready = (True, "ready")
    state.healthy = (False, "loop stuck for 300 s")
    assert get(url + "/readyz")[0] == 200
    assert get(url + "/healthz") == (503, "loop stuck for 300 s\n")
    code, body = get(url + "/status")
    assert code == 200
    doc = json.loads(body)
    assert doc["domains"]["db"]["state"] == "drifted"
    assert get(url + "/nope")[0] == 404


def test_openmetrics_negotiation(served: tuple[AgentMetrics, str, State]) -> None:
    _, url, _ = served
    req = urllib.request.Request(url + "/metrics", headers={"Accept": "application/openmetrics-text"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.headers["Content-Type"].startswith("application/openmetrics-text")
        assert resp.read().decode().rstrip().endswith("# EOF")


def test_two_agents_in_one_process_do_not_share_a_registry() -> None:
    a, b = AgentMetrics(), AgentMetrics()
    a.observe_reconcile("success", 0.1)
    assert a.registry.get_sample_value("xenreconcile_reconcile_total", {"result": "success"}) == 1
    assert b.registry.get_sample_value("xenreconcile_reconcile_total", {"result": "success"}) == 0


def test_a_backend_error_reaches_status_redacted_and_escaped() -> None:
    """libxl's messages can echo a disk target with its Ceph key, or a control byte from a file:
    /status (and everything else reading the status book) shows them as people may see them."""
    book = StatusBook()
    secret = "AQBu1cVbSGtvKBAAOd9kF6XJ8gIymY0XSp1gwg=="
    error = f"libxl: disk rbd:pool/img:id=admin:key={secret}: cannot attach\x1b[2J"
    status = book.record("db", "error", file="/d/db.cfg", error=error)
    assert secret not in (status.last_error or "") and "key=***" in (status.last_error or "")
    assert "\x1b" not in json.dumps(status.to_json()) and "\\x1b[2J" in (status.last_error or "")
    assert book.record("db", "in-sync").last_error is None


@pytest.mark.parametrize("seconds", [0.0, 0.001, 0.003, 0.5, 7.0, 500.0])
def test_many_reconciles_observed_at_once_read_as_one_by_one(seconds: float) -> None:
    """A full resync observes its guests in one call per result: the same series as a call each."""
    def samples(metrics: AgentMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in metrics.registry.collect() if family.name.startswith("xenreconcile_reconcile")
                for s in family.samples if not s.name.endswith("_created")}

    at_once, one_by_one = AgentMetrics(), AgentMetrics()
    at_once.observe_reconcile("success", seconds, 3)
    at_once.observe_reconcile("error", seconds, 2)
    for result in ("success", "success", "success", "error", "error"):
        one_by_one.observe_reconcile(result, seconds)
    assert samples(at_once) == pytest.approx(samples(one_by_one))  # the sum: up to float rounding
    assert at_once.registry.get_sample_value("xenreconcile_reconcile_time_seconds_count") == 5
