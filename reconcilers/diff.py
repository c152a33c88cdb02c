"""Field-by-field comparison of a desired and an actual libxl config, with each change classified.

Both sides are libxl JSON (``libxl_domain_config``) and both go through the same ``normalise`` before
they are compared, because tools that compared raw text restarted guests on every run (NixVirt,
Ansible's libvirt check mode). Normalising means:

- values libxl leaves out when they equal the default are dropped on both sides (``None``, ``""``,
  empty lists and dicts, ``0``, ``false``, defbool ``"<default>"``): libxl's ``to_json`` omits them,
  so an explicit ``"readwrite": 0`` and an absent key must compare equal;
- enum-like values, uuids and macs are lowercased, defbools become ``"true"``/``"false"``;
- fields libxl fills in when the config did not say are compared only when the desired side sets
  them: any domain-level field (a generated uuid, the shadow memory, the scheduler parameters and
  the many other defaults real libxl reports back), except the few only a file sets (kernel,
  cmdline, bootloader, device-model arguments... ``_ONLY_FROM_FILE``: dropping one from the file
  is a change); and for devices the generated ones by name (device id, mac, vif script...);
- the owner marker in ``c_info.xsdata`` is ignored: it is bookkeeping, not configuration;
- disks are matched by ``vdev``, nics by mac (or by device id when the desired nic has no mac),
  the vcpu bitmap becomes a count.

Classification (``DomainDiff``, kinds ``reconcilers.actions.ChangeKind``): a change is *hot* when
libxl can apply it to a running guest (disk and nic add/remove, cdrom media, balloon target up to
the maximum, online vcpus up to the current maximum, and the live tuning ``xl vcpu-pin``,
``xl sched-credit2`` and ``xl mem-max`` do: vcpu hard and soft affinity, scheduler weight and cap,
maximum memory); every other change is *restart-required*. Live tuning is compared only where the
desired file sets it: left out, it is libxl's (or its NUMA placement's) to choose, as for any other
default.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from libxl.frontends.libvirt import shadow_memkb
from libxl.hosts.backend import OWNER_KEY, LibxlConfig
from reconcilers.actions import Affinity, ChangeKind

#: Keys whose values libxl parses case-insensitively (enums, uuids, macs).
_CASELESS_KEYS = frozenset({
    "type", "backend", "format", "nictype", "uuid", "mac", "on_poweroff", "on_reboot", "on_watchdog",
    "on_crash", "on_soft_reset", "tsc_mode", "device_model_version", "kind", "rdm_policy",
})
_DEFBOOLS = {"true": "true", "false": "false"}

#: Device fields libxl generates when the config leaves them out.
_GENERATED_DISK = frozenset({"devid", "backend", "backend_domid", "format"})
_GENERATED_NIC = frozenset({"devid", "mac", "script", "nictype", "backend_domid", "ifname"})
#: Scheduler parameters ``libxl_domain_sched_params_set`` changes live on credit and credit2 (the
#: others, RTDS's period and budget, stay restart-required: a credit2 host ignores them).
_LIVE_SCHED = ("weight", "cap")
#: Disk fields a cdrom media change may alter without a restart.
_MEDIA_FIELDS = frozenset({"pdev_path", "format", "backend"})
#: One nic as ``normalise`` keeps it: (mac, device id, normalised dict, raw dict for the backend).
_Nic = tuple[str | None, int, dict[str, Any], LibxlConfig]


@dataclass(frozen=True)
class Change:
    """One difference. ``desired``/``actual`` hold the libxl values (for device changes, the whole
    un-normalised device dict, which is what the backend's hotplug calls take)."""
    path: str
    kind: ChangeKind
    desired: Any = None
    actual: Any = None


@dataclass
class DomainDiff:
    hot: list[Change] = field(default_factory=list)
    restart: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.hot and not self.restart

    @property
    def classification(self) -> str:
        """``none``, ``hot`` or ``restart-required`` (the latter wins when both are present)."""
        if self.restart:
            return "restart-required"
        return "hot" if self.hot else "none"

    def hot_if(self, hot: bool, kind: ChangeKind, path: str, desired: Any, actual: Any) -> None:
        """Record a ``kind`` change when libxl can make it live (``hot``), else a restart-required one."""
        if hot:
            self.hot.append(Change(path, kind, desired, actual))
        else:
            self.restart.append(Change(path, ChangeKind.RESTART, desired, actual))


@dataclass
class Normalised:
    """A libxl config in comparable form. ``disks``/``nics`` keep the raw dicts for the backend."""
    dtype: str
    tree: dict[str, Any]  # everything but memory, vcpus, disks and nics
    max_memkb: int | None
    target_memkb: int | None
    max_vcpus: int
    online_vcpus: int
    disks: dict[str, tuple[dict[str, Any], LibxlConfig]]
    nics: list[_Nic]
    #: Per-vcpu hard and soft affinity (sorted cpu tuples; None: not set), see ``_affinity``.
    hard_affinity: tuple[tuple[int, ...] | None, ...] = ()
    soft_affinity: tuple[tuple[int, ...] | None, ...] = ()
    #: The live scheduler parameters (``_LIVE_SCHED``) the config sets.
    sched: dict[str, int] = field(default_factory=dict)


def _clean(value: Any, key: str = "") -> Any:
    """Lowercase caseless values and drop defaults, recursively; returns None for a default."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            cleaned = _clean(v, k)
            if cleaned is not None:
                out[k] = cleaned
        return out or None
    if isinstance(value, list):
        items = [_clean(v, key) for v in value]
        return items or None
    if isinstance(value, bool):
        return value or None
    if isinstance(value, str):
        low = value.lower()
        if value == "" or low == "<default>":
            return None
        if low in _DEFBOOLS:
            return _DEFBOOLS[low]
        return low if key in _CASELESS_KEYS else value
    if value == 0:
        return None
    return value


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _bitmap(value: Any) -> tuple[int, ...] | None:
    """A libxl bitmap as JSON (the list of set bits) as a sorted tuple; None when empty or absent."""
    if not isinstance(value, list) or not value:
        return None
    return tuple(sorted({_int(bit, -1) for bit in value}))


def _affinity(per_vcpu: Any, every: Any, max_vcpus: int) -> tuple[tuple[int, ...] | None, ...]:
    """One affinity per vcpu: libxl's ``vcpu_hard_affinity``/``vcpu_soft_affinity`` list (vcpus
    past its end keep the default), else the legacy all-vcpus ``cpumap`` libxl expands the same way
    when it sets a domain up."""
    if isinstance(per_vcpu, list) and per_vcpu:
        maps = [_bitmap(m) for m in per_vcpu[:max_vcpus]]
        return tuple(maps + [None] * (max_vcpus - len(maps)))
    common = _bitmap(every)
    return (common,) * max_vcpus if common is not None else ()


def _live_sched(b_info: dict[str, Any]) -> dict[str, int]:
    """Pop the live scheduler parameters out of ``b_info`` (a private copy); libxl's "default"
    values (-1 for weight, cap and the rest) count as unset."""
    params = b_info.get("sched_params")
    if not isinstance(params, dict):
        return {}
    rest = dict(params)
    out = {k: _int(rest.pop(k), -1) for k in _LIVE_SCHED if k in rest}
    b_info["sched_params"] = rest
    return {k: v for k, v in out.items() if v >= 0}


def normalise(config: LibxlConfig) -> Normalised:
    """Bring one libxl config into the form ``diff_domain`` compares (pure; input untouched)."""
    # Copies of just the containers changed below (a deep copy of every config dominated a resync).
    raw = dict(config)
    c_info = raw.get("c_info") or {}
    xsdata = c_info.get("xsdata")
    if isinstance(xsdata, dict):
        raw["c_info"] = {**c_info, "xsdata": {k: v for k, v in xsdata.items() if k != OWNER_KEY}}
    b_info = dict(raw.get("b_info") or {})
    if raw.get("b_info"):
        raw["b_info"] = b_info
    max_vcpus = _int(b_info.pop("max_vcpus", None), 1) or 1
    avail = b_info.pop("avail_vcpus", None)
    online = len(avail) if isinstance(avail, list) and avail else max_vcpus
    max_mem = b_info.pop("max_memkb", None)
    target = b_info.pop("target_memkb", None)
    max_mem = _int(max_mem, 0) or None
    target = _int(target, 0) or max_mem
    if _int(b_info.get("shadow_memkb"), -1) == shadow_memkb(max_mem or 0, max_vcpus):
        # libxl's own figure for this size (libxl_get_required_shadow_memory): it follows the
        # maximum, which is live now, so only a shadow size set apart from it is compared.
        b_info.pop("shadow_memkb")
    hard = _affinity(b_info.pop("vcpu_hard_affinity", None), b_info.pop("cpumap", None), max_vcpus)
    soft = _affinity(b_info.pop("vcpu_soft_affinity", None), b_info.pop("cpumap_soft", None), max_vcpus)
    sched = _live_sched(b_info)

    disks: dict[str, tuple[dict[str, Any], LibxlConfig]] = {}
    for original in config.get("disks") or []:
        vdev = str(original.get("vdev", ""))
        disks[vdev] = (_clean(original) or {}, original)
    nics = []
    for index, original in enumerate(config.get("nics") or []):
        mac = original.get("mac")
        devid = original.get("devid")
        nics.append((mac.lower() if isinstance(mac, str) and mac else None,
                     _int(devid, index) if devid is not None else index,
                     _clean(original) or {}, original))
    raw.pop("disks", None)
    raw.pop("nics", None)
    tree = _clean(raw) or {}
    return Normalised(dtype=str(tree.get("c_info", {}).get("type", "pv")), tree=tree, max_memkb=max_mem,
                      target_memkb=target, max_vcpus=max_vcpus, online_vcpus=online,
                      disks=disks, nics=nics, hard_affinity=hard, soft_affinity=soft, sched=sched)


#: Leaves libxl never fills in by itself: when the desired file drops one, the guest must change.
#: Every other leaf the desired side leaves out is libxl's (or the host's) to default, and real
#: libxl reports those defaults (``sched_params``, ``arch_x86.msr_relaxed``, ``vnc.listen``...).
_ONLY_FROM_FILE = frozenset({
    "kernel", "ramdisk", "cmdline", "bootloader", "bootloader_args", "device_model_args",
    "device_model_args_pv", "device_model_args_hvm", "firmware", "bios", "cpuid", "pcidevs",
    "vnuma_nodes", "iomem", "irqs", "ioports", "acpi_firmware", "smbios_firmware", "xsdata",
})


def _leaf_diffs(desired: Any, actual: Any, path: str, *,
                defaults: bool = False) -> Iterator[tuple[str, Any, Any]]:
    """Yield (path, desired, actual) for every differing leaf; lists compare as a whole. With
    ``defaults``, a leaf only the actual side has is libxl's default unless it is ``_ONLY_FROM_FILE``
    (devices compare strictly: their generated fields are dropped by name, see ``_drop_generated``)."""
    if isinstance(desired, dict | None) and isinstance(actual, dict | None) and (desired or actual):
        desired, actual = desired or {}, actual or {}
        for key in sorted(set(desired) | set(actual)):
            yield from _leaf_diffs(desired.get(key), actual.get(key), f"{path}.{key}" if path else key,
                                   defaults=defaults)
    elif defaults and desired is None and path.rsplit(".", 1)[-1] not in _ONLY_FROM_FILE:
        return
    elif desired != actual:
        yield path, desired, actual


def _drop_generated(desired: dict[str, Any], actual: dict[str, Any],
                    generated: frozenset[str]) -> dict[str, Any]:
    """The actual device without the generated fields the desired device leaves to libxl."""
    return {k: v for k, v in actual.items() if k not in generated or k in desired}


def _hotpluggable_disk(dtype: str, vdev: str) -> bool:
    """PV and PVH guests take any PV disk live; an HVM guest only its PV (``xvd*``) disks, not the
    emulated IDE/SCSI/SATA ones, which exist only from the device model's start."""
    return dtype != "hvm" or vdev.startswith("xvd")


