"""Connection URIs, libvirt style: which host a command or the agent talks to.

``test:///default``                      a fresh simulated host in memory
``test:///ABS/PATH.json``                a simulated host persisted at PATH, shared by processes
``xen:///system`` (``xen:///``)          the real libxl on this machine
``xen+ssh://[user@]host[:port]/system``  a remote host, through the system's ``ssh`` client: the
                                         project's own CLI runs there and answers in JSON (read-only)
``test+ssh://[user@]host[:port]/PATH``   the same, against a simulated host on the remote side
``xen+unix:///system``                   the local agent itself, through its unix socket

The simulated host takes fault-injection and sizing parameters as a query string, e.g.
``test:///default?fail_rate=0.2&latency=0.01-0.05&seed=7&memory_mib=4096``. The ssh transport takes
libvirt's ``keyfile=``, ``no_verify=1`` and ``known_hosts=`` plus ``command=`` (the remote
``xenreconcile``) and ``config=`` (the remote agent's settings file); the unix transport takes
``socket=``. Anything else is refused with a sentence that names the part that is wrong, before any
host is touched. ``xen://host/`` and ``xen+tcp://`` are refused with a pointer to ssh: the project
opens no port of its own.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from libxl.errors import BackendUnavailable, ConfigError
from libxl.hosts.backend import Backend
from libxl.hosts.balloon import AutoballoonBackend

if TYPE_CHECKING:  # the settings are read by libxl.frontends.hostconf, which sits on the formats
    from libxl.frontends.hostsettings import HostSettings

SSH_HINT = "use ssh instead: xen+ssh://[user@]host/system (xenreconcile opens no network port of its own)"
#: Where the agent listens for ``xen+unix:///system`` (status and list, root only).
DEFAULT_AGENT_SOCKET = "/run/xenreconcile/agent.sock"
#: The remote program ``xen+ssh://`` runs, unless ``?command=`` names another.
DEFAULT_REMOTE_COMMAND = "xenreconcile"
#: The hidden verb of that program that answers requests (agent/cli/commands/remote.py, libxl.hosts.ssh).
REMOTE_VERB = "_remote"
_FORMS = "test:///default, test:///ABS/PATH.json, xen:///system, xen+ssh://[user@]host/system or xen+unix:///system"


@dataclass(frozen=True)
class SSHOptions:
    """How to reach a ``+ssh`` host (each field but the last two maps to an ``ssh`` option, see
    libxl.hosts.ssh) and what to run there: ``command`` is the remote ``xenreconcile``, ``config`` the
    remote agent's TOML file whose uri and policy a remote plan uses (None: its default path)."""
    host: str
    user: str | None = None
    port: int | None = None
    keyfile: str | None = None
    no_verify: bool = False
    known_hosts: str | None = None
    command: str = DEFAULT_REMOTE_COMMAND
    config: str | None = None


@dataclass(frozen=True)
class ParsedURI:
    """A checked URI.

    ``driver`` is ``test`` or ``xen``; ``transport`` is None (this machine), ``ssh`` or ``unix``.
    ``path`` None means ``test:///default``. ``params`` are the simulated host's keyword arguments.
    """
    uri: str
    driver: str
    path: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    transport: str | None = None
    ssh: SSHOptions | None = None
    #: ``xen+unix://``: the agent's socket.
    socket: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.transport is not None

    def local_uri(self) -> str:
        """The URI the remote side opens for itself: the same host seen from inside."""
        if self.driver == "xen":
            return "xen:///system"
        query = urlencode(self.test_query)
        return f"test://{self.path or '/default'}" + (f"?{query}" if query else "")

    @property
    def test_query(self) -> list[tuple[str, str]]:
        """The simulated host's parameters as they were written (kept to forward them verbatim)."""
        return [(k, v) for k, v in parse_qsl(urlsplit(self.uri.strip()).query, keep_blank_values=True)
                if k in _TEST_PARAMS]


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


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


def _absolute(text: str) -> str:
    if not text.startswith("/"):
        raise ValueError(text)
    return text


def _nonempty(text: str) -> str:
    if not text.strip():
        raise ValueError(text)
    return text


