"""The metrics HTTP server's bounds (issue 14, findings 8 and 10): slow and idle clients cost no
thread and are closed after the timeout, /healthz and /metrics are served meanwhile, and a client
that hangs up early or an endpoint that fails prints no traceback."""

from __future__ import annotations

import socket
import struct
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from agent.daemon.endpoints import Endpoints, MetricsServer
from agent.daemon.httpd import Limits

#: Generous bounds for "eventually" (a shared 2-core machine): never what the test measures.
PATIENCE = 30.0


def _endpoints(status: object = None) -> Endpoints:
    def status_doc() -> dict[str, object]:
        if isinstance(status, Exception):
            raise status
        return {"ready": True, "domains": {}}
    return Endpoints(healthy=lambda: (True, "ok"), ready=lambda: (True, "ready"), status=status_doc)


def _server(limits: Limits) -> MetricsServer:
    registry = CollectorRegistry()
    Counter("xenreconcile_test", "a metric to serve", registry=registry).inc()
    srv = MetricsServer(("127.0.0.1", 0), registry, _endpoints(KeyError("broken")), limits)
    srv.start()
    return srv


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    srv = _server(Limits(workers=2, timeout=0.5, max_connections=30, max_head=1024))
    yield srv
    srv.stop()


def _get(srv: MetricsServer, path: str) -> tuple[int, bytes]:
    host, port = srv.address
    try:
        with urllib.request.urlopen(f"http://{host}:{port}{path}", timeout=PATIENCE) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _connect(srv: MetricsServer) -> socket.socket:
    return socket.create_connection(srv.address, timeout=PATIENCE)


def _closed_by_server(sock: socket.socket) -> bool:
    """True when the server closes the connection (EOF or reset) before PATIENCE runs out."""
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_slow_clients_take_no_threads_and_others_are_served(server: MetricsServer) -> None:
    before = threading.active_count()
    slow = [_connect(server) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes its head
    assert _get(server, "/healthz") == (200, b"ok\n")
    status, body = _get(server, "/metrics")
    assert status == 200 and b"xenreconcile_test_total 1.0" in body
    # the accepting thread (counted in ``before``) and at most the pool's two workers
    assert threading.active_count() <= before + 2
    assert all(_closed_by_server(sock) for sock in slow)
    for sock in slow:
        sock.close()


def test_an_idle_connection_is_closed_after_the_timeout(server: MetricsServer) -> None:
    idle = _connect(server)
    assert _closed_by_server(idle)
    idle.close()
    assert _get(server, "/readyz") == (200, b"ready\n")


def test_a_client_hanging_up_early_prints_nothing(server: MetricsServer,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    for _ in range(10):
        sock = _connect(server)
        sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        sock.close()
    assert _get(server, "/healthz") == (200, b"ok\n")
    assert capfd.readouterr().err == ""


def test_a_failing_endpoint_is_a_500_and_the_server_goes_on(server: MetricsServer,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    assert _get(server, "/status")[0] == 500
    assert _get(server, "/healthz") == (200, b"ok\n")
    assert "Traceback" not in capfd.readouterr().err


def test_an_oversized_head_gets_431(server: MetricsServer) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /metrics HTTP/1.0\r\nX-Pad: " + b"a" * 2000)
    assert sock.recv(4096).startswith(b"HTTP/1.0 431 ")
    sock.close()


def test_connections_over_the_limit_evict_the_oldest() -> None:
    server = _server(Limits(workers=2, timeout=4 * PATIENCE, max_connections=5))  # no timeout here
    try:
        first = _connect(server)
        first.sendall(b"GET /")
        rest = [_connect(server) for _ in range(5)]
        for sock in rest:
            sock.sendall(b"GET /")
        assert _closed_by_server(first)  # the sixth connection evicted it
        assert _get(server, "/healthz") == (200, b"ok\n")  # and a scraper evicts the next one
        for sock in [first, *rest]:
            sock.close()
    finally:
        server.stop()
