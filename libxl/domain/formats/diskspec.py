"""Disk specs: xl-disk-configuration(5) and the legacy xm ``[prefix:]path,vdev[:cdrom],mode`` form.

Both read into the model's ``Disk`` the way libvirt's Xen drivers do (``phy`` -> a block device with
driver ``phy``; ``qdisk`` or no backend -> a file with driver ``qemu``; ``tap`` -> ``tap``), so a guest
reads the same whichever format it came from. The xl parser is a small scanner over comma-separated
parameters rather than a regular expression, because ``target=`` swallows the rest of the spec,
commas included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libxl.domain.model import Disk, DiskHost

_POSITIONAL = ("target", "format", "vdev", "access")
_KEYS = {"target", "format", "vdev", "access", "devtype", "backend", "backendtype", "script",
         "discard", "specification", "colo-host", "colo-port", "colo-export", "active-disk",
         "hidden-disk"}
#: Xen 4.17's flags (``trusted``/``untrusted`` came later: 4.17 reads them as a positional target).
_FLAGS = {"cdrom": ("devtype", "cdrom"), "discard": ("discard", "unmap"),
          "no-discard": ("discard", "ignore"), "direct-io-safe": ("direct-io-safe", "1"),
          "colo": ("colo", "1")}
_FORMATS = ("raw", "qcow", "qcow2", "vhd", "qed")
_BACKENDS = ("phy", "qdisk", "tap", "standalone")
#: Deprecated target prefixes (xl-disk-configuration(5) "Deprecated syntax"): prefix -> settings.
#: ``legacy_backend`` is what libvirt reads into the driver name; xl 4.17 leaves libxl's backend
#: unset for these prefixes (it picks one itself).
_PREFIXES = {
    "phy": {"legacy_backend": "phy"},
    "file": {},
    "tap": {"legacy_backend": "tap"}, "tap2": {"legacy_backend": "tap"}, "tapdisk": {"legacy_backend": "tap"},
    "aio": {"format": "raw"}, "ioemu": {},
    "raw": {"format": "raw"}, "qcow": {"format": "qcow"}, "qcow2": {"format": "qcow2"},
    "vhd": {"format": "vhd"}, "qed": {"format": "qed"},
    # Network block devices through their hotplug script; the rest of the target is its argument.
    "nbd": {"script": "block-nbd"}, "enbd": {"script": "block-enbd"},
    "iscsi": {"script": "block-iscsi"}, "drbd": {"script": "block-drbd"},
}
#: xl backendtype <-> libvirt driver name.
_DRIVER_OF_BACKEND = {"phy": "phy", "qdisk": "qemu", "tap": "tap", "standalone": "qemu"}
_BACKEND_OF_DRIVER = {"phy": "phy", "qemu": "qdisk", "tap": "tap", "tap2": "tap", "file": "qdisk"}


@dataclass
class DiskSpec:
    """The parameters of one xl disk spec, as written (``None``: not given)."""
    target: str | None = None
    format: str | None = None
    vdev: str | None = None
    access: str | None = None
    devtype: str | None = None
    backendtype: str | None = None
    backend: str | None = None
    script: str | None = None
    discard: str | None = None
    extra: dict[str, str] | None = None
    #: The backend a deprecated prefix (``phy:``, ``tap:``) implies; ``backendtype`` is explicit only.
    legacy_backend: str | None = None


def _strip_prefixes(target: str, spec: dict[str, str]) -> tuple[str, bool]:
    """Remove ``phy:``/``tap:aio:``/... from the target, folding their meaning into ``spec``."""
    had = False
    while True:
        m = re.match(r"([a-z0-9]+):", target)
        if not m or m.group(1) not in _PREFIXES:
            return target, had
        for key, value in _PREFIXES[m.group(1)].items():
            spec.setdefault(key, value)
        target, had = target[m.end():], True


def parse_disk_spec(text: str) -> DiskSpec:
    """Parse one xl disk spec string; raises ``ValueError`` with the problem."""
    given: dict[str, str] = {}
    positional = list(_POSITIONAL)
    rest = text
    depr_prefix = False
    while rest:
        stripped = rest.lstrip(" \t")
        if stripped.startswith("target="):
            if "target" in given:
                raise ValueError("target respecified")
            given["target"] = stripped[len("target="):]
            break
        part, sep, rest = stripped.partition(",")
        part = part.strip()
        if "=" in part:
            key, _, value = part.partition("=")
            key = key.strip()
            if key not in _KEYS:
                raise ValueError(f"unknown disk parameter {key!r}")
            if key in given:
                raise ValueError(f"disk parameter {key!r} given twice")
            given[key] = value.strip()
            if key in positional:
                positional.remove(key)
        elif part in _FLAGS:
            key, value = _FLAGS[part]
            given[key] = value
        else:
            if not positional:
                raise ValueError(f"too many positional parameters at {part!r}")
            slot = positional.pop(0)
            if slot == "target":
                part, depr_prefix = _strip_prefixes(part, given) if part else ("", False)
                if depr_prefix and "format" in positional:
                    positional.remove("format")  # legacy `prefix:target,vdev,access`
                given["target"] = part
            elif slot == "format" and given.get("target") == "" and part.endswith(":cdrom"):
                slot = positional.pop(0)  # xm's empty cdrom drive `,hdc:cdrom,r`: no format slot
            if slot == "vdev" and part.endswith(":cdrom"):
                part = part[: -len(":cdrom")]
                given.setdefault("devtype", "cdrom")
            if part:
                given.setdefault(slot, part)
        if not sep:
            break
    if "target" in given:
        given["target"], _ = _strip_prefixes(given["target"], given)
    known = {f: given.pop(f, None) for f in ("target", "format", "vdev", "access", "devtype",
                                            "backendtype", "backend", "script", "discard", "legacy_backend")}
    spec = DiskSpec(**known, extra=given or None)
    if spec.format is not None and spec.format not in _FORMATS:
        raise ValueError(f"unknown disk format {spec.format!r}")
    if spec.backendtype is not None and spec.backendtype not in _BACKENDS:
        raise ValueError(f"unknown backendtype {spec.backendtype!r}")
    if spec.access is not None and spec.access not in ("r", "ro", "w", "rw", "!"):
        raise ValueError(f"unknown access {spec.access!r}")
    if spec.devtype is not None and spec.devtype not in ("cdrom", "disk"):
        raise ValueError(f"unknown devtype {spec.devtype!r}")
    if spec.vdev is None:  # after the values, as xl reports a misplaced one first
        raise ValueError("no vdev")
    return spec


def network_target(disk: Disk) -> str:
    """The qdisk target of a ``<disk type='network'>``: qemu's ``rbd:``/``nbd:`` strings, as xl
    takes them in ``target=`` and libvirt's libxl driver writes them."""
    if disk.source_protocol == "nbd":
        if len(disk.source_hosts) != 1 or not disk.source_hosts[0].port:
            raise ValueError("an nbd disk needs exactly one <host name=... port=...>")
        host = disk.source_hosts[0]
        export = f":exportname={disk.source_name}" if disk.source_name else ""
        return f"nbd:{host.name}:{host.port}{export}"
    return rbd_target(disk)