def _diff_disks(want: Normalised, have: Normalised, out: DomainDiff) -> None:
    for vdev in sorted(set(want.disks) | set(have.disks)):
        path = f"disks[{vdev}]"
        if vdev not in have.disks:
            norm, raw = want.disks[vdev]
            hot = _hotpluggable_disk(have.dtype, vdev) and not norm.get("is_cdrom")
            out.hot_if(hot, ChangeKind.DISK_ADD, path, raw, None)
            continue
        if vdev not in want.disks:
            norm, raw = have.disks[vdev]
            hot = _hotpluggable_disk(have.dtype, vdev) and not norm.get("is_cdrom")
            out.hot_if(hot, ChangeKind.DISK_REMOVE, path, None, raw)
            continue
        (d_norm, d_raw), (a_norm, a_raw) = want.disks[vdev], have.disks[vdev]
        a_norm = _drop_generated(d_norm, a_norm, _GENERATED_DISK)
        changed = {p.split(".")[0] for p, _, _ in _leaf_diffs(d_norm, a_norm, "")}
        if not changed:
            continue
        if d_norm.get("is_cdrom") and a_norm.get("is_cdrom") and changed <= _MEDIA_FIELDS:
            out.hot.append(Change(path, ChangeKind.CDROM_CHANGE, d_raw, a_raw))
        else:
            out.restart.extend(Change(f"{path}.{p}", ChangeKind.RESTART, d, a)
                               for p, d, a in _leaf_diffs(d_norm, a_norm, ""))


