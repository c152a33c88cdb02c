"""The agent's HTTP endpoints: ``/metrics``, ``/healthz``, ``/readyz`` and ``/status``.

What each path answers lives here; how connections are accepted, bounded and timed out lives in
agent.daemon.httpd, and what the metrics are lives in agent.daemon.metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from agent import VERSION
from agent.daemon.httpd import BoundedHTTPServer, Limits
from agent.log import get_logger


@dataclass
class Endpoints:
    """What the HTTP server asks the loop: liveness, readiness and the status document."""
    healthy: Callable[[], tuple[bool, str]]
    #: /readyz: the first full reconcile has run (per-guest failures never hold it).
    ready: Callable[[], tuple[bool, str]]
    status: Callable[[], dict[str, Any]]


class MetricsServer:
    """``/metrics``, ``/healthz``, ``/readyz`` and ``/status`` on ``(host, port)`` (port 0: any), with
    timeouts and a bounded worker pool (agent.daemon.httpd): slow or idle clients cost no thread."""

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, endpoints: Endpoints,
                 limits: Limits | None = None) -> None:
        self._server = BoundedHTTPServer(address, _make_handler(registry, endpoints), limits)

    @property
    def address(self) -> tuple[str, int]:
        return self._server.server_address

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


def _make_handler(registry: CollectorRegistry, endpoints: Endpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"xenreconcile/{VERSION}"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            try:
                code, body, content_type = self._route(self.path.split("?", 1)[0])
            except Exception as err:  # noqa: BLE001 (one endpoint's bug: a 500 and one log line)
                self._send(500, b"internal error\n", "text/plain")
                get_logger(component="metrics").warning("metrics endpoint failed", path=self.path[:200],
                                                        error=f"{type(err).__name__}: {err}")
                return
            self._send(code, body, content_type)

        def _route(self, path: str) -> tuple[int, bytes, str]:
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                return 200, encoder(registry), content_type
            if path in ("/healthz", "/readyz"):
                ok, why = (endpoints.healthy if path == "/healthz" else endpoints.ready)()
                return 200 if ok else 503, (why + "\n").encode(), "text/plain; charset=utf-8"
            if path == "/status":
                body = json.dumps(endpoints.status(), indent=2, sort_keys=True).encode() + b"\n"
                return 200, body, "application/json"
            return 404, b"not found: try /metrics /healthz /readyz /status\n", "text/plain"

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature is fixed)
            """Scrapes every 15 s would drown the agent's own log lines."""

    return Handler
