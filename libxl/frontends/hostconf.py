"""Host-wide defaults, as xl applies them: ``/etc/xen/xl.conf`` and libvirt's ``libxl.conf``.

``xl create F`` does not hand libxl the file alone: it first lays the host's xl.conf(5) defaults
under every guest (the default bridge, vif script and backend domain of each vif, the temporary
block device name, claim mode, grant table sizes) and balloons dom0 when memory is short. The agent
must do the same, or one file would give two different guests depending on who started it. Hosts
managed by libvirt before keep their ``autoballoon`` and ``nested_hvm`` in libvirt's libxl.conf;
those are honoured too. Precedence, lowest first: built-in defaults, xl.conf, libxl.conf, the
agent's own settings (``overrides``). Both files use the xl.cfg syntax (libxl.domain.formats.xlcfg); keys
this module does not know are ignored, as xl and libvirt ignore them.

``apply_host_settings`` is pure: it returns a new libxl config with the defaults filled in where
the guest's own file left a value unset, which is exactly when xl's defaults apply. The settings'
shape and the files' default paths are ``libxl.frontends.hostsettings``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from libxl.domain.formats.readfile import Missing, read_regular
from libxl.domain.formats.xlcfg import Value, config_text, parse_cfg
from libxl.domain.model import Domain
from libxl.errors import ConfigError
from libxl.frontends.hostsettings import AUTOBALLOON_MODES, DEFAULT_LIBXL_CONF, DEFAULT_XL_CONF, HostSettings
from libxl.frontends.libvirt import nested_hvm_for

#: xl.conf's and libxl.conf's read limit: these are small files; anything larger is not one.
_MAX_BYTES = 1 << 20


def _string(value: Value) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _count(value: Value) -> int:
    if not isinstance(value, int) or value < 0:
        raise ValueError("must be a non-negative integer")
    return value


def _boolean(value: Value) -> bool:
    if value not in (0, 1):
        raise ValueError("must be 0 or 1")
    return bool(value)


def _autoballoon(value: Value) -> str:
    """xl.conf takes "on"/"off"/"auto" and, from older releases, 1/0."""
    if value in (0, 1):
        return "on" if value else "off"
    if value not in AUTOBALLOON_MODES:
        raise ValueError('must be "auto", "on" or "off"')
    return str(value)


#: xl.conf(5) key -> (HostSettings field, converter).
XL_CONF_KEYS: dict[str, tuple[str, Callable[[Value], Any]]] = {
    "vif.default.bridge": ("vif_bridge", _string),
    "vif.default.script": ("vif_script", _string),
    "vif.default.backend": ("vif_backend", _string),
    "vif.default.gatewaydev": ("vif_gatewaydev", _string),
    "blkdev_start": ("blkdev_start", _string),
    "claim_mode": ("claim_mode", _boolean),
    "max_grant_frames": ("max_grant_frames", _count),
    "max_maptrack_frames": ("max_maptrack_frames", _count),
    "autoballoon": ("autoballoon", _autoballoon),
    "run_hotplug_scripts": ("run_hotplug_scripts", _boolean),
    # xl's deprecated spellings; the vif.default.* keys win over them wherever they stand.
    "defaultbridge": ("vif_bridge", _string),
    "vifscript": ("vif_script", _string),
}
_DEPRECATED_ALIASES = ("defaultbridge", "vifscript")
#: libvirt's libxl.conf keys that change what a guest becomes here.
LIBXL_CONF_KEYS: dict[str, tuple[str, Callable[[Value], Any]]] = {
    "autoballoon": ("autoballoon", lambda v: "on" if _boolean(v) else "off"),
    "nested_hvm": ("nested_hvm", _boolean),
}


def read_conf(path: str | Path, keys: dict[str, tuple[str, Callable[[Value], Any]]]) -> dict[str, Any]:
    """The known settings of one file as HostSettings fields; a missing file says nothing.

    A present but unreadable or malformed file raises ConfigError with its file and line: silently
    dropping it would give guests a different network than ``xl create`` does.
    """
    path = Path(path)
    try:  # a regular file only, at most the limit read (readfile): a FIFO here would wedge the agent
        data = read_regular(str(path), _MAX_BYTES)
    except Missing as err:
        if err.dangling:
            raise
        return {}
    out: dict[str, Any] = {}
    settings = parse_cfg(config_text(data, str(path), _MAX_BYTES), file=str(path))
    for key, setting in sorted(settings.items(), key=lambda item: item[0] not in _DEPRECATED_ALIASES):
        if key not in keys:
            continue
        name, convert = keys[key]
        try:
            out[name] = convert(setting.value)
        except ValueError as err:
            raise ConfigError(f"{err} (got {setting.value!r})", file=str(path), line=setting.line,
                              element=key) from None
    return out


def load_host_settings(xl_conf: str | Path | None = DEFAULT_XL_CONF,
                       libxl_conf: str | Path | None = DEFAULT_LIBXL_CONF,
                       overrides: dict[str, Any] | None = None) -> HostSettings:
    """xl.conf, then libxl.conf, then ``overrides`` (HostSettings fields; None/"" mean "not set")."""
    merged: dict[str, Any] = {}
    if xl_conf:
        merged.update(read_conf(xl_conf, XL_CONF_KEYS))
    if libxl_conf:
        merged.update(read_conf(libxl_conf, LIBXL_CONF_KEYS))
    names = {f.name for f in fields(HostSettings)}
    for key, value in (overrides or {}).items():
        if key not in names:
            raise ValueError(f"unknown host setting {key!r}")
        if value is not None and value != "":
            merged[key] = value
    settings = replace(HostSettings(), **merged)
    if settings.autoballoon not in AUTOBALLOON_MODES:
        raise ValueError(f"autoballoon must be one of {', '.join(AUTOBALLOON_MODES)}")
    return settings


def with_host_cpus(settings: HostSettings, nr_cpus: Callable[[], int]) -> HostSettings:
    """``settings`` with the host's cpu count (what xl cuts cpu lists to), asked of the backend;
    unchanged when the host cannot say (the xl front end then warns where the count matters)."""
    if settings.cpus is not None:
        return settings
    try:
        return replace(settings, cpus=nr_cpus())
    except Exception:  # noqa: BLE001 - any backend failure leaves the count unknown, which is safe
        return settings


def apply_host_settings(domain: Domain, config: dict[str, Any], host: HostSettings) -> dict[str, Any]:
    """A copy of ``config`` (built from ``domain``) with the host's defaults where it left gaps."""
    out = copy.deepcopy(config)
    for nic in out.get("nics", []):
        for key, value in (("bridge", host.vif_bridge), ("script", host.vif_script),
                           ("backend_domname", host.vif_backend), ("gatewaydev", host.vif_gatewaydev)):
            if value and not nic.get(key):
                nic[key] = value
    b_info = out.setdefault("b_info", {})
    for key, value in (("blkdev_start", host.blkdev_start), ("max_grant_frames", host.max_grant_frames),
                       ("max_maptrack_frames", host.max_maptrack_frames)):
        if value is not None and key not in b_info:
            b_info[key] = value
    if host.claim_mode is not None and "claim_mode" not in b_info:
        b_info["claim_mode"] = "True" if host.claim_mode else "False"
    if host.nested_hvm is not None:
        nested = nested_hvm_for(domain.cpu, host.nested_hvm)
        if nested is not None:
            b_info["nested_hvm"] = "True" if nested else "False"
    return out


__all__ = ["read_conf", "load_host_settings", "apply_host_settings", "with_host_cpus", "XL_CONF_KEYS",
           "LIBXL_CONF_KEYS"]