#: Query parameters of ``test:`` URIs -> (SimHost keyword, parser, what a valid value looks like).
_TEST_PARAMS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "fail_rate": ("fail_rate", _fraction, "a probability between 0 and 1"),
    "latency": ("latency", _latency, "seconds, or a range like 0.01-0.05"),
    "seed": ("seed", int, "an integer"),
    "memory_mib": ("total_memory_kib", lambda t: _positive(t) * 1024, "a positive number of MiB"),
    "dom0_memory_mib": ("dom0_memory_kib", lambda t: _positive(t) * 1024, "a positive number of MiB"),
    "cpus": ("nr_cpus", _positive, "a positive integer"),
    "shutdown_delay": ("shutdown_delay", _seconds, "a non-negative number of seconds"),
    "xen_cmdline": ("xen_cmdline", str, "the hypervisor's command line"),
    "op_log": ("op_log", _absolute, "an absolute file path (one JSON line per host change)"),
}
#: Query parameters of the ssh transport -> (SSHOptions field, parser, what a valid value looks like).
_SSH_PARAMS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "keyfile": ("keyfile", _nonempty, "a private key file"),
    "no_verify": ("no_verify", _flag, "0 or 1"),
    "known_hosts": ("known_hosts", _nonempty, "a known_hosts file"),
    "command": ("command", _nonempty, "the remote xenreconcile program"),
    "config": ("config", _absolute, "the absolute path of the remote agent's TOML file"),
}
_UNIX_PARAMS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "socket": ("socket", _absolute, "an absolute socket path"),
}


def _bad(uri: str, problem: str) -> ConfigError:
    return ConfigError(problem, element=f"URI {uri!r}")


def _query(uri: str, query: str, known: dict[str, tuple[str, Callable[[str], Any], str]]) -> dict[str, Any]:
    """Check every ``key=value`` of ``query`` against ``known``; keyword -> converted value."""
    out: dict[str, Any] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad(uri, f"malformed query {query!r} (expected key=value&...)") from None
    for key, text in pairs:
        if key not in known:
            names = ", ".join(known) or "none"
            raise _bad(uri, f"unknown parameter {key!r} (known here: {names})")
        keyword, convert, expected = known[key]
        try:
            out[keyword] = convert(text)
        except ValueError:
            raise _bad(uri, f"parameter {key}={text!r} must be {expected}") from None
    return out


def _test_path(uri: str, path: str) -> str | None:
    if path in ("/default", ""):
        return None
    if path.startswith("/") and not path.endswith("/"):
        return path
    raise _bad(uri, f"path {path!r}: expected /default or an absolute file path")


def _ssh_host(uri: str, netloc: str, parts: Any) -> tuple[str, str | None, int | None]:
    """(host, user, port) of an ssh URI; the port and host are checked here, not by ssh."""
    if not netloc:
        raise _bad(uri, "the ssh transport needs a host: xen+ssh://[user@]host[:port]/system")
    try:
        port = parts.port
    except ValueError:
        raise _bad(uri, f"port in {netloc!r} must be a number 1..65535") from None
    if port == 0:
        raise _bad(uri, "port 0 is not a port ssh can reach")
    host = parts.hostname
    if not host or host.startswith("-") or parts.password is not None:
        raise _bad(uri, f"host {netloc!r}: expected [user@]host[:port]")
    user = parts.username
    if user is not None and (not user or user.startswith("-")):
        raise _bad(uri, f"user in {netloc!r} is not a user name")
    return host, user, port


