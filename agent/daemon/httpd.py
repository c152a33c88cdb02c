"""A small HTTP server with bounded resources, for the agent's metrics, health and status endpoints.

``http.server.ThreadingHTTPServer`` starts a thread per connection and waits on each for ever: 20
clients that connect and send nothing held 20 threads, an idle connection stayed open for minutes,
and a client that hung up early printed a traceback per request. Here one thread accepts and reads
request heads without blocking (``selectors``), and only a complete head goes to a fixed pool of
worker threads, so a slow or idle client costs a file descriptor and a few bytes, never a thread:

- a client has ``timeout`` seconds from connecting to send its whole request head (however slowly
  it trickles in), then it is closed; heads over ``max_head`` bytes get 431;
- at most ``max_connections`` connections wait for their heads; a new one evicts the oldest, so a
  flood of idle sockets cannot lock out a scraper that sends its request at once;
- a worker writes with ``timeout`` on the socket, so a client that stops reading frees it;
- one request per connection (HTTP/1.0), so no keep-alive connection idles in a worker;
- a client that goes away (EPIPE, ECONNRESET, a timeout) ends its request quietly; a failing
  handler is one log line, never a traceback on stderr.

The handler is an ordinary ``BaseHTTPRequestHandler`` subclass: it reads the head already received
from a buffer and writes to the socket.
"""

from __future__ import annotations

import contextlib
import io
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from agent.log import get_logger

#: Worker threads answering complete requests.
DEFAULT_WORKERS = 4
#: Seconds a client has to send its request head, and each response write may take.
DEFAULT_TIMEOUT = 5.0
#: Connections that may wait for their request head at once.
DEFAULT_MAX_CONNECTIONS = 64
#: Largest request head accepted (Prometheus sends a few hundred bytes).
DEFAULT_MAX_HEAD = 8192
_HEAD_END = (b"\r\n\r\n", b"\n\n")
_TOO_LARGE = (b"HTTP/1.0 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
              b"Connection: close\r\n\r\n")


@dataclass
class Limits:
    """The server's bounds (see the module docstring)."""
    workers: int = DEFAULT_WORKERS
    timeout: float = DEFAULT_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_head: int = DEFAULT_MAX_HEAD


@dataclass
class _Waiting:
    """A connection whose request head is still arriving."""
    sock: socket.socket
    peer: Any
    deadline: float
    head: bytearray = field(default_factory=bytearray)


class _Received:
    """The connection as the handler sees it: reads come from the head already received, writes
    and everything else go to the socket."""

    def __init__(self, sock: socket.socket, head: bytes) -> None:
        self._sock = sock
        self._head = head

    def makefile(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "r" in mode:
            return io.BytesIO(self._head)
        return self._sock.makefile(mode, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class BoundedHTTPServer:
    """Serve ``handler`` on ``address`` (host, port; port 0 picks one) within ``limits``."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._handler = handler
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._listener = socket.create_server(address, family=family, backlog=128)
        self._listener.setblocking(False)
        self._wake_read, self._wake_write = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._waiting: dict[socket.socket, _Waiting] = {}
        self._pool = ThreadPoolExecutor(max_workers=self.limits.workers, thread_name_prefix="xr-http")
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="xr-http-accept", daemon=True)
        self._log = get_logger(component="metrics")

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close waiting connections; requests in flight finish on their own."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_write.send(b"x")
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=False, cancel_futures=True)
        for waiting in list(self._waiting.values()):
            self._drop(waiting)
        self._selector.close()
        for sock in (self._listener, self._wake_read, self._wake_write):
            sock.close()

    # -- the accepting thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=self._next_timeout()):
                sock = key.fileobj
                if sock is self._listener:
                    self._accept()
                elif sock is self._wake_read:
                    with contextlib.suppress(OSError):
                        self._wake_read.recv(64)
                elif (waiting := self._waiting.get(sock)) is not None:  # type: ignore[call-overload]
                    self._receive(waiting)  # (None: evicted by an accept earlier in this round)
            self._expire(time.monotonic())

    def _next_timeout(self) -> float | None:
        if not self._waiting:
            return None
        soonest = min(w.deadline for w in self._waiting.values())
        return max(0.0, soonest - time.monotonic())

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:  # EMFILE and friends: the connection stays in the backlog
                self._log.warning("metrics server cannot accept", error=err.strerror or str(err))
                return
            if len(self._waiting) >= self.limits.max_connections:
                self._drop(min(self._waiting.values(), key=lambda w: w.deadline))
            sock.setblocking(False)
            waiting = _Waiting(sock, peer, time.monotonic() + self.limits.timeout)
            self._waiting[sock] = waiting
            self._selector.register(sock, selectors.EVENT_READ)

    def _receive(self, waiting: _Waiting) -> None:
        try:
            data = waiting.sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client hung up before finishing its request
            self._drop(waiting)
            return
        waiting.head += data
        if any(end in waiting.head for end in _HEAD_END):
            self._unwatch(waiting)
            self._pool.submit(self._answer, waiting.sock, waiting.peer, bytes(waiting.head))
        elif len(waiting.head) > self.limits.max_head:
            with contextlib.suppress(OSError):
                waiting.sock.send(_TOO_LARGE)
            self._drop(waiting)

    def _expire(self, now: float) -> None:
        for waiting in [w for w in self._waiting.values() if w.deadline <= now]:
            self._drop(waiting)

    def _unwatch(self, waiting: _Waiting) -> None:
        self._selector.unregister(waiting.sock)
        del self._waiting[waiting.sock]

    def _drop(self, waiting: _Waiting) -> None:
        self._unwatch(waiting)
        _close(waiting.sock)

    # -- the workers ---------------------------------------------------------------------------

    def _answer(self, sock: socket.socket, peer: Any, head: bytes) -> None:
        try:
            sock.setblocking(True)
            sock.settimeout(self.limits.timeout)
            self._handler(_Received(sock, head), peer, self)  # type: ignore[arg-type]
        except OSError:  # the client went away or stopped reading: nothing left to tell it
            pass
        except Exception as err:  # noqa: BLE001 (a handler bug: one log line, the server goes on)
            self._log.warning("metrics request failed", error=f"{type(err).__name__}: {err}")
        finally:
            _close(sock)


__all__ = ["BoundedHTTPServer", "Limits", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_MAX_HEAD", "DEFAULT_TIMEOUT",
           "DEFAULT_WORKERS"]
