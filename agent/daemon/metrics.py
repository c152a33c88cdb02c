"""The agent's Prometheus metrics: the registry, its counters and histograms, and the collectors
that build per-domain series at scrape time. Served by agent.daemon.endpoints; host calls are timed
into it by agent.daemon.timedbackend.

Names mirror controller-runtime's reconcile and work-queue metrics under one prefix,
``xenreconcile_``, so dashboards written for Kubernetes controllers read naturally. Per-domain
series are labelled by domain *name*: a domid changes on every restart and would leave a trail of
dead series. Each guest's resource figures (CPU seconds, vcpus, memory, block and network counters
as xentop reads them) are read from the host at scrape time (``_RuntimeCollector``), so one
exporter serves.

The agent owns its ``CollectorRegistry`` (no process-global default registry), so tests can build
as many agents as they like in one process.
"""

from __future__ import annotations

import bisect
import platform
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent import VERSION
from libxl.hosts.backend import DomainInfo, IoStats
from reconcilers.status import DRIFTED, RESTART_REQUIRED, STATES, Status

PREFIX = "xenreconcile"
_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_QUEUE_BUCKETS = (1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0)


@dataclass
class DomainView:
    """What the per-domain collector reads at scrape time (supplied by the loop)."""
    statuses: dict[str, Status] = field(default_factory=dict)
    desired: set[str] = field(default_factory=set)
    invalid_files: set[str] = field(default_factory=set)


class _DomainCollector(Collector):
    """Per-domain and per-file series, rebuilt from the loop's view on every scrape.

    Built at scrape time rather than kept in labelled gauges so a domain that leaves the desired
    set and the host leaves no stale series behind.
    """

    def __init__(self, view: Callable[[], DomainView]) -> None:
        self._view = view

    def collect(self) -> Iterable[Metric]:
        view = self._view()
        names = sorted(set(view.statuses) | view.desired)
        desired = GaugeMetricFamily(f"{PREFIX}_domain_desired",
                                    "1 when a valid desired file declares the domain", labels=["domain"])
        drifted = GaugeMetricFamily(f"{PREFIX}_domain_drifted",
                                    "1 when the domain differs from its desired state", labels=["domain"])
        restart = GaugeMetricFamily(f"{PREFIX}_domain_restart_required",
                                    "1 when applying the desired state needs a restart the policy forbids",
                                    labels=["domain"])
        status = GaugeMetricFamily(f"{PREFIX}_domain_status",
                                   "The domain's last reconcile status (1 for the current state)",
                                   labels=["domain", "state"])
        port = GaugeMetricFamily(f"{PREFIX}_domain_display_port",
                                 "TCP port of the domain's autoport display, by protocol (vnc, spice)",
                                 labels=["domain", "protocol"])
        for name in names:
            current = view.statuses.get(name)
            state = current.state if current else None
            desired.add_metric([name], 1.0 if name in view.desired else 0.0)
            drifted.add_metric([name], 1.0 if state == DRIFTED else 0.0)
            restart.add_metric([name], 1.0 if state == RESTART_REQUIRED else 0.0)
            for candidate in STATES:
                status.add_metric([name, candidate], 1.0 if state == candidate else 0.0)
            ports = (("vnc", current.vnc_port), ("spice", current.spice_port)) if current else ()
            for protocol, number in ports:
                if number:
                    port.add_metric([name, protocol], float(number))
        invalid = GaugeMetricFamily(f"{PREFIX}_desired_file_invalid",
                                    "1 for each desired file that fails to parse or validate",
                                    labels=["file"])
        for path in sorted(view.invalid_files):
            invalid.add_metric([path], 1.0)
        count = GaugeMetricFamily(f"{PREFIX}_desired_files_invalid", "Number of invalid desired files",
                                  value=len(view.invalid_files))
        return [desired, drifted, restart, status, port, invalid, count]


#: A domain's runtime figures at scrape time: its ``xl list`` row and its I/O counters, if any.
RuntimeSample = tuple[DomainInfo, IoStats | None]

#: (metric name after ``xenreconcile_domain_``, help, IoStats field) of the I/O counters.
_IO_COUNTERS = (
    ("block_read_requests", "Block read requests (blkback, as xentop's VBD_RD)", "block_read_requests"),
    ("block_write_requests", "Block write requests (blkback, as xentop's VBD_WR)", "block_write_requests"),
    ("block_read_bytes", "Bytes read from block devices (xentop's VBD_RSECT x 512)", "block_read_bytes"),
    ("block_write_bytes", "Bytes written to block devices (xentop's VBD_WSECT x 512)", "block_write_bytes"),
    ("network_receive_bytes", "Bytes the domain received on its vifs", "net_receive_bytes"),
    ("network_transmit_bytes", "Bytes the domain sent on its vifs", "net_transmit_bytes"),
    ("network_receive_packets", "Packets the domain received on its vifs", "net_receive_packets"),
    ("network_transmit_packets", "Packets the domain sent on its vifs", "net_transmit_packets"),
)


