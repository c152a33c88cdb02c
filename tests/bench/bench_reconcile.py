"""Benchmark: desired-set scans and a full plan over N guests (run directly, not under pytest).

    .venv/bin/python tests/bench/bench_reconcile.py [N]

Prints the time of a cold scan, a no-op rescan (stat only), a rescan after one file changed, a
rescan after every file was touched with unchanged bytes (content hash hit), a pure plan over N
guests already in sync, and reconcile passes over a simulated host with N/10 guests (the simulated
host copies its whole state per call, so its cost grows with the square of the guest count).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reconcile_fixtures import OWNER, actual, domain_xml  # noqa: E402

from libxl.sim import GIB_KIB, SimHost  # noqa: E402
from reconcilers.apply import Reconciler, with_owner  # noqa: E402
from reconcilers.desired import load_desired  # noqa: E402
from reconcilers.plan import plan  # noqa: E402
from reconcilers.policy import Policy  # noqa: E402
from reconcilers.state import Inventory  # noqa: E402


def timed(label: str, func):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = func()
    print(f"{label:<44} {(time.perf_counter() - start) * 1000:9.1f} ms")
    return result


def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "desired"
        directory.mkdir()
        for i in range(count):
            (directory / f"g{i:04d}.xml").write_text(domain_xml(f"g{i:04d}", memory_mib=64))
        cold = timed(f"cold scan of {count} files", lambda: load_desired(directory))
        warm = timed("no-op rescan", lambda: load_desired(directory, cold))
        (directory / "g0000.xml").write_text(domain_xml("g0000", memory_mib=128))
        warm = timed("rescan, one file changed", lambda: load_desired(directory, warm))
        for path in directory.iterdir():
            os.utime(path, ns=(1, 1))
        warm = timed("rescan, all touched, same bytes", lambda: load_desired(directory, warm))
        snapshot = [actual(with_owner(d.config, OWNER), i + 1) for i, d in enumerate(warm.domains.values())]
        result = timed(f"plan over {count} guests in sync", lambda: plan(warm, snapshot, Policy(owner=OWNER),
                                                                        Inventory()))
        assert not result.has_changes
        small = count // 10
        for path in sorted(directory.iterdir())[small:]:
            path.unlink()
        subset = load_desired(directory, warm)
        host = SimHost(total_memory_kib=(small // 8 + 4) * GIB_KIB, nr_cpus=64)
        reconciler = Reconciler(host, Policy(), Path(tmp) / "state")
        timed(f"first apply on the sim ({small} creates)", lambda: reconciler.reconcile_all(subset))
        results = timed(f"reconcile_all on the sim, {small} in sync",
                        lambda: reconciler.reconcile_all(subset))
        assert not any(r.applied for r in results)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
