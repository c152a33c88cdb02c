"""What libxl does with a domain config before it makes a domain: what it refuses, and how it holds
what it takes.

``libxl_domain_config_from_json`` skips integer fields of the wrong JSON type (``as_parsed``);
``libxl__domain_config_setdefault`` and the create path refuse bad shapes, enums, uuids, macs,
sizes and inconsistent variants (``validate_config``, ``validate_disk``, ``validate_nic``,
``check_sched``, ``check_cpumap``); a made domain's config has its enums lowered, its uuid
canonical and libxl's defaults filled in (``as_made``). Every refusal is a ``BackendError`` with
libxl-like text (``fail``). Checked against the real libxl in tests/test_backend_contract.py, so a
refusal the simulator invents fails a test.
"""

from __future__ import annotations

import copy
import re
import uuid as _uuid
from typing import Any

from libxl.errors import BackendError
from libxl.hosts.backend import LibxlConfig
from libxl.hosts.sim.state import clone

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}")
_MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
#: libxl's nil uuid: what a domain made from a config without a uuid carries.
NIL_UUID = "00000000-0000-0000-0000-000000000000"
_DOMAIN_TYPES = ("pv", "pvh", "hvm")
_ENUMS = {
    "backend": ("unknown", "phy", "tap", "qdisk", "standalone"),
    "format": ("unknown", "qcow", "qcow2", "vhd", "raw", "empty", "qed"),
    "nictype": ("unknown", "vif_ioemu", "vif"),
    "action": ("destroy", "restart", "restart_rename", "preserve", "coredump_destroy",
               "coredump_restart", "soft_reset"),
    "tsc_mode": ("default", "always_emulate", "native", "native_paravirt"),
    "vga": ("unknown", "none", "std", "cirrus", "qxl"),
    "bios": ("unknown", "rombios", "seabios", "ovmf"),
}
#: Where the enum-valued fields the sim checks sit (libxl's parser lowers their case).
_ENUM_KEYS = frozenset({"backend", "format", "nictype", "tsc_mode", "bios", "kind", "on_poweroff",
                        "on_reboot", "on_crash", "on_watchdog", "on_soft_reset"})
#: The integer fields of b_info the sim reads. libxl's JSON parser ignores a value of another JSON
#: type (``"max_vcpus": "2"``) as if the key were absent; a negative one it refuses.
_SIZE_KEYS = ("max_memkb", "target_memkb", "video_memkb", "shadow_memkb", "max_vcpus", "event_channels",
              "max_grant_frames")
_NIC_SIZE_KEYS = ("rate_bytes_per_interval", "rate_interval_usecs")
#: libxl's b_info.max_memkb when a config has none (libxl__domain_build_info_setdefault).
DEFAULT_MAX_MEMKB = 32 * 1024
#: libxl's vcpu limits per guest type (HVM_MAX_VCPUS for hvm/pvh).
_MAX_VCPUS = {"pv": 512, "pvh": 128, "hvm": 128}


def fail(op: str, message: str, name: str | None = None, *, transient: bool = False) -> BackendError:
    return BackendError(op, f"libxl: error: {message}", domain=name, transient=transient)


def _check_size(op: str, where: str, value: Any) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise fail(op, f"{where}: invalid value {value!r} (must be a non-negative integer)")


def check_enum(op: str, where: str, value: Any, kind: str) -> None:
    if value is not None and (not isinstance(value, str) or value.lower() not in _ENUMS[kind]):
        raise fail(op, f"{where}: invalid {kind} {value!r}")


def validate_disk(op: str, disk: Any) -> None:
    if not isinstance(disk, dict) or not disk.get("vdev"):
        raise fail(op, "disk: vdev is required")
    where = f"disk {disk['vdev']}"
    check_enum(op, f"{where} backend", disk.get("backend"), "backend")
    check_enum(op, f"{where} format", disk.get("format"), "format")
    empty = str(disk.get("format", "")).lower() == "empty"
    if empty and not disk.get("is_cdrom"):
        raise fail(op, f"{where}: only a cdrom may be empty")
    if not disk.get("pdev_path") and not empty and not disk.get("is_cdrom"):
        raise fail(op, f"{where}: pdev_path is required")


def validate_nic(op: str, nic: Any) -> None:
    if not isinstance(nic, dict):
        raise fail(op, "nic: not an object")
    mac = nic.get("mac")
    if mac is not None and (not isinstance(mac, str) or not _MAC_RE.fullmatch(mac)):
        raise fail(op, f"nic: invalid mac address {mac!r}")
    check_enum(op, "nic nictype", nic.get("nictype"), "nictype")
    for key in _NIC_SIZE_KEYS:
        _check_size(op, f"nic {key}", nic.get(key))


