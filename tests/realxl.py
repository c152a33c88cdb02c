"""Running the real libxenlight without a hypervisor, for the tests only.

``tests/shim/xenshim.c`` is compiled into an LD_PRELOAD library that fakes the few libxc/xenstore
calls ``libxl_ctx_alloc`` and ``xl -N create`` make. Everything that touches libxl then runs in a
subprocess (never in the pytest process: the fake handles are guard pages, and a wrong call
crashes). Run as a script, this module is that subprocess's side: it reads a JSON request on stdin
and answers on stdout (structlog goes to stderr so it cannot corrupt the answer).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SHIM_SOURCE = Path(__file__).parent / "shim" / "xenshim.c"
XL = Path("/usr/lib/xen-4.17/bin/xl")
PROJECT = Path(__file__).resolve().parent.parent
SHARED = PROJECT.parent / "shared"
#: Values libxl's to_json omits as defaults (an enum's ``invalid`` is its init value).
_DEFAULTS = (0, "", [], {}, None, "<default>", "invalid")


def libxl_missing() -> str | None:
    """Why the real-libxl tests cannot run here, or None when they can."""
    sys.path.insert(0, str(PROJECT / "libxl" / "hosts" / "binding"))
    try:
        from build_ffi import headers_available
    finally:
        sys.path.pop(0)
    if not headers_available():
        return "libxl headers not installed (Debian: apt-get install libxen-dev; .ci/run does)"
    if shutil.which("gcc") is None:
        return "gcc not installed: cannot build the LD_PRELOAD shim"
    return None


@functools.cache
def shim_library() -> Path:
    """Compile the shim once per test session into a private temporary directory."""
    out = Path(tempfile.mkdtemp(prefix="xenshim-")) / "xenshim.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-o", str(out), str(SHIM_SOURCE)],
                   check=True, capture_output=True, text=True)
    return out


def shim_env() -> dict[str, str]:
    env = dict(os.environ, LD_PRELOAD=str(shim_library()))
    env.pop("PYTHONSTARTUP", None)
    return env


def run_under_shim(request: dict[str, Any]) -> Any:
    """Send ``request`` to this module running as a script under the shim; return its answer."""
    proc = subprocess.run([sys.executable, __file__], input=json.dumps(request), env=shim_env(),
                          capture_output=True, text=True, check=False, cwd=PROJECT)
    if proc.returncode != 0:
        raise AssertionError(f"libxl subprocess failed (rc {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def roundtrip(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each config through real ``libxl_domain_config_from_json`` → ``to_json``:
    ``{"json": ...}`` or ``{"error": message}`` per config, in order."""
    return run_under_shim({"op": "roundtrip", "configs": configs})


