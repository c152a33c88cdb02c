"""Benchmark 1: file change -> libxl call latency of the running agent (a real subprocess).

Each edit is one atomic save (temp file + rename) of one desired file that changes the guest's
balloon target; the latency runs from just before the rename to the timestamp the simulated host
writes to its operation log when the ``set_memory_target`` call is committed. Debounce is included.
A few rounds also time a new file (-> ``domain_create``) and a removed one (-> ``domain_destroy``,
prune=destroy). Edits are sequential: the next one starts once the previous one reached the host.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tests.bench.common import (
    Agent,
    Row,
    guest_name,
    guest_xml,
    make_desired,
    median,
    percentile,
    wait_until,
    write_atomic,
)

BENCH = "latency"
#: Domains in the desired set; edits go round-robin over them.
DOMAINS = 10


def _until_op(agent: Agent, op: str, name: str, since: float) -> float:
    """Seconds from ``since`` (unix time) to the host's first ``op`` on ``name`` after it."""
    def times() -> list[float]:
        agent.ops.poll()
        return [e["t"] for e in agent.ops.entries if e["op"] == op and e["name"] == name and e["t"] >= since]

    wait_until(lambda: bool(times()), 30, f"{op} of {name}")
    return min(times()) - since


def run(edits: int, debounce: float, lifecycle_rounds: int = 20) -> tuple[list[Row], dict]:
    with tempfile.TemporaryDirectory(prefix="xr-bench-latency-") as tmp:
        base = Path(tmp)
        desired = base / "desired"
        make_desired(desired, DOMAINS)
        agent = Agent(base, desired, debounce=debounce)
        try:
            agent.wait_ready(120)
            wait_until(lambda: agent.ops.count("domain_create") >= DOMAINS, 60, "the initial creates")
            edit: list[float] = []
            for i in range(edits):
                index = i % DOMAINS
                current = 32 if (i // DOMAINS) % 2 == 0 else 48
                start = time.time()
                write_atomic(desired / f"{guest_name(index)}.xml", guest_xml(index, current))
                edit.append(_until_op(agent, "set_memory_target", guest_name(index), start))
                time.sleep(0.01)
            create: list[float] = []
            delete: list[float] = []
            for i in range(lifecycle_rounds):
                index = DOMAINS + i
                path = desired / f"{guest_name(index)}.xml"
                start = time.time()
                write_atomic(path, guest_xml(index))
                create.append(_until_op(agent, "domain_create", guest_name(index), start))
                time.sleep(0.01)
                start = time.time()
                path.unlink()
                delete.append(_until_op(agent, "domain_destroy", guest_name(index), start))
                time.sleep(0.01)
        finally:
            agent.stop()
    label = f"debounce {debounce * 1000:.0f} ms"
    p99 = percentile(edit, 99)
    rows = [
        Row(BENCH, f"edit -> set_memory_target p50 ({label}, n={edits})", percentile(edit, 50) * 1000, "ms"),
        Row(BENCH, f"edit -> set_memory_target p99 ({label}, n={edits})", p99 * 1000, "ms", "< 100 ms",
            p99 < 0.1),
        Row(BENCH, f"edit -> set_memory_target max ({label})", max(edit) * 1000, "ms"),
        Row(BENCH, f"new file -> domain_create median ({label}, n={lifecycle_rounds})", median(create) * 1000,
            "ms"),
        Row(BENCH, f"removed file -> domain_destroy median ({label}, n={lifecycle_rounds})",
            median(delete) * 1000, "ms"),
    ]
    raw = {"debounce_s": debounce, "edit_s": edit, "create_s": create, "delete_s": delete}
    return rows, raw

