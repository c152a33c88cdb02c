"""PCI passthrough specs per xl-pci-configuration(5): ``[DDDD:]BB:DD.F[@VSLOT][,KEY=VALUE...]``.

One reader for the xl front end (which builds ``libxl_device_pci``) and the converters (which
build ``<hostdev>``). ``F`` may be ``*`` (every function of the device), ``@VSLOT`` puts the device
at that virtual slot, and the keys are ``permissive``, ``msitranslate``, ``power_mgmt``, ``seize``
(0 or 1), ``rdm_policy`` (``strict`` or ``relaxed``), plus the key=value spellings ``bdf=`` and
``vslot=`` of the positional parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_BDF = re.compile(r"(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7*])")
BOOL_OPTIONS = ("permissive", "msitranslate", "power_mgmt", "seize")
RDM_POLICIES = ("strict", "relaxed")


@dataclass
class PciSpec:
    domain: int
    bus: int
    dev: int
    func: int | None  # None: every function (``.*``)
    vslot: int | None = None
    options: dict[str, bool] = field(default_factory=dict)
    rdm_policy: str | None = None
    name: str | None = None


def _bdf(text: str) -> tuple[int, int, int, int | None]:
    m = _BDF.fullmatch(text.strip())
    if not m:
        raise ValueError("malformed PCI address (expected [DDDD:]BB:SS.F)")
    func = None if m.group(4) == "*" else int(m.group(4))
    return int(m.group(1) or "0", 16), int(m.group(2), 16), int(m.group(3), 16), func


def _vslot(text: str) -> int:
    try:
        slot = int(text, 16)
    except ValueError:
        raise ValueError(f"malformed virtual slot {text!r}") from None
    if not 0 <= slot < 32:
        raise ValueError(f"virtual slot {text!r} out of range")
    return slot


def parse_pci_spec(text: str) -> PciSpec:
    """Raises ``ValueError`` naming the bad part."""
    head, *opts = text.split(",")
    spec: PciSpec | None = None
    if "=" not in head:
        address, at, slot = head.partition("@")
        spec = PciSpec(*_bdf(address), vslot=_vslot(slot) if at else None)
    else:
        opts.insert(0, head)
    for opt in opts:
        key, eq, value = (p.strip() for p in opt.partition("="))
        if not eq:
            raise ValueError(f"expected key=value, got {opt.strip()!r}")
        if key == "bdf":
            if spec is not None:
                raise ValueError("bdf given twice")
            spec = PciSpec(*_bdf(value))
        elif spec is None:
            raise ValueError("no PCI address (bdf=) before the options")
        elif key == "vslot":
            spec.vslot = _vslot(value)
        elif key in BOOL_OPTIONS:
            if value not in ("0", "1"):
                raise ValueError(f"{key} must be 0 or 1, not {value!r}")
            spec.options[key] = value == "1"
        elif key == "rdm_policy":
            if value not in RDM_POLICIES:
                raise ValueError(f"rdm_policy must be strict or relaxed, not {value!r}")
            spec.rdm_policy = value
        elif key == "name":
            spec.name = value
        else:
            raise ValueError(f"unknown PCI option {key!r}")
    if spec is None:
        raise ValueError("no PCI address")
    return spec


__all__ = ["PciSpec", "parse_pci_spec", "BOOL_OPTIONS", "RDM_POLICIES"]
