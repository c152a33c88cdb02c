"""The control agent that runs inside the e2e dom0 (started by the image's init, stdlib only).

The VM has no network on purpose, so the host drives dom0 through one virtio-serial port:
line-delimited JSON requests in, one JSON reply per request out, matched by ``id``. Requests:

- ``{"id": 1, "op": "ping"}`` -> ``{"id": 1, "pong": true, "uptime": 12.3}``
- ``{"id": 2, "op": "sh", "cmd": "xl list", "timeout": 60}`` -> ``{"id": 2, "rc": 0, "out": ..., "err":
  ..., "secs": 0.2}`` (rc 124 on timeout)
- ``{"id": 3, "op": "write", "path": "/srv/x.cfg", "data": "..."}`` -> ``{"id": 3, "rc": 0}``
- ``{"id": 4, "op": "poweroff"}`` -> ``{"id": 4, "rc": 0}``, then the machine powers off.

It is read from the read-only share of the checkout, so it changes without an image rebuild.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

#: Cap on captured output per stream, so one chatty command cannot flood the channel.
MAX_OUTPUT = 256 * 1024


def _uptime() -> float:
    with open("/proc/uptime") as f:
        return float(f.read().split()[0])


def _run_shell(cmd: str, timeout: float) -> dict:
    """Run ``cmd`` in its own session; on timeout kill the whole group, never wait for it forever.

    ``subprocess.run`` would wait for EOF on the pipes after killing bash, which never comes while
    a grandchild (a hotplug script, a stuck ``xl``) still holds them: the channel would hang.
    """
    start = time.monotonic()
    proc = subprocess.Popen(["/bin/bash", "-c", cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        try:
            out, err = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out, err = b"", b""
        rc, err = 124, err + f"\n[timed out after {timeout:g} s]".encode()
    return {"rc": rc, "out": out[-MAX_OUTPUT:].decode(errors="replace"),
            "err": err[-MAX_OUTPUT:].decode(errors="replace"), "secs": time.monotonic() - start}


def _write_file(path: str, data: str) -> dict:
    """Write atomically (temp file + rename), the way a GitOps tool updates a desired file."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.e2e-tmp")
    with open(tmp, "w") as f:
        f.write(data)
    os.replace(tmp, path)
    return {"rc": 0}


def handle(request: dict) -> dict:
    op = request.get("op")
    if op == "ping":
        return {"pong": True, "uptime": _uptime()}
    if op == "sh":
        return _run_shell(request["cmd"], float(request.get("timeout", 120)))
    if op == "write":
        return _write_file(request["path"], request["data"])
    if op == "poweroff":
        return {"rc": 0}
    return {"rc": 2, "err": f"unknown op {op!r}"}


def serve(port: str) -> None:
    fd = os.open(port, os.O_RDWR)
    buffer = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            time.sleep(0.1)  # host end not connected yet
            continue
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                request = json.loads(line)
            except ValueError:
                continue  # half a line from an earlier host connection
            try:
                reply = handle(request)
            except Exception as exc:  # every failure goes back to the host
                reply = {"rc": 2, "err": f"{type(exc).__name__}: {exc}"}
            reply["id"] = request.get("id")
            data = (json.dumps(reply) + "\n").encode()
            while data:
                data = data[os.write(fd, data):]
            if request.get("op") == "poweroff":
                os.sync()
                time.sleep(0.5)
                os.execv("/bin/busybox", ["busybox", "poweroff", "-f"])


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1]:
        sys.exit("usage: dom0_control.py /dev/vportNpM")
    serve(sys.argv[1])
