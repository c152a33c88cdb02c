"""Benchmark: file-change-to-action latency of the running agent (run directly, not under pytest).

    .venv/bin/python tests/bench/bench_agent_latency.py [ROUNDS] [DEBOUNCE]

Starts ``xenreconcile run`` as a subprocess on a file-backed simulated host, then per round: writes
a new desired file (atomic rename) and times until the guest exists on the host; edits its memory
target and times until the host shows it; deletes it (prune=destroy) and times until it is gone.
Also times a write until ``xenreconcile_reconcile_total`` moves on /metrics. Prints median, p90
and max per kind. The debounce (default 0.1 s) is part of every figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reconcile_fixtures import domain_xml  # noqa: E402

from libxl.sim import SimHost  # noqa: E402


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("agent did not act in time")
        time.sleep(0.002)


def reconciles(url: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith('xenreconcile_reconcile_total{result="success"}'):
                return float(line.split()[-1])
    return 0.0


def main(rounds: int, debounce: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        desired = base / "desired"
        desired.mkdir()
        write_atomic(desired / "base.xml", domain_xml("base", memory_mib=64))
        uri = f"test://{base}/host.json"
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", "run", "--uri", uri, "--dir", str(desired),
             "--state-dir", str(base / "state"), "--metrics-listen", "127.0.0.1:0", "--log-format", "json",
             "--prune", "destroy", "--debounce", str(debounce)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        lines: list[dict[str, object]] = []

        def read() -> None:
            assert agent.stdout is not None
            for line in agent.stdout:
                with contextlib.suppress(ValueError):
                    lines.append(json.loads(line))

        threading.Thread(target=read, daemon=True).start()
        host = SimHost(uri, path=str(base / "host.json"))
        try:
            until(lambda: any(x.get("event") == "ready" for x in lines))
            url = str(next(x["metrics"] for x in lines if x.get("event") == "agent starting"))
            url = url.removesuffix("/metrics")

            def memory(name: str) -> int | None:
                return next((d.memory_kib for d in host.list_domains() if d.name == name), None)

            figures: dict[str, list[float]] = {"create": [], "edit": [], "delete": [], "metric": []}
            for i in range(rounds):
                name = f"lat{i}"
                path = desired / f"{name}.xml"
                start = time.perf_counter()
                write_atomic(path, domain_xml(name, memory_mib=64, current_mib=32))
                until(lambda n=name: memory(n) is not None)
                figures["create"].append(time.perf_counter() - start)
                start = time.perf_counter()
                write_atomic(path, domain_xml(name, memory_mib=64, current_mib=48))
                until(lambda n=name: memory(n) == 48 * 1024)
                figures["edit"].append(time.perf_counter() - start)
                start = time.perf_counter()
                path.unlink()
                until(lambda n=name: memory(n) is None)
                figures["delete"].append(time.perf_counter() - start)
                time.sleep(0.3)  # let the delete's reconcile be counted before taking the baseline
                before = reconciles(url)
                start = time.perf_counter()
                target = 40 + i % 2 * 8
                write_atomic(desired / "base.xml", domain_xml("base", memory_mib=64, current_mib=target))
                until(lambda b=before: reconciles(url) > b)
                figures["metric"].append(time.perf_counter() - start)
        finally:
            agent.terminate()
            agent.wait(30)
        print(f"rounds={rounds} debounce={debounce * 1000:.0f} ms (host polled every 2 ms)")
        for kind, values in figures.items():
            values.sort()
            p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
            print(f"{kind:<8} median {statistics.median(values) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"
                  f"   max {values[-1] * 1000:7.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, float(sys.argv[2]) if len(sys.argv) > 2 else 0.1)