def rbd_target(disk: Disk) -> str:
    """The qdisk target of a ``<disk type='network'>`` rbd disk, as libvirt's libxl driver writes
    it: ``rbd:POOL/IMAGE:auth_supported=none[:mon_host=HOST\\:PORT\\;...]`` (qemu's syntax,
    ``:`` and ``;`` inside a value escaped with a backslash)."""
    if disk.source_protocol != "rbd":
        raise ValueError(f"network disk protocol {disk.source_protocol!r} has no xl form (rbd or nbd)")
    hosts = [h.name + (f"\\:{h.port}" if h.port else "") for h in disk.source_hosts]
    return f"rbd:{disk.source_name or ''}:auth_supported=none" + (
        ":mon_host=" + "\\;".join(hosts) if hosts else "")


def _split_escaped(text: str, sep: str) -> list[str]:
    """``text`` split at each ``sep`` not escaped by a backslash (escapes kept)."""
    parts, cur, chars = [], [], iter(text)
    for ch in chars:
        if ch == "\\":
            cur.append(ch + next(chars, ""))
        elif ch == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    return parts + ["".join(cur)]


def _rbd_disk(target: str, disk: Disk) -> Disk:
    """An ``rbd:`` qdisk target as libvirt's network disk; options with no domain XML place
    (``id``, ``key``, ``conf``, cephx auth) are refused rather than dropped."""
    name, *opts = _split_escaped(target.removeprefix("rbd:"), ":")
    disk.type, disk.source, disk.source_protocol = "network", None, "rbd"
    disk.source_name = re.sub(r"\\(.)", r"\1", name)
    for opt in opts:
        key, _, value = opt.partition("=")
        if key == "mon_host":
            for host in value.split("\\;"):  # qemu's escaped separators: host\:port\;host
                hname, _, port = host.partition("\\:")
                disk.source_hosts.append(DiskHost(name=hname, port=port or None))
        elif not (key == "auth_supported" and value == "none"):
            raise ValueError(f"rbd option {opt!r} is not supported (only mon_host and auth_supported=none)")
    return disk


def disk_from_spec(spec: DiskSpec) -> Disk:
    driver = _DRIVER_OF_BACKEND.get(spec.backendtype or spec.legacy_backend or "qdisk", "qemu")
    cdrom = spec.devtype == "cdrom"
    # xl reads a ``nbd:`` prefix as the block-nbd hotplug script (``_PREFIXES``): only rbd targets
    # reach here as qemu strings.
    if (spec.target or "").startswith("rbd:") and driver == "qemu":
        return _rbd_disk(spec.target or "", Disk(device="cdrom" if cdrom else "disk", driver_name=driver,
                                           driver_type=spec.format or "raw", target_dev=spec.vdev or "",
                                           readonly=cdrom or spec.access in ("r", "ro"),
                                           shareable=spec.access == "!", script=spec.script,
                                           discard=spec.discard, backend_domain=spec.backend))
    return Disk(
        type="block" if driver == "phy" else "file",
        device="cdrom" if cdrom else "disk",
        driver_name=driver,
        driver_type=spec.format or "raw",
        source=spec.target or None,
        target_dev=spec.vdev or "",
        readonly=cdrom or spec.access in ("r", "ro"),
        shareable=spec.access == "!",
        script=spec.script,
        discard=spec.discard,
        backend_domain=spec.backend,
    )