class _RuntimeCollector(Collector):
    """Every named domain's CPU, vcpus, memory and I/O (what xentop shows), asked of the host at
    scrape time so rates are as fresh as the scrape; by name like every per-domain series. A host
    that cannot answer gives ``runtime_collect_success`` 0 and no domain series, never a failed
    scrape."""

    def __init__(self, sample: Callable[[], list[RuntimeSample]]) -> None:
        self._sample = sample

    def collect(self) -> Iterable[Metric]:
        try:
            rows = self._sample()
        except Exception:  # a scrape must never fail because the host did
            rows = None
        ok = GaugeMetricFamily(f"{PREFIX}_runtime_collect_success",
                               "1 when the last scrape read the domains' runtime figures from the host",
                               value=0.0 if rows is None else 1.0)
        cpu = CounterMetricFamily(f"{PREFIX}_domain_cpu_seconds", "CPU time used by the domain's vcpus",
                                  labels=["domain"])
        online = GaugeMetricFamily(f"{PREFIX}_domain_vcpus_online", "vcpus online", labels=["domain"])
        vcpus_max = GaugeMetricFamily(f"{PREFIX}_domain_vcpus_max", "vcpus the domain may bring online",
                                      labels=["domain"])
        memory = GaugeMetricFamily(f"{PREFIX}_domain_memory_bytes", "Memory the domain holds now",
                                   labels=["domain"])
        memory_max = GaugeMetricFamily(f"{PREFIX}_domain_memory_max_bytes", "The domain's maximum memory",
                                       labels=["domain"])
        io = [(CounterMetricFamily(f"{PREFIX}_domain_{name}", text, labels=["domain"]), attr)
              for name, text, attr in _IO_COUNTERS]
        seen: set[str] = set()
        for info, stats in sorted(rows or [], key=lambda r: r[0].state == "dying"):
            if not info.name or info.name in seen:
                continue  # nameless (a create cut short), or a dying namesake of a live domain
            seen.add(info.name)
            label = [info.name]
            cpu.add_metric(label, info.cpu_time_ns / 1e9)
            online.add_metric(label, float(info.vcpus_online))
            vcpus_max.add_metric(label, float(info.vcpus_max))
            memory.add_metric(label, info.memory_kib * 1024.0)
            memory_max.add_metric(label, info.max_memory_kib * 1024.0)
            for family, attr in io:
                family.add_metric(label, float(getattr(stats or IoStats(), attr)))
        return [ok, cpu, online, vcpus_max, memory, memory_max, *(family for family, _ in io)]


class _Histogram(Histogram):
    """A histogram that can also take many observations of one value in one call."""

    def observe_many(self, amount: float, count: int) -> None:
        """As ``count`` calls of ``observe(amount)``: prometheus_client observes one value at a
        time, which at 10,000 guests made a tenth of a no-op resync. The buckets are not
        cumulative inside (``_child_samples`` sums them), so one bucket takes the count."""
        self._raise_if_not_observable()
        self._sum.inc(amount * count)
        self._buckets[bisect.bisect_left(self._upper_bounds, amount)].inc(count)


