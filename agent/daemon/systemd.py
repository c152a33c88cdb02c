"""The sd_notify protocol without libsystemd: one AF_UNIX datagram per state change.

systemd documents the wire format as newline-separated ``KEY=VALUE`` assignments sent to the socket
named by ``$NOTIFY_SOCKET`` (a leading ``@`` means Linux's abstract namespace). Speaking it directly
keeps the agent free of a C dependency and testable with a plain socket. Without ``NOTIFY_SOCKET``
(not under systemd) every call is a no-op, so the agent runs the same in a terminal.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping


def _address(raw: str) -> str | bytes:
    """``@name`` -> abstract socket (leading NUL byte); anything else is a filesystem path."""
    if raw.startswith("@"):
        return b"\0" + raw[1:].encode()
    return raw


class Notifier:
    """Sends sd_notify messages; ``enabled`` is False when no manager is listening."""

    def __init__(self, environ: Mapping[str, str] | None = None, send_timeout: float = 1.0) -> None:
        env = os.environ if environ is None else environ
        self._send_timeout = send_timeout
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        self.watchdog_interval = self._watchdog_interval(env)

    @staticmethod
    def _watchdog_interval(env: Mapping[str, str]) -> float | None:
        """Half of ``WATCHDOG_USEC`` (systemd's advice), when the watchdog is meant for us.

        ``WATCHDOG_PID`` names the process the watchdog applies to; a child that inherited the
        variables must not ping on its parent's behalf.
        """
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if not usec.isdigit() or int(usec) == 0:
            return None
        if pid and pid != str(os.getpid()):
            return None
        return int(usec) / 2 / 1_000_000

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (keyword names upper-cased); False when nothing was sent."""
        if self._address is None:
            return False
        payload = "\n".join(f"{key.upper()}={value}" for key, value in fields.items()).encode()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # A manager that is not reading must not hang the loop: wait a little for queue space
            # (READY/STOPPING matter), then drop the message rather than block forever.
            sock.settimeout(self._send_timeout)
            try:
                sock.connect(self._address)
                sock.sendall(payload)
            except OSError:
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify(ready=1, **({"status": status} if status else {}))

    def status(self, text: str) -> bool:
        return self.notify(status=text)

    def watchdog(self) -> bool:
        return self.notify(watchdog=1)

    def reloading(self) -> bool:
        """``RELOADING=1`` must carry ``MONOTONIC_USEC`` (CLOCK_MONOTONIC) since systemd 253."""
        return self.notify(reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    def stopping(self) -> bool:
        return self.notify(stopping=1)
