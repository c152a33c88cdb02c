"""``RealHost.shutdown``: the request, then the husk of the powered-off guest destroyed, as xl's
daemon would. Two races end in a guest that is down, not failed (both seen on the e2e host):
- a guest that ``xl create`` started still has that daemon beside it (xendomains' guests after a
  hand-over), and it may destroy the husk first (host-shutdown reported 4 of 6 "failed", exit 1);
- someone asked first (a racing xendomains, an operator's ``xl shutdown``): the guest took that
  request, and libxl timed out waiting for it to take ours (one guest "failed")."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from libxl.errors import BackendError
from libxl.hosts.binding.host import RealHost, _not_found

#: What libxl says when the guest never acknowledged the request (it had taken someone else's).
UNACKNOWLEDGED = BackendError("shutdown", "ERROR_TIMEDOUT (-9): libxl_domain.c:854:pvcontrol_cb: guest "
                              "didn't acknowledge control request: -9", domain="7")


class PoweredOff:
    """Stands in for RealHost's libxl calls: the guest is shut down (poweroff) at the first look
    (``down`` False: still running, never going down), the request fails with ``request_error``,
    and destroying its husk with ``destroy_error`` (None: they succeed)."""

    def __init__(self, destroy_error: BackendError | None, request_error: BackendError | None = None,
                 down: bool = True) -> None:
        self._lib = SimpleNamespace(libxl_domain_shutdown=object())
        self._ffi = SimpleNamespace(NULL=None)
        self._tls = SimpleNamespace(quiet=None)
        self.destroy_error, self.request_error, self.down = destroy_error, request_error, down
        self.calls: list[str] = []

    def _on_domain(self, operation: str, func: Any, domid: int, *args: Any) -> int:
        self.calls.append(operation)
        if self.request_error is not None:
            raise self.request_error
        return 0

    def _dominfo(self, domid: int) -> dict[str, Any]:
        return {"shutdown": True, "shutdown_reason": "poweroff"} if self.down else {"shutdown": False}

    def destroy(self, domid: int) -> None:
        self.calls.append("destroy (libxl's lines to debug)" if self._tls.quiet else "destroy")
        if self.destroy_error is not None:
            raise self.destroy_error


def shut_down(host: PoweredOff) -> bool:
    return RealHost.shutdown(host, 7, 0.0)  # type: ignore[arg-type]


def test_a_husk_destroyed_by_us_is_gone() -> None:
    host = PoweredOff(None)
    assert shut_down(host) is True
    assert host.calls == ["shutdown", "destroy (libxl's lines to debug)"]
    assert host._tls.quiet is None


def test_a_husk_someone_else_destroyed_first_is_gone_too() -> None:
    host = PoweredOff(_not_found("destroy", 7, "ERROR_FAIL (-3): xc_domain_destroy failed: No such process"))
    assert shut_down(host) is True
    assert host.calls == ["shutdown", "destroy (libxl's lines to debug)"]
    assert host._tls.quiet is None


def test_any_other_failure_to_destroy_the_husk_is_reported() -> None:
    host = PoweredOff(BackendError("destroy", "ERROR_FAIL (-3): Destruction of domain failed", domain="7"))
    with pytest.raises(BackendError, match="Destruction of domain failed"):
        shut_down(host)


def test_a_guest_that_took_someone_elses_request_is_down_not_failed() -> None:
    host = PoweredOff(None, request_error=UNACKNOWLEDGED)
    assert shut_down(host) is True
    assert host.calls == ["shutdown", "destroy (libxl's lines to debug)"]


def test_a_failed_request_to_a_guest_still_running_is_reported() -> None:
    host = PoweredOff(None, request_error=UNACKNOWLEDGED, down=False)
    with pytest.raises(BackendError, match="didn't acknowledge"):
        shut_down(host)
    assert host.calls == ["shutdown"]


def test_a_guest_that_does_not_go_down_in_time_is_not_destroyed_here() -> None:
    host = PoweredOff(None, down=False)
    assert shut_down(host) is False
    assert host.calls == ["shutdown"]


def test_a_request_to_a_domain_that_is_not_there_is_its_not_found() -> None:
    host = PoweredOff(None, request_error=_not_found("shutdown", 7, "ERROR_DOMAIN_NOTFOUND (-21)"))
    with pytest.raises(BackendError, match="NOTFOUND"):
        shut_down(host)
    assert host.calls == ["shutdown"]