def _match_nics(want: Normalised, have: Normalised) -> tuple[list[tuple[_Nic, _Nic]], list[_Nic], list[_Nic]]:
    """Pair desired and actual nics: by mac when the desired nic has one, else by device id."""
    unused = list(range(len(have.nics)))
    pairs: list[tuple[_Nic, _Nic]] = []
    added: list[_Nic] = []
    for d in want.nics:
        d_mac, d_devid = d[0], d[1]
        if d_mac is not None:
            found = next((i for i in unused if have.nics[i][0] == d_mac), None)
        else:
            found = next((i for i in unused if have.nics[i][1] == d_devid), None)
        if found is None:
            added.append(d)
        else:
            unused.remove(found)
            pairs.append((d, have.nics[found]))
    return pairs, added, [have.nics[i] for i in unused]


def _nic_label(nic: _Nic) -> str:
    return f"nics[{nic[0] or '#' + str(nic[1])}]"


def _without_devid(nic: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in nic.items() if k != "devid"}


def _diff_nics(want: Normalised, have: Normalised, out: DomainDiff) -> None:
    """A nic with a mac is identified by it, so its device id is libxl's business: it is neither
    compared nor sent with a hot-add (where it could collide with a nic the guest keeps). Removals
    come first so a re-added nic finds its mac and slot free."""
    pairs, added, removed = _match_nics(want, have)
    out.hot.extend(Change(_nic_label(n), ChangeKind.NIC_REMOVE, None, n[3]) for n in removed)
    out.hot.extend(Change(_nic_label(n), ChangeKind.NIC_ADD, _without_devid(n[3]) if n[0] else n[3], None)
                   for n in added)
    for d, a in pairs:
        d_norm, a_norm = (_without_devid(d[2]), _without_devid(a[2])) if d[0] else (d[2], a[2])
        a_norm = _drop_generated(d_norm, a_norm, _GENERATED_NIC)
        out.restart.extend(Change(f"{_nic_label(d)}.{p}", ChangeKind.RESTART, dv, av)
                           for p, dv, av in _leaf_diffs(d_norm, a_norm, ""))


