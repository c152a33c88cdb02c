"""Benchmarks 2b and 4: the agent as a real subprocess with 1,000 domains on a file-backed host.

One agent session, in this order:

1. cold start: process start until the first full reconcile is done (all 1,000 guests created);
2. idle: CPU time (/proc/PID/stat utime+stime) over ``idle_seconds`` with nothing to do, as a share
   of one core; the periodic resync is set far away so the window holds no resync, and its cost is
   reported apart: the CPU of one forced full resync (SIGHUP) spread over the default 60 s interval;
3. git-checkout burst: every desired file is unlinked and rewritten in place (what ``git checkout``
   does), each with a new balloon target; the agent's ``xenreconcile_reconcile_total`` (every
   result) is read before and after, and divided by the number of domains (target: 1);
4. peak RSS: VmHWM of /proc/PID/status at the end (it covers the cold start and the burst).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from agent.config import AgentConfig
from tests.bench.common import Agent, Row, guest_xml, make_desired, wait_until

BENCH = "agent"
#: Quiet time after the burst converged, so late batches would still be counted.
SETTLE = 3.0


def _burst(agent: Agent, desired: Path, count: int) -> tuple[float, float, int]:
    """(seconds to converge, reconciles per domain, work-queue adds) of a checkout of every file."""
    before = agent.reconciles()
    adds_before = agent.metrics().get("xenreconcile_workqueue_adds_total", 0.0)
    start = time.time()
    for i in range(count):
        path = desired / f"g{i:05d}.xml"
        path.unlink()
        with open(path, "w") as out:  # git writes the new blob in place, not through a rename
            out.write(guest_xml(i, 48))
    wait_until(lambda: agent.ops.count("set_memory_target", start) >= count, 600,
               "the burst to reach the host", poll=0.05)
    converged = max(e["t"] for e in agent.ops.entries if e["op"] == "set_memory_target") - start
    time.sleep(SETTLE)
    per_domain = (agent.reconciles() - before) / count
    adds = agent.metrics().get("xenreconcile_workqueue_adds_total", 0.0) - adds_before
    return converged, per_domain, int(adds)


def run(count: int, idle_seconds: float) -> tuple[list[Row], dict]:
    default_interval = AgentConfig().resync_interval
    with tempfile.TemporaryDirectory(prefix="xr-bench-agent-") as tmp:
        base = Path(tmp)
        desired = base / "desired"
        make_desired(desired, count)
        agent = Agent(base, desired, resync_interval=3600)
        try:
            cold = agent.wait_ready(1800)
            time.sleep(2)  # let the last reconcile's bookkeeping finish before the idle window
            cpu = agent.cpu_seconds()
            time.sleep(idle_seconds)
            idle = (agent.cpu_seconds() - cpu) / idle_seconds
            cpu = agent.cpu_seconds()
            resync_s = agent.full_resync(300)
            resync_cpu = agent.cpu_seconds() - cpu
            converged, per_domain, adds = _burst(agent, desired, count)
            hwm_mib = agent.status_kib("VmHWM") / 1024
            rss_mib = agent.status_kib("VmRSS") / 1024
        finally:
            agent.stop()
    amortised = resync_cpu / default_interval
    rows = [
        Row(BENCH, f"cold start via the agent, {count} domains, file-backed host", cold, "s"),
        Row(BENCH, f"idle CPU, {count} domains, {idle_seconds:.0f} s window", idle * 100, "% core", "< 0.5 %",
            idle < 0.005),
        Row(BENCH, f"no-op full resync in the agent, {count} domains (file-backed host)", resync_s * 1000,
            "ms"),
        Row(BENCH, f"  same, CPU spread over the {default_interval:.0f} s resync interval", amortised * 100,
            "% core"),
        Row(BENCH, f"git-checkout burst of {count} files: reconciles per domain", per_domain, "", "1",
            per_domain == 1.0),
        Row(BENCH, f"git-checkout burst of {count} files: converged after", converged, "s"),
        Row(BENCH, f"git-checkout burst of {count} files: work-queue adds", adds, ""),
        Row(BENCH, f"peak RSS (VmHWM), {count} domains", hwm_mib, "MiB", "< 100 MB",
            hwm_mib * 1.048576 < 100),
        Row(BENCH, f"RSS at the end, {count} domains", rss_mib, "MiB"),
    ]
    raw = {"count": count, "cold_s": cold, "idle_core_fraction": idle, "resync_s": resync_s,
           "resync_cpu_s": resync_cpu, "burst_converged_s": converged, "reconciles_per_domain": per_domain,
           "workqueue_adds": adds, "vmhwm_kib": hwm_mib * 1024, "vmrss_kib": rss_mib * 1024}
    return rows, raw
