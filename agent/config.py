"""The agent's settings: one flat TOML file (``etc/xenreconcile.toml``) plus CLI overrides.

Every setting has a default and a checker here, in one table, so the sample file, the ``run`` flags
and the validation cannot drift apart. A bad file is refused as a whole with one message naming the
offending key (the caller exits 2): starting half-configured is worse than not starting, because the
agent would act on a host with settings nobody asked for (e.g. prune on).
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from libxl.frontends.hostsettings import AUTOBALLOON_MODES, DEFAULT_LIBXL_CONF, DEFAULT_XL_CONF, HostSettings
from libxl.hosts.uri import DEFAULT_AGENT_SOCKET
from reconcilers.policy import PRUNE_POLICIES, RESTART_POLICIES, Policy
from reconcilers.securitypolicy import DEFAULT_SECURITY, SecurityPolicy

#: The reconciler's defaults, which the settings of the same names start from.
DEFAULT_POLICY = Policy()

#: Where ``run`` looks when ``--config`` is not given (absent file: defaults only).
DEFAULT_CONFIG_PATH = Path("/etc/xenreconcile/xenreconcile.toml")
#: The fixed metrics port, chosen to sit away from the node exporter family (9100..9199).
DEFAULT_METRICS_PORT = 9977

#: ``on_host_shutdown``: libvirt-guests' ON_SHUTDOWN (shutdown | suspend) plus ``leave``.
HOST_SHUTDOWN_ACTIONS = ("shutdown", "save", "leave")
LOG_FORMATS = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


class AgentConfigError(Exception):
    """The agent's own configuration is unusable; ``key`` names the setting at fault."""

    def __init__(self, key: str, problem: str, *, source: str | None = None) -> None:
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True)
class AgentConfig:
    """Resolved settings; field names are the TOML keys (and ``--flag-names`` with dashes)."""
    uri: str = "xen:///system"
    desired_dir: str = "/etc/xenreconcile/desired"
    state_dir: str = "/var/lib/xenreconcile"
    metrics_listen: str = f"127.0.0.1:{DEFAULT_METRICS_PORT}"
    resync_interval: float = 60.0
    resync_jitter: float = 0.1
    debounce: float = 0.05
    workers: int = 4
    backoff_base: float = 0.005
    backoff_cap: float = 60.0
    rate_limit: float = 10.0
    rate_burst: int = 100
    # How far the reconciler may go (reconcilers.policy.Policy holds the defaults).
    prune: str = DEFAULT_POLICY.prune
    restart: str = DEFAULT_POLICY.restart
    allow_empty: bool = DEFAULT_POLICY.allow_empty
    adopt: bool = DEFAULT_POLICY.adopt
    shutdown_timeout: float = DEFAULT_POLICY.shutdown_timeout
    owner: str = DEFAULT_POLICY.owner
    dump_dir: str = DEFAULT_POLICY.dump_dir
    # Host lifecycle (agent.lifecycle; README "Host lifecycle"): what `host-shutdown` does to the
    # owned guests when the host goes down, and where saved images live.
    on_host_shutdown: str = "shutdown"
    host_shutdown_parallel: int = 0
    host_shutdown_timeout: float = 300.0
    save_dir: str = "/var/lib/xen/save"
    display_port_min: int = DEFAULT_POLICY.display_port_min
    display_port_max: int = DEFAULT_POLICY.display_port_max
    polling: bool = False
    poll_interval: float = 2.0
    log_format: str = "auto"
    log_level: str = "info"
    # What desired files may ask for (reconcilers.security; README "Security").
    strict_modes: bool = DEFAULT_SECURITY.strict_modes
    allowed_bootloaders: tuple[str, ...] = DEFAULT_SECURITY.allowed_bootloaders
    allow_device_model_args: bool = DEFAULT_SECURITY.allow_device_model_args
    allow_pci_passthrough: bool = DEFAULT_SECURITY.allow_pci_passthrough
    allow_usb_passthrough: bool = DEFAULT_SECURITY.allow_usb_passthrough
    hotplug_script_dirs: tuple[str, ...] = DEFAULT_SECURITY.hotplug_script_dirs
    allowed_device_models: tuple[str, ...] = DEFAULT_SECURITY.allowed_device_models
    allowed_chardev_dirs: tuple[str, ...] = DEFAULT_SECURITY.allowed_chardev_dirs
    allowed_chardev_devices: tuple[str, ...] = DEFAULT_SECURITY.allowed_chardev_devices
    allow_dom0_sockets: bool = DEFAULT_SECURITY.allow_dom0_sockets
    allowed_9p_dirs: tuple[str, ...] = DEFAULT_SECURITY.allowed_9p_dirs
    allow_vtpm: bool = DEFAULT_SECURITY.allow_vtpm
    allow_raw_hardware: bool = DEFAULT_SECURITY.allow_raw_hardware
    allowed_firmware_dirs: tuple[str, ...] = DEFAULT_SECURITY.allowed_firmware_dirs
    allow_open_display: bool = DEFAULT_SECURITY.allow_open_display
    allowed_rbd_options: tuple[str, ...] = DEFAULT_SECURITY.allowed_rbd_options
    require_dm_restrict: bool = DEFAULT_SECURITY.require_dm_restrict
    # Host defaults as xl applies them (libxl.frontends.hostconf; README "Remote hosts and host settings").
    xl_conf: str = DEFAULT_XL_CONF
    libxl_conf: str = DEFAULT_LIBXL_CONF
    autoballoon: str = ""
    nested_hvm: str = ""
    #: The root-only socket ``xen+unix:///system`` reaches ("" for none).
    socket_path: str = DEFAULT_AGENT_SOCKET

    @property
    def metrics_address(self) -> tuple[str, int]:
        """``metrics_listen`` split into host and port (validated on load)."""
        return parse_listen(self.metrics_listen)

    def policy(self) -> Policy:
        """The reconciler's policy from the settings that belong to it."""
        return Policy(**{k: getattr(self, k) for k in Policy.__dataclass_fields__})

    def host_settings(self) -> HostSettings:
        """xl.conf and libxl.conf as the files say, under the overrides of this file; raises
        ConfigError (file, line, key) for a malformed host file. The reader is imported here: it sits on
        the xl.cfg parser and the domain model, which a verb that reads no host file (host-shutdown) never
        loads."""
        from libxl.frontends.hostconf import load_host_settings

        nested = {"on": True, "off": False}.get(self.nested_hvm)
        return load_host_settings(self.xl_conf, self.libxl_conf,
                                  {"autoballoon": self.autoballoon, "nested_hvm": nested})

    def security(self) -> SecurityPolicy:
        """The desired-file security policy from the settings of the same names."""
        return SecurityPolicy(**{k: getattr(self, k) for k in SecurityPolicy.__dataclass_fields__})


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
#: A host name or an IPv4 address (dot-separated labels); IPv6 only in brackets.
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); raises ValueError with the reason.

    Strict, so a typo is refused rather than bound somewhere else (``[::1:80`` used to bind ::1 port
    80): an IPv6 address only inside brackets and valid there, an IPv4 address or a host name
    outside them, the port decimal 0..65535."""
    bracketed = re.fullmatch(r"\[([^\[\]]*)\]:([^:]*)", text)
    if bracketed:
        host, port = bracketed.groups()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {text!r} is not an IPv6 address") from None
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"expected HOST:PORT or [IPV6]:PORT, got {text!r}")
        if ":" in host or "[" in host or "]" in host:
            raise ValueError(f"expected HOST:PORT or [IPV6]:PORT (IPv6 goes in brackets), got {text!r}")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{host!r} in {text!r} is not a host name or IPv4 address")
    if not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise ValueError(f"port must be 0..65535, got {port!r}")
    return host, int(port)


def _nonempty_str(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    return None


def _number(minimum: float, *, above: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be a number"
        if not math.isfinite(value):  # TOML has nan and inf; nan passes every comparison below
            return "must be a finite number"
        if value < minimum or (above and value == minimum):
            return f"must be {'>' if above else '>='} {minimum:g}"
        return None
    return check


def _integer(minimum: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer"
        if value < minimum:
            return f"must be >= {minimum}"
        return None
    return check


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _choice(options: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in options else f"must be one of {', '.join(options)} (got {value!r})"
    return check


def _listen(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string HOST:PORT"
    try:
        parse_listen(value)
    except ValueError as err:
        return str(err)
    return None


def _absolute_paths(value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v[:1] == "/" for v in value):
        return "must be a list of absolute paths"
    return None


def _names(value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and re.fullmatch(r"[a-z0-9_-]+", v)
                                                      for v in value):
        return "must be a list of option names (lower case letters, digits, _ and -)"
    return None


def _absolute_path(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("/"):
        return "must be an absolute path"
    return None


def _optional_path(value: Any) -> str | None:
    """An absolute path, or "" for "none"."""
    if not isinstance(value, str) or (value and not value.startswith("/")):
        return 'must be an absolute path, or "" for none'
    return None


def _port(value: Any) -> str | None:
    problem = _integer(1)(value)
    if problem is None and value > 65535:
        return "must be <= 65535"
    return problem


def _fraction(value: Any) -> str | None:
    problem = _number(0.0)(value)
    if problem is None and value >= 1:
        return "must be below 1 (a fraction of resync_interval)"
    return problem


#: key -> checker returning the problem, or None when the value is acceptable.
CHECKS: dict[str, Callable[[Any], str | None]] = {
    "uri": _nonempty_str,
    "desired_dir": _nonempty_str,
    "state_dir": _nonempty_str,
    "metrics_listen": _listen,
    "resync_interval": _number(0.0, above=True),
    "resync_jitter": _fraction,
    "debounce": _number(0.0),
    "workers": _integer(1),
    "backoff_base": _number(0.0, above=True),
    "backoff_cap": _number(0.0, above=True),
    "rate_limit": _number(0.0, above=True),
    "rate_burst": _integer(1),
    "prune": _choice(PRUNE_POLICIES),
    "restart": _choice(RESTART_POLICIES),
    "allow_empty": _boolean,
    "adopt": _boolean,
    "shutdown_timeout": _number(0.0),
    "owner": _nonempty_str,
    "dump_dir": _absolute_path,
    "on_host_shutdown": _choice(HOST_SHUTDOWN_ACTIONS),
    "host_shutdown_parallel": _integer(0),
    "host_shutdown_timeout": _number(0.0),
    "save_dir": _absolute_path,
    "display_port_min": _port,
    "display_port_max": _port,
    "polling": _boolean,
    "poll_interval": _number(0.0, above=True),
    "log_format": _choice(LOG_FORMATS),
    "log_level": _choice(LOG_LEVELS),
    "strict_modes": _boolean,
    "allowed_bootloaders": _absolute_paths,
    "allow_device_model_args": _boolean,
    "allow_pci_passthrough": _boolean,
    "allow_usb_passthrough": _boolean,
    "hotplug_script_dirs": _absolute_paths,
    "allowed_device_models": _absolute_paths,
    "allowed_chardev_dirs": _absolute_paths,
    "allowed_chardev_devices": _absolute_paths,
    "allow_dom0_sockets": _boolean,
    "allowed_9p_dirs": _absolute_paths,
    "allow_vtpm": _boolean,
    "allow_raw_hardware": _boolean,
    "allowed_firmware_dirs": _absolute_paths,
    "allow_open_display": _boolean,
    "allowed_rbd_options": _names,
    "require_dm_restrict": _boolean,
    "xl_conf": _optional_path,
    "libxl_conf": _optional_path,
    "autoballoon": _choice(("", *AUTOBALLOON_MODES)),
    "nested_hvm": _choice(("", "on", "off")),
    "socket_path": _optional_path,
}


def _coerce(key: str, value: Any) -> Any:
    """Integers are fine where floats are expected (``debounce = 1``); TOML arrays become tuples."""
    default = getattr(AgentConfig, key)
    if isinstance(default, tuple):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def apply_settings(base: AgentConfig, settings: dict[str, Any], *, source: str | None = None) -> AgentConfig:
    """Validate ``settings`` (TOML keys) and lay them over ``base``; the first bad key raises."""
    for key, value in settings.items():
        if key not in CHECKS:
            raise AgentConfigError(key, "unknown setting", source=source)
        problem = CHECKS[key](value)
        if problem:
            raise AgentConfigError(key, problem, source=source)
    merged = replace(base, **{k: _coerce(k, v) for k, v in settings.items()})
    if merged.backoff_cap < merged.backoff_base:
        raise AgentConfigError("backoff_cap", "must be >= backoff_base", source=source)
    if merged.display_port_max < merged.display_port_min:
        raise AgentConfigError("display_port_max", "must be >= display_port_min", source=source)
    return merged


def load_config(path: Path | None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Defaults <- the TOML file (when ``path`` exists or was asked for) <- CLI ``overrides``.

    ``path=None`` means "the default location if present", so a bare ``run`` works without a file;
    an explicitly named file that is missing is an error.
    """
    config = AgentConfig()
    target = path if path is not None else DEFAULT_CONFIG_PATH
    if path is not None or target.exists():
        try:
            data = tomllib.loads(target.read_text(encoding="utf-8"))
        except OSError as err:
            raise AgentConfigError("--config", f"cannot read {target}: {err.strerror}") from err
        except UnicodeDecodeError as err:
            raise AgentConfigError("--config", f"{target}: not UTF-8 text (byte {err.start})") from err
        except tomllib.TOMLDecodeError as err:
            raise AgentConfigError("--config", f"{target}: not valid TOML: {err}") from err
        for key, value in data.items():
            if isinstance(value, dict):
                raise AgentConfigError(key, "tables are not used; settings are top-level keys",
                                       source=str(target))
        config = apply_settings(config, data, source=str(target))
    if overrides:
        config = apply_settings(config, {k: v for k, v in overrides.items() if v is not None},
                                source="command line")
    return config
