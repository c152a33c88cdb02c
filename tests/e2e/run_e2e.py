"""``make e2e``: build (or reuse) the Xen host image, boot it under QEMU, run the scenarios.

    python3 tests/e2e/run_e2e.py            # the scenarios (scenarios.py)
    python3 tests/e2e/run_e2e.py --libvirt  # libvirt 9.0 side by side (libvirt_peer.py)
    python3 tests/e2e/run_e2e.py --probe    # exit 0 when this machine can run QEMU at all
    python3 tests/e2e/run_e2e.py --only NAME...  # those scenarios and the ones they need, in order

Exit status 0 only when every scenario passed. The VM is always powered off; a failed run keeps
its console log (and dom0's agent journal, via the ``out`` share) in the cache's ``runs/`` directory and
prints the tail. Timings go to ``CACHE/timings.json`` and a table on stdout; the last line is
``e2e: N passed, N failed``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cache
import scenarios
from vm import DEFAULT_CPU, Dom0, Shares, VMError

CHECKOUT = Path(__file__).resolve().parents[2]
BOOT_TIMEOUT = 900.0
#: Failed runs' directories (console and agent logs) kept in CACHE/runs, newest first.
KEEP_RUNS = 10


def probe() -> int:
    """One line and exit 1 when QEMU cannot start here (so CI lets the unit tests decide)."""
    if shutil.which("qemu-system-x86_64") is None:
        print("e2e: skipped: qemu-system-x86_64 is not installed on this machine")
        return 1
    try:
        proc = subprocess.run(["qemu-system-x86_64", "-machine", "none", "-nodefaults", "-display", "none",
                               "-accel", "tcg", "-monitor", "stdio"], input="quit\n", capture_output=True,
                              text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        print(f"e2e: skipped: qemu-system-x86_64 cannot run on this machine ({exc})")
        return 1
    if proc.returncode != 0:
        print(f"e2e: skipped: qemu-system-x86_64 cannot run on this machine: {proc.stderr.strip()[:200]}")
        return 1
    return 0


def table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"  {a:<{widths[0]}}  {b:>{widths[1]}}  {c}" for a, b, c in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="only check that QEMU can run here")
    parser.add_argument("--libvirt", action="store_true", help="run the libvirt comparison boot")
    parser.add_argument("--only", nargs="+", metavar="NAME",
                        help="run these scenarios (exact names) and, first, those they need")
    args = parser.parse_args(argv)
    if args.probe:
        return probe()
    try:
        suite = scenarios.subset(scenarios.SCENARIOS, args.only) if args.only else scenarios.SCENARIOS
    except KeyError as exc:
        parser.error(f"--only: {exc.args[0]}")

    root = cache.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    mode = "libvirt" if args.libvirt else "scenarios"
    run_dir = root / "runs" / time.strftime(f"%Y%m%d-%H%M%S-{mode}")
    (run_dir / "out").mkdir(parents=True)
    for old in sorted((root / "runs").iterdir())[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
    figures: dict[str, object] = {"mode": mode, "run_dir": str(run_dir)}
    outcomes: list[scenarios.Outcome] = []

    def report(o: scenarios.Outcome) -> None:
        outcomes.append(o)
        print(f"e2e: [{'PASS' if o.passed else 'FAIL'}] {o.name} ({o.secs:.1f} s): {o.detail}", flush=True)

    print(f"e2e: cache {root}, run directory {run_dir}", flush=True)
    try:
        image, build_s, built = cache.ensure_image(root, run_dir / "build.log")
    except RuntimeError as exc:
        report(scenarios.Outcome("image build", False, 0.0, str(exc)))
        return finish(root, figures, outcomes)
    figures["image_build_s" if built else "image_warm_s"] = round(build_s, 2)
    print(f"e2e: image {image.name} {'built' if built else 'cached'} in {build_s:.1f} s", flush=True)
    try:
        deb, deb_s = build_deb(run_dir)
    except RuntimeError as exc:
        report(scenarios.Outcome("make deb", False, 0.0, str(exc)))
        return finish(root, figures, outcomes)
    print(f"e2e: {deb.name} built in {deb_s:.1f} s", flush=True)

    if args.libvirt:
        import libvirt_peer  # only the comparison boot needs it
        cpu, run = libvirt_peer.CPU, libvirt_peer.run_all
    else:
        cpu = DEFAULT_CPU

        def run(e: scenarios.E2E, report: Callable[[scenarios.Outcome], None]) -> None:
            scenarios.run_scenarios(suite, e, report)
    dom0 = Dom0(image, Shares(CHECKOUT, deb.parent, run_dir / "out"), run_dir, cpu=cpu)
    try:
        boot_s = dom0.boot(BOOT_TIMEOUT)
        figures["boot_to_ready_s"] = round(boot_s, 2)
        print(f"e2e: dom0 ready {boot_s:.1f} s after QEMU started", flush=True)
        e = scenarios.E2E(dom0)
        run(e, report)
        figures.update({k: round(v, 3) for k, v in e.figures.items()})
    except (VMError, TimeoutError, OSError) as exc:
        report(scenarios.Outcome("VM", False, 0.0, f"{type(exc).__name__}: {exc}"))
    finally:
        failed_run = not outcomes or any(not o.passed for o in outcomes)
        if failed_run and dom0.sock is not None:
            with contextlib.suppress(VMError, TimeoutError, OSError):
                dom0.sh(f"{scenarios.SAVE_LOGS} /mnt/out; sync", 60)
        dom0.poweroff()
    if failed_run:
        print(f"e2e: console log kept in {dom0.console_log}; its tail:\n{dom0.console_tail(40)}")
        agent_log = run_dir / "out" / scenarios.AGENT_LOG_NAME
        if agent_log.exists():
            tail = agent_log.read_text(errors="replace").splitlines()[-40:]
            print(f"e2e: agent log kept in {agent_log}; its tail:\n" + "\n".join(tail))
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
    return finish(root, figures, outcomes)


def build_deb(run_dir: Path) -> tuple[Path, float]:
    """``make deb`` of the checkout into ``run_dir/deb`` (dom0 installs it from there with apt)."""
    start = time.monotonic()
    proc = subprocess.run(["make", "-s", "deb", f"DEB_BUILD={run_dir / 'deb-build'}",
                           f"DEB_DIST={run_dir / 'deb'}"], cwd=CHECKOUT, capture_output=True, text=True)
    debs = sorted((run_dir / "deb").glob("xenreconcile_*.deb"))
    if proc.returncode != 0 or len(debs) != 1:
        raise RuntimeError(f"`make deb` failed (rc {proc.returncode}): {(proc.stdout + proc.stderr)[-1500:]}")
    shutil.rmtree(run_dir / "deb-build", ignore_errors=True)
    return debs[0], time.monotonic() - start


def finish(root: Path, figures: dict[str, object], outcomes: list[scenarios.Outcome]) -> int:
    figures["scenarios"] = {o.name: {"passed": o.passed, "secs": round(o.secs, 2)} for o in outcomes}
    path = root / ("timings-libvirt.json" if figures.get("mode") == "libvirt" else "timings.json")
    previous = json.loads(path.read_text()) if path.exists() else {}
    # A warm run keeps the last cold build's figure, so the file always has both.
    for key in ("image_build_s", "image_warm_s"):
        if key not in figures and key in previous:
            figures[key] = previous[key]
    path.write_text(json.dumps(figures, indent=2) + "\n")
    rows = [("what", "seconds", "result")]
    rows += [(k, f"{v}", "") for k, v in figures.items() if isinstance(v, int | float)]
    rows += [(o.name, f"{o.secs:.1f}", "pass" if o.passed else "FAIL") for o in outcomes]
    print(f"e2e: timings ({path}):\n{table(rows)}")
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    print(f"e2e: {passed} passed, {failed} failed")
    for o in outcomes:  # again after the table: CI shows the tail of long output
        if not o.passed:
            print(f"e2e: FAILED {o.name}: {o.detail}")
    return 0 if outcomes and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