def _diff_memory(want: Normalised, have: Normalised, out: DomainDiff) -> None:
    """The maximum (``xl mem-max``) and the balloon target, both live. libxl refuses a maximum
    below the current target, so a shrinking maximum comes after the target's change and a growing
    one before it (the hot changes run in the order listed here)."""
    max_change: Change | None = None
    growing = False
    if want.max_memkb != have.max_memkb and want.max_memkb is not None:
        max_change = Change("b_info.max_memkb", ChangeKind.SET_MAXMEM, want.max_memkb, have.max_memkb)
        growing = have.max_memkb is None or want.max_memkb > have.max_memkb
    elif want.max_memkb != have.max_memkb:
        out.restart.append(Change("b_info.max_memkb", ChangeKind.RESTART, want.max_memkb, have.max_memkb))
    if max_change is not None and growing:
        out.hot.append(max_change)
    if want.target_memkb != have.target_memkb:
        ceiling = want.max_memkb if want.max_memkb is not None else have.max_memkb
        hot = want.target_memkb is not None and ceiling is not None and want.target_memkb <= ceiling
        out.hot_if(hot, ChangeKind.SET_MEMORY, "b_info.target_memkb", want.target_memkb, have.target_memkb)
    if max_change is not None and not growing:
        out.hot.append(max_change)