def _drop_mistyped(obj: Any, keys: tuple[str, ...]) -> None:
    if isinstance(obj, dict):
        for key in keys:
            if key in obj and (not isinstance(obj[key], int) or isinstance(obj[key], bool)):
                del obj[key]


def as_parsed(config: Any) -> Any:
    """A copy of ``config`` as ``libxl_domain_config_from_json`` reads the integer fields the sim
    uses: one of another JSON type is gone, as libxl's parser skips it (checked against the real
    libxl in tests/test_backend_contract.py)."""
    if not isinstance(config, dict):
        return config
    config = clone(config)
    _drop_mistyped(config.get("b_info"), _SIZE_KEYS)
    for nic in config.get("nics") or []:
        _drop_mistyped(nic, _NIC_SIZE_KEYS)
    return config


def validate_config(op: str, config: Any) -> None:
    """Refuse what libxl refuses: bad shapes, enums, uuids, macs, sizes, and inconsistent variants."""
    if not isinstance(config, dict):
        raise fail(op, "domain config is not a JSON object")
    c_info, b_info = config.get("c_info"), config.get("b_info")
    if not isinstance(c_info, dict) or not isinstance(b_info, dict):
        raise fail(op, "domain config needs c_info and b_info objects")
    name = c_info.get("name")
    if not isinstance(name, str) or not name:
        raise fail(op, "c_info.name is required")
    kind = c_info.get("type")
    if not isinstance(kind, str) or kind.lower() not in _DOMAIN_TYPES:
        raise fail(op, f"c_info.type: invalid domain type {kind!r}", name)
    kind = kind.lower()
    uuid = c_info.get("uuid")
    if uuid is not None and (not isinstance(uuid, str) or not _UUID_RE.fullmatch(uuid)):
        raise fail(op, f"c_info.uuid: invalid uuid {uuid!r}", name)
    variants = [k for k in b_info if k.startswith("type.")]
    if len(variants) > 1:
        raise fail(op, f"b_info has several type variants {variants}", name)
    if variants and variants[0] != f"type.{kind}":
        raise fail(op, f"b_info.{variants[0]} does not match c_info.type {kind!r}", name)
    poolid = c_info.get("poolid", 0)
    if poolid != 0:  # the simulated host has Pool-0 only
        raise fail(op, f"Illegal pool specified: cpupool {poolid!r} does not exist (ERROR_INVAL)", name)
    for key in _SIZE_KEYS:
        _check_size(op, f"b_info.{key}", b_info.get(key))
    max_vcpus = b_info.get("max_vcpus") or 1  # 0 is libxl's "default": one
    if not 1 <= max_vcpus <= _MAX_VCPUS[kind]:
        raise fail(op, f"b_info.max_vcpus {max_vcpus} not within 1..{_MAX_VCPUS[kind]} for {kind}", name)
    avail = b_info.get("avail_vcpus", list(range(max_vcpus)))
    if not isinstance(avail, list) or any(not isinstance(c, int) or not 0 <= c < max_vcpus for c in avail):
        raise fail(op, f"b_info.avail_vcpus {avail!r} beyond max_vcpus {max_vcpus}", name)
    max_memkb = b_info.get("max_memkb", DEFAULT_MAX_MEMKB)
    if not max_memkb:
        raise fail(op, "b_info.max_memkb must not be 0", name)
    if b_info.get("target_memkb", max_memkb) > max_memkb:
        raise fail(op, "b_info.target_memkb exceeds max_memkb", name)
    check_enum(op, "b_info.tsc_mode", b_info.get("tsc_mode"), "tsc_mode")
    if isinstance(b_info.get("sched_params"), dict):
        check_sched(op, b_info["sched_params"], max_vcpus, name)
    variant = b_info.get(f"type.{kind}", {})
    if not isinstance(variant, dict):
        raise fail(op, f"b_info.type.{kind} is not an object", name)
    # libxl 4.17 takes the bootloader in b_info (xl puts it there) or, as before, in type.pv.
    if kind == "pv" and not (b_info.get("kernel") or b_info.get("bootloader") or variant.get("bootloader")):
        raise fail(op, "PV guest needs a kernel or a bootloader", name)
    if kind == "pvh" and not b_info.get("kernel"):
        raise fail(op, "PVH guest needs a kernel", name)
    if kind == "hvm":
        if not b_info.get("kernel") and (b_info.get("cmdline") or b_info.get("ramdisk")):
            raise fail(op, "direct boot parameters specified but kernel missing (ERROR_INVAL)", name)
        spice = variant.get("spice") or {}
        enabled = str(spice.get("enable", "")).lower() == "true"
        if enabled and not spice.get("port") and not spice.get("tls_port"):
            raise fail(op, "at least one of the spiceport or tls_port must be provided", name)
        check_enum(op, "b_info.type.hvm.vga.kind", variant.get("vga", {}).get("kind"), "vga")
        check_enum(op, "b_info.type.hvm.bios", variant.get("bios"), "bios")
        model = str(b_info.get("device_model_version", "qemu_xen")).lower()
        if str(variant.get("bios", "")).lower() == "rombios" and model == "qemu_xen":
            raise fail(op, "qemu-xen does not support bios=rombios. (ERROR_INVAL)", name)
    # Populate-on-demand (a non-PV guest booted below its maximum) and an IOMMU exclude each other.
    passthrough = str(c_info.get("passthrough", "unknown")).lower()
    iommu = passthrough not in ("unknown", "disabled") or config.get("pcidevs") or config.get("dtdevs")
    if kind != "pv" and b_info.get("target_memkb", max_memkb) < max_memkb and iommu:
        raise fail(op, "IOMMU required for device passthrough but not supported together with PoD "
                        "(ERROR_INVAL)", name)
    for event in ("on_poweroff", "on_reboot", "on_crash", "on_watchdog", "on_soft_reset"):
        check_enum(op, event, config.get(event), "action")
    disks, nics = config.get("disks", []), config.get("nics", [])
    for disk in disks:
        validate_disk(op, disk)
    for nic in nics:
        validate_nic(op, nic)
    vdevs = [d["vdev"] for d in disks]
    macs = [n["mac"].lower() for n in nics if n.get("mac")]
    for label, values in (("vdev", vdevs), ("mac", macs)):
        dups = sorted({v for v in values if values.count(v) > 1})
        if dups:
            raise fail(op, f"duplicate {label} {', '.join(dups)}", name)