def spec_from_disk(disk: Disk) -> DiskSpec:
    if disk.type == "network" and disk.source_protocol == "nbd":
        raise ValueError("an nbd network disk has no xl form: xl reads target=nbd:... as the block-nbd "
                         "hotplug script's argument, not as qemu's nbd: string")
    if disk.type == "network":
        spec = spec_from_disk(Disk(type="file", device=disk.device, driver_name="qemu",
                                   driver_type=disk.driver_type, source=network_target(disk),
                                   target_dev=disk.target_dev, readonly=disk.readonly,
                                   shareable=disk.shareable, script=disk.script, discard=disk.discard,
                                   backend_domain=disk.backend_domain))
        return spec
    if disk.type not in ("file", "block"):
        raise ValueError(f"disk type {disk.type!r} has no xl form")
    backend = _BACKEND_OF_DRIVER.get(disk.driver_name or "")
    if backend is None and disk.driver_name is None:
        backend = "phy" if disk.type == "block" else "qdisk"
    return DiskSpec(
        target=disk.source, format=disk.driver_type or "raw", vdev=disk.target_dev,
        access="ro" if disk.readonly else ("!" if disk.shareable else "rw"),
        devtype="cdrom" if disk.is_cdrom else None, backendtype=backend,
        backend=disk.backend_domain, script=disk.script, discard=disk.discard)


def format_disk_spec(spec: DiskSpec) -> str:
    """Key=value form, ``target=`` last (it may hold commas)."""
    parts = [f"format={spec.format}", f"vdev={spec.vdev}", f"access={spec.access}"]
    for key in ("backendtype", "backend", "devtype", "script"):
        value = getattr(spec, key)
        if value is not None:
            parts.append(f"{key}={value}")
    if spec.discard is not None:
        parts.append("discard" if spec.discard == "unmap" else "no-discard")
    if spec.target:
        parts.append(f"target={spec.target}")
    return ",".join(parts)


def parse_xl_disk(text: str) -> Disk:
    return disk_from_spec(parse_disk_spec(text))


def format_xl_disk(disk: Disk) -> str:
    return format_disk_spec(spec_from_disk(disk))


# ---- legacy xm: "[driver[:type]:]path,vdev[:cdrom|:disk],mode" ------------------------------

_XM_TAP = ("tap", "tap2", "tapdisk")


def parse_xm_disk(text: str) -> Disk:
    """Read an xm disk; the driver is the prefix (``phy`` when there is none), as xend did."""
    src, sep, rest = text.partition(",")
    if not sep:
        raise ValueError("expected 'source,vdev,mode'")
    vdev, _, mode = rest.partition(",")
    src, vdev, mode = src.strip(), vdev.strip(), mode.strip()
    driver, dtype = "phy", "raw"
    m = re.match(r"([a-z0-9]+):", src)
    if m and "/" not in m.group(1):
        driver, src = m.group(1), src[m.end():]
        if driver in _XM_TAP:
            sub = re.match(r"(?:tapdisk:)?([a-z0-9]+):", src)
            if sub:
                dtype = "raw" if sub.group(1) == "aio" else sub.group(1)
                src = src[sub.end():]
            driver = "tap2" if driver == "tap2" else "tap"
    if vdev.startswith("ioemu:"):
        vdev = vdev[len("ioemu:"):]
    device = "disk"
    if vdev.endswith(":cdrom") or vdev.endswith(":disk"):
        vdev, _, device = vdev.rpartition(":")
    if not vdev:
        raise ValueError("no target device")
    if mode not in ("", "r", "ro", "w", "rw", "w!"):
        raise ValueError(f"unknown disk mode {mode!r}")
    return Disk(type="block" if driver == "phy" else "file", device=device, driver_name=driver,
                driver_type=dtype, source=src or None, target_dev=vdev,
                readonly=mode in ("r", "ro") or device == "cdrom" and mode == "",
                shareable=mode == "w!")


def format_xm_disk(disk: Disk) -> str:
    src = ""
    if disk.source:
        driver = disk.driver_name or ("phy" if disk.type == "block" else "file")
        if driver in ("tap", "tap2"):
            kind = disk.driver_type or "raw"
            prefix = f"{driver}:{'aio' if kind == 'raw' else kind}:"
        elif driver == "qemu":
            prefix = "phy:" if disk.type == "block" else "file:"
        else:
            prefix = f"{driver}:"
        src = prefix + disk.source
    vdev = disk.target_dev + (":cdrom" if disk.is_cdrom else "")
    mode = "r" if disk.readonly else ("w!" if disk.shareable else "w")
    return f"{src},{vdev},{mode}"
