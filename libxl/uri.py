"""Connection URIs, libvirt style: which host a command or the agent talks to.

``test:///default``            a fresh simulated host in memory
``test:///ABS/PATH.json``      a simulated host persisted at PATH, shared by processes
``xen:///system`` (``xen:///``) the real libxl on this machine

The simulated host takes fault-injection and sizing parameters as a query string, e.g.
``test:///default?fail_rate=0.2&latency=0.01-0.05&seed=7&memory_mib=4096``. Anything else is
refused with a sentence that names the part that is wrong, before any host is touched.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from libxl.backend import Backend
from libxl.errors import BackendUnavailable, ConfigError

SSH_HINT = ("remote hosts are reached over ssh: run xenreconcile on the Xen host itself "
            "(e.g. `ssh HOST xenreconcile ...`); xen+ssh:// URIs are not supported yet")


@dataclass(frozen=True)
class ParsedURI:
    """A checked URI: ``driver`` is ``test`` or ``xen``; ``path`` None means ``test:///default``."""
    uri: str
    driver: str
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def _latency(text: str) -> float | tuple[float, float]:
    low, sep, high = text.partition("-")
    values = (float(low), float(high)) if sep else (float(low), float(low))
    if not 0 <= values[0] <= values[1]:
        raise ValueError(text)
    return values if sep else values[0]


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise ValueError(text)
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError(text)
    return value


#: Query parameters of ``test:`` URIs -> (SimHost keyword, parser, what a valid value looks like).
_TEST_PARAMS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "fail_rate": ("fail_rate", _fraction, "a probability between 0 and 1"),
    "latency": ("latency", _latency, "seconds, or a range like 0.01-0.05"),
    "seed": ("seed", int, "an integer"),
    "memory_mib": ("total_memory_kib", lambda t: _positive(t) * 1024, "a positive number of MiB"),
    "dom0_memory_mib": ("dom0_memory_kib", lambda t: _positive(t) * 1024, "a positive number of MiB"),
    "cpus": ("nr_cpus", _positive, "a positive integer"),
    "shutdown_delay": ("shutdown_delay", _seconds, "a non-negative number of seconds"),
}


def _bad(uri: str, problem: str) -> ConfigError:
    return ConfigError(problem, element=f"URI {uri!r}")


def parse_uri(uri: str) -> ParsedURI:
    """Check ``uri`` and split it; raises ConfigError naming the bad part."""
    parts = urlsplit(uri.strip())
    scheme = parts.scheme.lower()
    if not scheme:
        raise _bad(uri, "no scheme: expected test:///default, test:///ABS/PATH.json or xen:///system")
    driver, _, transport = scheme.partition("+")
    if driver not in ("test", "xen"):
        raise _bad(uri, f"unknown driver {scheme!r}: expected 'test' or 'xen'")
    if transport or parts.netloc:
        if driver == "xen":
            what = f"transport {transport!r}" if transport else f"host {parts.netloc!r}"
            raise _bad(uri, f"remote {what} is not supported; {SSH_HINT}")
        raise _bad(uri, f"the test driver is local: drop {transport or parts.netloc!r} "
                        "(use test:///default or test:///ABS/PATH.json)")
    if parts.fragment:
        raise _bad(uri, f"unexpected fragment {parts.fragment!r}")
    if driver == "xen":
        if parts.path not in ("/", "/system", ""):
            raise _bad(uri, f"path {parts.path!r}: the xen driver only offers /system")
        if parts.query:
            raise _bad(uri, f"xen:///system takes no parameters (got {parts.query!r})")
        return ParsedURI(uri=uri, driver="xen")
    if parts.path in ("/default", ""):
        path = None
    elif parts.path.startswith("/") and not parts.path.endswith("/"):
        path = parts.path
    else:
        raise _bad(uri, f"path {parts.path!r}: expected /default or an absolute file path")
    params: dict[str, Any] = {}
    for key, text in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query)):
        if key not in _TEST_PARAMS:
            raise _bad(uri, f"unknown parameter {key!r} (known: {', '.join(_TEST_PARAMS)})")
        keyword, convert, expected = _TEST_PARAMS[key]
        try:
            params[keyword] = convert(text)
        except ValueError:
            raise _bad(uri, f"parameter {key}={text!r} must be {expected}") from None
    return ParsedURI(uri=uri, driver="test", path=path, params=params)


def open_backend(uri: str) -> Backend:
    """The host behind ``uri``. The real binding is imported only when asked for."""
    parsed = parse_uri(uri)
    if parsed.driver == "test":
        from libxl.sim import SimHost
        try:
            return SimHost(uri, path=parsed.path, **parsed.params)
        except ValueError as err:
            raise _bad(uri, str(err)) from None
    try:
        host_module = importlib.import_module("libxl.binding.host")
        opener = host_module.open_real_host
    except Exception as err:  # the binding package is missing or broken: say so in one sentence
        raise BackendUnavailable(
            f"xen:///system is unavailable: the libxl binding could not be loaded ({err})") from None
    return opener(uri)


__all__ = ["ParsedURI", "parse_uri", "open_backend", "SSH_HINT"]