def check_cpumap(op: str, b_info: dict[str, Any], nr_cpus: int, name: str) -> None:
    """libxl 4.17 copies ``b_info.cpumap`` into a bitmap of the host's cpu count and asserts both
    have the same size in bytes; a bitmap read from JSON is only as long as its highest bit. So a
    cpumap whose highest cpu falls in another byte than the host's last cpu aborts libxl (seen with
    the real libxl: tests/test_backend_contract.py); the sim refuses it instead of dying."""
    cpumap = b_info.get("cpumap")
    if not isinstance(cpumap, list) or not cpumap or not all(isinstance(c, int) for c in cpumap):
        return
    if (max(cpumap) + 8) // 8 != (nr_cpus + 7) // 8:
        raise fail(op, f"b_info.cpumap {cpumap} is not sized like the host's {nr_cpus} cpus: libxl 4.17 "
                        "aborts on it (libxl_bitmap_copy assertion); vcpu_hard_affinity does not", name)


def check_sched(op: str, params: dict[str, Any], max_vcpus: int, name: str | None) -> None:
    """credit2's limits as libxl checks them (-1, libxl's "default", leaves a value alone)."""
    weight, cap = params.get("weight", -1), params.get("cap", -1)
    if weight != -1 and not 1 <= weight <= 65535:
        raise fail(op, "Cpu weight out of range, valid range is from 1 to 65535 (ERROR_INVAL)", name)
    if cap != -1 and not 0 <= cap <= 100 * max_vcpus:
        raise fail(op, f"Cpu cap out of range, valid range is from 0 to {100 * max_vcpus} for specified "
                        "number of vcpus (ERROR_INVAL)", name)


def _lower_enums(obj: Any) -> None:
    """Enum values and macs in lower case, wherever they sit, as libxl's parser keeps them."""
    if isinstance(obj, list):
        for item in obj:
            _lower_enums(item)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, str) and (key in _ENUM_KEYS or key == "mac"):
                obj[key] = value.lower()
            else:
                _lower_enums(value)


def as_made(config: LibxlConfig) -> LibxlConfig:
    """A copy of ``config`` as libxl holds it once it made the domain: type, enums and macs in lower
    case, uuid canonical, and libxl's vcpu and memory defaults filled in."""
    config = copy.deepcopy(config)
    c_info, b_info = config["c_info"], config["b_info"]
    c_info["type"] = c_info["type"].lower()
    _lower_enums({k: v for k, v in config.items() if k != "c_info"})  # c_info.xsdata is free text
    for key in _ENUM_KEYS & config.keys():
        config[key] = str(config[key]).lower()
    # Like libxl, which leaves a missing uuid nil (xl makes one up in its parser, not libxl).
    c_info["uuid"] = str(_uuid.UUID(c_info["uuid"])) if c_info.get("uuid") else NIL_UUID
    b_info["max_vcpus"] = b_info.get("max_vcpus") or 1
    b_info.setdefault("avail_vcpus", list(range(b_info["max_vcpus"])))
    b_info.setdefault("max_memkb", DEFAULT_MAX_MEMKB)
    b_info.setdefault("target_memkb", b_info["max_memkb"])
    return config
