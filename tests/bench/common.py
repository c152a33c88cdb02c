"""What every benchmark shares: result rows, percentiles, desired-directory fixtures, and the agent
run as a real subprocess (its JSON log, its /metrics, its /proc figures, the simulated host's
operation log).

The agent always runs on a file-backed simulated host (``test:///PATH.json``) with libxl call
latency 0, so what is measured is the agent's own cost (and the simulated host's bookkeeping).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.reconcile_fixtures import domain_xml

ROOT = Path(__file__).resolve().parents[2]
_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    """One line of the results table (and of the JSON file)."""
    bench: str
    measure: str
    value: float
    unit: str
    target: str = ""
    #: None: no target; True/False: the target was met or missed.
    met: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def write_atomic(path: Path, text: str) -> None:
    """Save like an editor or a config manager: temporary file, then rename over the target."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.rename(tmp, path)


def guest_name(index: int) -> str:
    return f"g{index:05d}"


def guest_xml(index: int, current_mib: int | None = None) -> str:
    """A small PV guest; ``current_mib`` below the 64 MiB maximum is a hot (balloon) change."""
    return domain_xml(guest_name(index), memory_mib=64, current_mib=current_mib)


def make_desired(directory: Path, count: int) -> list[Path]:
    """``count`` domain XML files in ``directory`` (created with the usual 0755/0644 modes)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = directory / f"{guest_name(i)}.xml"
        path.write_text(guest_xml(i))
        paths.append(path)
    return paths


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.001) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


class OpLog:
    """Reader of the simulated host's ``op_log``: one JSON line per committed host change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""
        self.entries: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        """Entries appended since the last poll (also kept in ``entries``)."""
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._partial = (self._partial + data).split(b"\n")
        new = [json.loads(line) for line in lines if line]
        self.entries.extend(new)
        return new

    def count(self, op: str, since: float = 0.0) -> int:
        self.poll()
        return sum(1 for e in self.entries if e["op"] == op and e["t"] >= since)


class Agent:
    """``xenreconcile run`` as a subprocess on a file-backed simulated host with an op log."""

    def __init__(self, base: Path, desired: Path, *, debounce: float = 0.1,
                 resync_interval: float = 3600.0) -> None:
        self.base = base
        self.host_file = base / "host.json"
        self.ops = OpLog(base / "ops.log")
        self.uri = f"test://{self.host_file}?latency=0&memory_mib=4194304&cpus=64&op_log={self.ops.path}"
        args = [sys.executable, "-m", "agent.cli", "run", "--uri", self.uri, "--dir", str(desired),
                "--state-dir", str(base / "state"), "--metrics-listen", "127.0.0.1:0", "--log-format", "json",
                "--debounce", str(debounce), "--resync-interval", str(resync_interval), "--prune", "destroy"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.append(json.loads(raw))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [x for x in list(self.lines) if x.get("event") == name]

    def wait_ready(self, timeout: float) -> float:
        """Seconds from process start until the first full reconcile is done."""
        wait_until(lambda: bool(self.events("ready")) or self.proc.poll() is not None, timeout,
                   "the agent to be ready", poll=0.01)
        if self.proc.poll() is not None:
            raise RuntimeError(f"agent exited with {self.proc.returncode}: {self.lines[-5:]}")
        seconds = time.monotonic() - self.started
        self.url = str(self.events("agent starting")[0]["metrics"]).removesuffix("/metrics")
        return seconds

    def metrics(self) -> dict[str, float]:
        """``name{labels}`` -> value, from /metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def reconciles(self) -> float:
        """Per-domain reconciles counted by the agent (every result label)."""
        return sum(v for k, v in self.metrics().items() if k.startswith("xenreconcile_reconcile_total{"))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the agent process so far (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICKS

    def status_kib(self, key: str) -> int:
        """A ``kB`` figure of /proc/PID/status, e.g. ``VmHWM`` (peak RSS) or ``VmRSS``."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def full_resync(self, timeout: float) -> float:
        """Trigger a full resync (SIGHUP reloads and resyncs) and return its own reported seconds."""
        before = len(self.events("full resync done"))
        self.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: len(self.events("full resync done")) > before, timeout, "a full resync", poll=0.01)
        return float(self.events("full resync done")[-1]["seconds"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