def parse_uri(uri: str) -> ParsedURI:
    """Check ``uri`` and split it; raises ConfigError naming the bad part (and nothing else: a URI
    ``urlsplit`` itself rejects, such as an unclosed ``[`` of an IPv6 host, is a ConfigError too)."""
    try:
        parts = urlsplit(uri.strip())
    except ValueError as err:
        raise _bad(uri, f"not a URI ({err}): expected {_FORMS}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise _bad(uri, f"no scheme: expected {_FORMS}")
    driver, _, transport = scheme.partition("+")
    if driver not in ("test", "xen"):
        raise _bad(uri, f"unknown driver {driver!r}: expected 'test' or 'xen'")
    if transport in ("tcp", "tls") or (not transport and parts.netloc and driver == "xen"):
        what = f"transport {transport!r}" if transport else f"host {parts.netloc!r} without a transport"
        raise _bad(uri, f"{what} is not offered; {SSH_HINT}")
    if transport not in ("", "ssh", "unix"):
        raise _bad(uri, f"unknown transport {transport!r}: expected ssh or unix")
    if parts.fragment:
        raise _bad(uri, f"unexpected fragment {parts.fragment!r}")
    if driver == "xen" and parts.path not in ("/", "/system", ""):
        raise _bad(uri, f"path {parts.path!r}: the xen driver only offers /system")
    if transport == "unix":
        if driver != "xen" or parts.netloc:
            raise _bad(uri, "the unix transport reaches this machine's agent: use xen+unix:///system")
        params = _query(uri, parts.query, _UNIX_PARAMS)
        return ParsedURI(uri=uri, driver=driver, transport="unix",
                         socket=params.get("socket", DEFAULT_AGENT_SOCKET))
    if transport == "ssh":
        host, user, port = _ssh_host(uri, parts.netloc, parts)
        path = _test_path(uri, parts.path) if driver == "test" else None
        known = {**_SSH_PARAMS, **(_TEST_PARAMS if driver == "test" else {})}
        params = _query(uri, parts.query, known)
        ssh_keys = {spec[0] for spec in _SSH_PARAMS.values()}
        options = {k: v for k, v in params.items() if k in ssh_keys}
        ssh = SSHOptions(host=host, user=user, port=port, **options)
        return ParsedURI(uri=uri, driver=driver, path=path, transport="ssh", ssh=ssh,
                         params={k: v for k, v in params.items() if k not in ssh_keys})
    if parts.netloc:
        raise _bad(uri, f"the test driver is local: drop {parts.netloc!r} "
                        "(use test:///default, test:///ABS/PATH.json or test+ssh://host/PATH)")
    if driver == "xen":
        if parts.query:
            raise _bad(uri, f"xen:///system takes no parameters (got {parts.query!r})")
        return ParsedURI(uri=uri, driver="xen")
    return ParsedURI(uri=uri, driver="test", path=_test_path(uri, parts.path),
                     params=_query(uri, parts.query, _TEST_PARAMS))


def open_backend(uri: str, *, host: HostSettings | None = None, read_only: bool = False) -> Backend:
    """The host behind a local ``uri``. The real binding is imported only when asked for.

    With ``host`` (the host's xl.conf/libxl.conf settings), creating a guest honours its
    ``autoballoon`` (libxl.hosts.balloon), for the real and the simulated host alike. Remote URIs have no
    ``Backend``: the CLI runs its verbs on the remote side (agent.cli.remote). ``read_only`` is for the
    verbs that only look (``plan``, ``list``): a simulated host file is read but never created or
    written (one that does not exist is an empty host), and no lock file is made beside it.
    """
    backend = _open(uri, read_only)
    return backend if host is None else AutoballoonBackend(backend, host.autoballoon)


def _open(uri: str, read_only: bool) -> Backend:
    parsed = parse_uri(uri)
    if parsed.is_remote:
        raise _bad(uri, f"{parsed.driver}+{parsed.transport} URIs serve read-only verbs (list, plan, "
                        "status); applying stays the host agent's job")
    if parsed.driver == "test":
        from libxl.hosts.sim import SimHost
        try:
            return SimHost(uri, path=parsed.path, read_only=read_only, **parsed.params)
        except ValueError as err:
            raise _bad(uri, str(err)) from None
    try:
        host_module = importlib.import_module("libxl.hosts.binding.host")
        opener = host_module.open_real_host
    except Exception as err:  # the binding package is missing or broken: say so in one sentence
        raise BackendUnavailable(
            f"xen:///system is unavailable: the libxl binding could not be loaded ({err})") from None
    return opener(uri)


__all__ = ["ParsedURI", "SSHOptions", "parse_uri", "open_backend", "SSH_HINT", "DEFAULT_AGENT_SOCKET",
           "DEFAULT_REMOTE_COMMAND", "REMOTE_VERB"]
