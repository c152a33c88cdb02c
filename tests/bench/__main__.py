"""Run every benchmark, print one table, write the figures as JSON.

    make bench                      # = .venv/bin/python -m tests.bench
    .venv/bin/python -m tests.bench --quick               # small sizes, for a first look (~1 min)
    .venv/bin/python -m tests.bench --only latency,parse  # some of: latency scale parse agent

Results go to ``bench-results/bench-<UTC time>.json`` and ``bench-results/latest.json`` (the
directory is gitignored). Figures are wall-clock on whatever else the machine is doing: the table
header prints the core count and the load average so a reader can judge them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from agent.config import AgentConfig
from tests.bench import bench_agent, bench_latency, bench_parse, bench_scale
from tests.bench.common import ROOT, Row

SUITES = ("latency", "scale", "parse", "agent")


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cores": os.cpu_count(), "usable_cores": len(os.sched_getaffinity(0)), "cpu": model,
            "python": platform.python_version(), "kernel": platform.release(),
            "load_average": os.getloadavg()}


def table(rows: list[Row]) -> str:
    """A fixed-width table: suite, measure, value, unit, target, met."""
    def value(row: Row) -> str:
        return f"{row.value:,.0f}" if abs(row.value) >= 1000 else f"{row.value:.3g}" if row.value else "0"
    head = ("suite", "measure", "value", "unit", "target", "met")
    cells = [(r.bench, r.measure, value(r), r.unit, r.target, {None: "", True: "yes", False: "NO"}[r.met])
             for r in rows]
    widths = [max(len(str(c[i])) for c in [head, *cells]) for i in range(len(head))]
    lines = ["  ".join(str(c[i]).rjust(widths[i]) if i == 2 else str(c[i]).ljust(widths[i])
                       for i in range(len(head))).rstrip() for c in [head, *cells]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SUITES), help=f"comma-separated subset of {SUITES}")
    parser.add_argument("--edits", type=int, default=200, help="single-file edits timed (latency)")
    parser.add_argument("--sizes", default="1000,10000", help="desired-set sizes (scale)")
    parser.add_argument("--domains", type=int, default=1000, help="domains of the agent subprocess (agent)")
    parser.add_argument("--idle-seconds", type=float, default=20.0, help="idle CPU window (agent)")
    parser.add_argument("--quick", action="store_true", help="small sizes: --edits 40 --sizes 1000 "
                        "--domains 200 --idle-seconds 5")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results", help="where the JSON goes")
    args = parser.parse_args(argv)
    if args.quick:
        args.edits, args.sizes, args.domains, args.idle_seconds = 40, "1000", 200, 5.0
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(only) - set(SUITES))
    if unknown:
        parser.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    info = machine()
    print(f"xenreconcile benchmarks: {info['cores']} cores ({info['usable_cores']} usable), {info['cpu']}, "
          f"Python {info['python']}, load average {' '.join(f'{x:.2f}' for x in info['load_average'])}",
          flush=True)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    started = time.time()
    for suite in only:
        print(f"running {suite} ...", flush=True)
        if suite == "latency":
            default = AgentConfig().debounce
            for debounce in sorted({0.05, default}):
                suite_rows, raw[f"latency_{debounce}"] = bench_latency.run(args.edits, debounce)
                rows += suite_rows
        elif suite == "scale":
            suite_rows, raw["scale"] = bench_scale.run([int(s) for s in args.sizes.split(",")])
            rows += suite_rows
        elif suite == "parse":
            suite_rows, raw["parse"] = bench_parse.run()
            rows += suite_rows
        else:
            suite_rows, raw["agent"] = bench_agent.run(args.domains, args.idle_seconds)
            rows += suite_rows
    print()
    print(table(rows))
    document = {"machine": info, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                "seconds": round(time.time() - started, 1), "argv": sys.argv[1:],
                "rows": [r.to_json() for r in rows], "raw": raw}
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(started))}.json"
    for path in (args.out / name, args.out / "latest.json"):
        path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {args.out / name}")
    missed = [r for r in rows if r.met is False]
    if missed:
        print(f"targets missed: {len(missed)} of {sum(r.met is not None for r in rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