def _diff_tuning(want: Normalised, have: Normalised, out: DomainDiff) -> None:
    """vcpu affinity (``xl vcpu-pin``) and scheduler weight/cap (``xl sched-credit2``), each
    compared where the desired config sets it. One change per kind carries the whole desired
    value, which the executor hands to libxl call by call."""
    vcpus = range(min(want.max_vcpus, have.max_vcpus))
    hard: dict[int, tuple[int, ...]] = {}
    soft: dict[int, tuple[int, ...]] = {}
    for mine, theirs, into in ((want.hard_affinity, have.hard_affinity, hard),
                               (want.soft_affinity, have.soft_affinity, soft)):
        for vcpu in vcpus:
            wanted = mine[vcpu] if vcpu < len(mine) else None
            current = theirs[vcpu] if vcpu < len(theirs) else None
            if wanted is not None and wanted != current:
                into[vcpu] = wanted
    if hard or soft:
        changed = sorted(hard.keys() | soft.keys())
        pins: Affinity = {v: ([*hard[v]] if v in hard else None, [*soft[v]] if v in soft else None)
                      for v in changed}
        out.hot.append(Change("b_info.vcpu_affinity", ChangeKind.SET_AFFINITY, pins,
                              {v: (have.hard_affinity[v] if v < len(have.hard_affinity) else None,
                                   have.soft_affinity[v] if v < len(have.soft_affinity) else None)
                               for v in changed}))
    sched = {k: v for k, v in want.sched.items() if have.sched.get(k) != v}
    if sched:
        out.hot.append(Change("b_info.sched_params", ChangeKind.SET_SCHED, sched,
                              {k: have.sched.get(k) for k in sched}))


def _diff_sizes(want: Normalised, have: Normalised, out: DomainDiff) -> None:
    """Memory (``_diff_memory``); online vcpus are hot up to the maximum the guest was started with."""
    _diff_memory(want, have, out)
    if want.max_vcpus != have.max_vcpus:
        out.restart.append(Change("b_info.max_vcpus", ChangeKind.RESTART, want.max_vcpus, have.max_vcpus))
    if want.online_vcpus != have.online_vcpus:
        hot = want.online_vcpus <= have.max_vcpus
        out.hot_if(hot, ChangeKind.SET_VCPUS, "b_info.avail_vcpus", want.online_vcpus, have.online_vcpus)


class DiffMemo:
    """The last diff of each domain name, reused while both configs stay equal.

    ``diff_domain`` is pure, so an equal pair of configs gives the same result; comparing two small
    dicts costs a fraction of normalising and diffing them, which made most of a no-op resync.
    Results are shared, so callers only read them (they refer to the memo's own copies of the
    configs). The full plan drops names it no longer plans (``keep``): one entry per planned domain.

    The desired config of a guest is the very object of the last call while its file is unchanged
    (a loaded desired set is never changed, and ``ports.resolve`` keeps its result per object), so
    that side is known equal by identity; the retrieved config is a fresh copy from the host each
    time and is always compared.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[LibxlConfig, LibxlConfig, LibxlConfig, DomainDiff]] = {}

    def diff(self, name: str, desired: LibxlConfig, actual: LibxlConfig) -> DomainDiff:
        last = self._last.get(name)
        if last is not None and (last[0] is desired or last[1] == desired) and last[2] == actual:
            return last[3]
        # Private copies (a miss only): a retrieved config changed later cannot fake a hit.
        mine, theirs = copy.deepcopy(desired), copy.deepcopy(actual)
        result = diff_domain(mine, theirs)
        self._last[name] = (desired, mine, theirs, result)
        return result

    def keep(self, names: set[str]) -> None:
        for name in self._last.keys() - names:
            self._last.pop(name, None)


def diff_domain(desired: LibxlConfig, actual: LibxlConfig) -> DomainDiff:
    """Compare two libxl configs of one domain and classify every difference (pure).

    ``desired`` comes from the desired file (``libxl.frontends.libvirt.build_config``), ``actual`` from the
    host (``Backend.domain_config``).
    """
    want, have = normalise(desired), normalise(actual)
    out = DomainDiff()
    out.restart.extend(Change(p, ChangeKind.RESTART, d, a)
                       for p, d, a in _leaf_diffs(want.tree, have.tree, "", defaults=True))
    _diff_sizes(want, have, out)
    _diff_tuning(want, have, out)
    _diff_disks(want, have, out)
    _diff_nics(want, have, out)
    return out