class AgentMetrics:
    """Every metric the agent exports; also the queue's and the watcher's hook object."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.reconcile_total = Counter(f"{PREFIX}_reconcile",
                                       "Reconciles per result (success, error, invalid)", ["result"],
                                       registry=reg)
        self.reconcile_errors = Counter(f"{PREFIX}_reconcile_errors", "Reconciles that ended in an error",
                                        registry=reg)
        self.reconcile_time = _Histogram(f"{PREFIX}_reconcile_time_seconds",
                                        "Time spent reconciling one domain", buckets=_TIME_BUCKETS,
                                        registry=reg)
        self.depth_gauge = Gauge(f"{PREFIX}_workqueue_depth", "Keys waiting in the work queue", registry=reg)
        self.adds = Counter(f"{PREFIX}_workqueue_adds", "Keys added to the work queue", registry=reg)
        self.retries = Counter(f"{PREFIX}_workqueue_retries", "Keys re-queued after a failure", registry=reg)
        self.queue_duration = Histogram(f"{PREFIX}_workqueue_queue_duration_seconds",
                                        "Time a key waits in the queue before a worker takes it",
                                        buckets=_QUEUE_BUCKETS, registry=reg)
        self.work_duration = Histogram(f"{PREFIX}_workqueue_work_duration_seconds",
                                       "Time a worker spends on one key", buckets=_TIME_BUCKETS, registry=reg)
        self.unfinished = Gauge(f"{PREFIX}_workqueue_unfinished_work_seconds",
                                "Seconds of work in progress not yet observed by work_duration", registry=reg)
        self.longest = Gauge(f"{PREFIX}_workqueue_longest_running_processor_seconds",
                             "Seconds the longest-running worker has been on its key", registry=reg)
        self.watch_events = Counter(f"{PREFIX}_watch_events", "Filesystem events seen, by kind "
                                    "(file, ignore, swap, error)", ["kind"], registry=reg)
        self.watch_overflows = Counter(f"{PREFIX}_watch_overflows", "inotify queue overflows (events lost)",
                                       registry=reg)
        self.rescans = Counter(f"{PREFIX}_watch_rescans", "Full rescans forced by the watcher "
                               "(overflow, symlink swap, watcher failure)", registry=reg)
        self.libxl_duration = Histogram(f"{PREFIX}_libxl_call_duration_seconds",
                                        "Duration of host (libxl) calls", ["operation"],
                                        buckets=_TIME_BUCKETS, registry=reg)
        self.libxl_errors = Counter(f"{PREFIX}_libxl_call_errors", "Host (libxl) calls that raised",
                                    ["operation"], registry=reg)
        self.last_full_sync = Gauge(f"{PREFIX}_last_full_sync_timestamp_seconds",
                                    "Unix time of the last full resync that completed without error",
                                    registry=reg)
        self.full_syncs = Counter(f"{PREFIX}_full_syncs", "Full resyncs run", ["result"], registry=reg)
        self.ready = Gauge(f"{PREFIX}_ready", "1 once the agent is ready (what /readyz answers 200 for)",
                           registry=reg)
        build = Gauge(f"{PREFIX}_build_info", "Build information (always 1)", ["version", "python"],
                      registry=reg)
        build.labels(VERSION, platform.python_version()).set(1)
        for kind in ("file", "ignore", "swap", "error"):
            self.watch_events.labels(kind)
        #: The per-result children, looked up once (a resync counts one per guest).
        self._reconciles = {result: self.reconcile_total.labels(result)
                            for result in ("success", "error", "invalid")}

    def bind_queue(self, unfinished_work: Callable[[], tuple[float, float]]) -> None:
        """Read unfinished-work figures from the queue at scrape time."""
        self.unfinished.set_function(lambda: unfinished_work()[0])
        self.longest.set_function(lambda: unfinished_work()[1])

    def bind_ready(self, ready: Callable[[], bool]) -> None:
        """Read readiness at scrape time (alert rules cannot see /readyz)."""
        self.ready.set_function(lambda: 1.0 if ready() else 0.0)

    def bind_domains(self, view: Callable[[], DomainView]) -> None:
        self.registry.register(_DomainCollector(view))

    def bind_runtime(self, sample: Callable[[], list[RuntimeSample]]) -> None:
        """Read every domain's runtime figures from the host at scrape time."""
        self.registry.register(_RuntimeCollector(sample))

    def observe_reconcile(self, result: str, seconds: float, count: int = 1) -> None:
        """``count`` reconciles with this result, each of ``seconds`` (a full resync times its
        guests together: one call for all of them, not one per guest)."""
        self._reconciles[result].inc(count)
        if result == "error":
            self.reconcile_errors.inc(count)
        self.reconcile_time.observe_many(seconds, count)

    # -- agent.daemon.queue.QueueHooks ---------------------------------------------------------------

    def added(self, key: object) -> None:
        self.adds.inc()

    def depth(self, depth: int) -> None:
        self.depth_gauge.set(depth)

    def retried(self, key: object) -> None:
        self.retries.inc()

    def started(self, key: object, queued_seconds: float) -> None:
        self.queue_duration.observe(queued_seconds)

    def finished(self, key: object, work_seconds: float) -> None:
        self.work_duration.observe(work_seconds)

    # -- agent.daemon.watch.WatchHooks ---------------------------------------------------------------

    def event(self, kind: str) -> None:
        self.watch_events.labels(kind).inc()

    def overflow(self) -> None:
        self.watch_overflows.inc()

    def rescan(self, reason: str) -> None:
        self.rescans.inc()
