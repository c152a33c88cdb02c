"""The agent's unix socket (``xen+unix:///system``): status and list as JSON, for root only.

The HTTP endpoint serves Prometheus and may listen beyond loopback; the socket is the local,
permission-checked way to ask the agent itself. The protocol is one request line (``status``,
``list``, or ``adopt``/``clear`` followed by guest names) answered by one JSON document, then the
connection closes. The socket is created with
mode 0600 (bound under a 0177 umask, so it is never reachable by others, not even for an instant):
connecting needs write permission, so only root (the agent's user) can ask.

A stale socket left by a crashed agent is replaced; a live one (another agent) is left alone.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from libxl.errors import BackendUnavailable, XenReconcileError

#: One request line: a verb and, for ``adopt``/``clear``, guest names.
_MAX_REQUEST = 4096


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(_MAX_REQUEST).decode(errors="replace").strip()
        verb, *args = line.split() or [""]  # "adopt web db": a verb and its names
        answer = self.server.answers.get(verb)
        known = ", ".join(self.server.answers)
        try:
            doc = answer(*args) if answer else {"error": f"unknown request {line!r} (known: {known})"}
        except TypeError:
            doc = {"error": f"request {verb!r} takes other arguments than {args!r}"}
        except XenReconcileError as err:
            doc = {"error": str(err)}
        with contextlib.suppress(OSError):  # the client went away: nothing to tell it
            self.wfile.write(json.dumps(doc).encode() + b"\n")


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, answers: dict[str, Callable[..., Any]]) -> None:
        self.answers = answers
        old = os.umask(0o177)
        try:
            super().__init__(path, _Handler)
        finally:
            os.umask(old)


def _clear_stale(path: Path) -> None:
    """Remove a socket nobody listens on; refuse to touch a live one or a non-socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()
        return
    finally:
        probe.close()
    raise OSError(f"another agent is listening on {path}")


class AgentSocket:
    """Serves ``answers`` (request -> JSON-able document) on ``path`` from a background thread."""

    def __init__(self, path: str, answers: dict[str, Callable[..., Any]]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        _clear_stale(self.path)
        self._server = _Server(str(self.path), answers)
        os.chmod(self.path, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, name="agent-socket", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def query(path: str, request: str, timeout: float = 10.0) -> Any:
    """Ask the agent on ``path``; raises ``BackendUnavailable`` with one sentence when it cannot."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(timeout)
    try:
        client.connect(path)
        client.sendall(request.encode() + b"\n")
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    except FileNotFoundError:
        raise BackendUnavailable(f"no agent socket at {path} (is `xenreconcile run` active?)") from None
    except PermissionError:
        raise BackendUnavailable(f"{path}: permission denied (the agent's socket is root-only)") from None
    except ConnectionRefusedError:
        raise BackendUnavailable(f"no agent is listening on {path} (a stale socket)") from None
    except OSError as err:
        raise BackendUnavailable(f"cannot ask the agent on {path}: {err.strerror or err}") from None
    finally:
        client.close()
    try:
        doc = json.loads(b"".join(chunks))
    except ValueError:
        raise BackendUnavailable(f"the agent on {path} sent no JSON reply") from None
    if isinstance(doc, dict) and set(doc) == {"error"}:
        raise BackendUnavailable(f"the agent on {path} refused: {doc['error']}")
    return doc