def xl_dry_run(cfg_file: Path) -> dict[str, Any]:
    """What real ``xl -N create FILE`` builds from an xl.cfg (libxl JSON)."""
    proc = subprocess.run([str(XL), "-N", "create", str(cfg_file)], env=shim_env(), capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"xl -N create {cfg_file} failed (rc {proc.returncode}): {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def xl_create_dry(cfg_file: Path) -> tuple[dict[str, Any] | None, str]:
    """Real ``xl -N create FILE``: (its libxl JSON, stderr), or (None, stderr) when xl refuses the
    file (non-zero exit, a crash included)."""
    proc = subprocess.run([str(XL), "-N", "create", str(cfg_file)], env=shim_env(), capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        return None, proc.stderr.strip()
    return json.loads(proc.stdout), proc.stderr.strip()


def lost_fields(sent: Any, kept: Any, path: str = "") -> list[str]:
    """Fields of ``sent`` that libxl dropped or changed in ``kept``, as ``path: sent -> kept``.

    Only what was sent is compared. libxl's own normalisations are not differences: it lowers the
    case of enums, uuids and macs, sorts ``avail_vcpus``, omits values equal to the default (so an
    absent key is accepted when the sent value is an empty/zero default, an enum's ``invalid`` init
    value, or -1 for ``devid``), and
    4.17 prints a legacy ``cpuid`` leaf list as ``{"cpuid": [...], "msr": [...]}``.
    """
    if path.endswith("cpuid") and isinstance(sent, list) and isinstance(kept, dict):
        kept = kept.get("cpuid")
    if isinstance(sent, dict):
        if not isinstance(kept, dict):
            return [f"{path or '.'}: {sent!r} -> {kept!r}"]
        problems = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in kept:
                default = value in _DEFAULTS or (key == "devid" and value == -1)
                if not default or value is False:
                    problems.append(f"{where}: {value!r} dropped")
                continue
            problems += lost_fields(value, kept[key], where)
        return problems
    if isinstance(sent, list):
        if path.endswith("avail_vcpus"):
            sent, kept = sorted(sent), sorted(kept) if isinstance(kept, list) else kept
        if not isinstance(kept, list) or len(sent) != len(kept):
            return [f"{path}: {sent!r} -> {kept!r}"]
        return [p for i, (s, k) in enumerate(zip(sent, kept, strict=True))
                for p in lost_fields(s, k, f"{path}[{i}]")]
    if isinstance(sent, str) and isinstance(kept, str) and kept == sent.lower():
        return []
    if sent != kept or type(sent) is not type(kept):
        return [f"{path}: {sent!r} -> {kept!r}"]
    return []


def flatten(obj: Any, path: str = "") -> dict[str, Any]:
    """``{"b_info.type.hvm.vnc.enable": "True", "disks[0].vdev": "xvda", ...}``: every leaf by path
    (lists of scalars, like ``avail_vcpus``, are leaves)."""
    if isinstance(obj, dict):
        return {k: v for key, value in obj.items()
                for k, v in flatten(value, f"{path}.{key}" if path else key).items()}
    if isinstance(obj, list) and obj and isinstance(obj[0], dict | list):
        return {k: v for i, value in enumerate(obj) for k, v in flatten(value, f"{path}[{i}]").items()}
    return {path: obj}


def create_outcomes(configs: list[Any]) -> list[dict[str, Any]]:
    """Each config through real ``libxl_domain_create_new`` as far as it gets without Xen, in order:
    ``{"outcome": "hypervisor"}`` when libxl accepted it and asked Xen to make the domain (the shim's
    ``xc_domain_create`` was reached; ``then_crashed`` names the signal if libxl died on its failure
    path afterwards), ``{"outcome": "refused", "error", "transient"}`` when libxl
    refused it first, ``{"outcome": "aborted", "signal"}`` when libxl killed the process (an assert)."""
    return run_under_shim({"op": "create", "configs": configs})


def call_outcomes(calls: list[list[Any]]) -> list[dict[str, Any]]:
    """Each ``[method, *args]`` called on a ``RealHost`` under the shim (a host with domain 0 only):
    ``{"outcome": "returned", "value"}`` (dataclasses as dicts), ``{"outcome": "refused", "error",
    "transient"}`` or ``{"outcome": "aborted", "signal"}`` (a call the shim does not model)."""
    return run_under_shim({"op": "call", "calls": calls})


def _create(host: Any, config: Any) -> dict[str, Any]:
    """One create; its answer, or ``hypervisor`` when the shim's ``xc_domain_create`` was reached
    (told through a pipe, which survives libxl crashing on its failure path afterwards)."""
    read_end, write_end = os.pipe()
    os.environ["XENSHIM_CREATE_FD"] = str(write_end)
    outcome = _in_child(_call, host, ["create", config])
    del os.environ["XENSHIM_CREATE_FD"]
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reached = pipe.read() != b""
    if reached:
        crashed = outcome.get("signal")
        return {"outcome": "hypervisor", **({"then_crashed": crashed} if crashed else {})}
    return outcome  # "returned" (a domid) cannot happen without Xen: the test says so


def _call(host: Any, call: list[Any]) -> dict[str, Any]:
    import dataclasses

    from libxl.errors import BackendError

    method, *args = call
    try:
        value = getattr(host, method)(*args)
    except BackendError as err:
        return {"outcome": "refused", "error": str(err), "transient": err.transient}
    if isinstance(value, list):
        value = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
    elif dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return {"outcome": "returned", "value": value}


def _in_child(step: Any, *args: Any) -> dict[str, Any]:
    """``step(*args)`` in a forked child, so that an assert in libxl (or a call the shim does not
    model, which hits a guard page) ends the child, not the batch."""
    import signal

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        os.write(write_end, json.dumps(step(*args)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return {"outcome": "aborted", "signal": signal.Signals(os.WTERMSIG(status)).name}
    return json.loads(data)


def _live_tuning(host: Any) -> dict[str, Any]:
    """The binding's live-tuning plumbing that runs without a hypervisor: the cpu bitmaps handed
    to libxl_set_vcpuaffinity (bytes as libxl lays them out, NULL for "leave as it is") and the
    refusals made before libxl is called."""
    from libxl.errors import BackendError

    with host._bitmap("test", [0, 3, 9]) as bitmap:
        laid_out = {"size": bitmap.size, "map": [bitmap.map[i] for i in range(bitmap.size)]}
    with host._bitmap("test", None) as nothing:
        null = nothing == host._ffi.NULL
    refusals = []
    for call in (lambda: host.set_vcpu_affinity(7, 0, [], None),
                 lambda: host.set_vcpu_affinity(7, 0, [-1], None),
                 lambda: host.set_vcpu_affinity(7, 1, [0], [3, 16]),
                 lambda: host.set_sched_params(7, {"period": 10})):
        try:
            call()
            refusals.append(None)
        except BackendError as err:
            refusals.append({"error": str(err), "transient": err.transient})
    return {"bitmap": laid_out, "null": null, "refusals": refusals}


def _contexts(host: Any, config: Any) -> dict[str, Any]:
    """Which libxl contexts calls run on: two threads inside a call at once, then one more call
    after both returned, each doing a real ``json_roundtrip`` on the context it holds."""
    import threading

    barrier = threading.Barrier(2)
    held: dict[str, int] = {}
    kept: dict[str, bool] = {}

    def call(tag: str) -> None:
        with host._borrowed("test"):
            held[tag] = int(host._ffi.cast("uintptr_t", host._ctx))
            barrier.wait(timeout=30)  # both threads hold a context here
            kept[tag] = host.json_roundtrip(config) == host.json_roundtrip(config)

    threads = [threading.Thread(target=call, args=(tag,)) for tag in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    call_after = {}
    with host._borrowed("test"):
        call_after["ctx"] = int(host._ffi.cast("uintptr_t", host._ctx))
    main = int(host._ffi.cast("uintptr_t", host._main_ctx))
    return {"at_once": sorted(held.values()), "after": call_after["ctx"], "main": main, "kept": kept,
            "allocated": len(host._contexts)}


def _serve(request: dict[str, Any]) -> Any:
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    from libxl.errors import BackendError
    from libxl.hosts.binding.host import open_real_host

    host = open_real_host()
    try:
        if request["op"] == "host_info":
            info = host.host_info()
            return {"total_memory_kib": info.total_memory_kib, "nr_cpus": info.nr_cpus,
                    "xen_version": info.xen_version}
        if request["op"] == "host_facts":
            info = host.host_info()
            return {"total_memory_kib": info.total_memory_kib, "free_memory_kib": info.free_memory_kib,
                    "nr_cpus": info.nr_cpus, "xen_version": info.xen_version,
                    "xen_commandline": info.extra["xen_commandline"]}
        if request["op"] == "event_wait":
            # The event thread's wait step: times out with nothing armed, returns at once when woken.
            wake_r, wake_w = os.pipe()
            out = host._ffi.new("libxl_event **")
            timed_out = host._lib.xr_wait_event(host._main_ctx, wake_r, 50, out)
            os.write(wake_w, b"x")
            woken = host._lib.xr_wait_event(host._main_ctx, wake_r, 600_000, out)
            return {"timed_out": timed_out, "woken": woken}
        if request["op"] == "create":
            return [_create(host, config) for config in request["configs"]]
        if request["op"] == "call":
            return [_in_child(_call, host, call) for call in request["calls"]]
        if request["op"] == "restore_refusals":
            # RealHost.restore on images it must refuse before libxl makes anything.
            refused = []
            for path, config in request["cases"]:
                try:
                    host.restore(path, config)
                    refused.append({"restored": True})
                except BackendError as err:
                    refused.append({"error": str(err), "transient": err.transient})
            return refused
        if request["op"] == "live_tuning":
            return _live_tuning(host)
        if request["op"] == "contexts":
            return _contexts(host, request["config"])
        answers = []
        for config in request["configs"]:
            try:
                answers.append({"json": host.json_roundtrip(config)})
            except BackendError as err:
                answers.append({"error": str(err), "transient": err.transient})
        return answers
    finally:
        host.close()


if __name__ == "__main__":
    json.dump(_serve(json.load(sys.stdin)), sys.stdout)
