"""Table-driven tests of reconcilers.diff: one row per field class, on hand-written libxl JSON."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from libxl.hosts.backend import OWNER_KEY
from reconcilers.diff import diff_domain, normalise

UUID = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
BASE: dict[str, Any] = {
    "c_info": {"type": "pv", "name": "web", "uuid": UUID},
    "b_info": {"max_vcpus": 4, "avail_vcpus": [0, 1], "max_memkb": 1048576, "target_memkb": 524288,
               "type.pv": {"kernel": "/boot/vmlinuz", "cmdline": "root=/dev/xvda1"}},
    "disks": [{"pdev_path": "/img/web.img", "vdev": "xvda", "format": "raw", "readwrite": 1},
              {"pdev_path": "/iso/a.iso", "vdev": "xvdc", "format": "raw", "is_cdrom": 1, "removable": 1}],
    "nics": [{"devid": 0, "mac": "00:16:3e:00:00:01", "bridge": "br0"}],
    "on_reboot": "restart",
}
HVM: dict[str, Any] = {
    "c_info": {"type": "hvm", "name": "win", "uuid": UUID},
    "b_info": {"max_vcpus": 2, "max_memkb": 2097152, "target_memkb": 2097152,
               "type.hvm": {"boot": "c", "pae": "True"}},
    "disks": [{"pdev_path": "/img/win.img", "vdev": "hda", "format": "raw", "readwrite": 1}],
}

Mutator = Callable[[dict[str, Any]], Any]


def _set(path: str, value: Any) -> Mutator:
    """A mutation setting ``b_info/type.pv/kernel``-style paths (a list index is a path element)."""
    def mutate(cfg: dict[str, Any]) -> None:
        *parents, last = path.split("/")
        node: Any = cfg
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if value is _DELETE:
            del node[int(last) if isinstance(node, list) else last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


_DELETE = object()


def _append(key: str, item: dict[str, Any]) -> Mutator:
    return lambda cfg: cfg.setdefault(key, []).append(item)


def _nothing(cfg: dict[str, Any]) -> None:
    return None


XVDB = {"pdev_path": "/img/data.img", "vdev": "xvdb", "format": "raw", "readwrite": 1}
NIC2 = {"devid": 1, "mac": "00:16:3e:00:00:02", "bridge": "br1"}

# id, base, desired mutation, actual mutation, classification, hot change kinds
CASES: list[tuple[str, dict[str, Any], Mutator, Mutator, str, list[str]]] = [
    ("identical", BASE, _nothing, _nothing, "none", []),
    ("owner marker ignored", BASE, _nothing, _set("c_info/xsdata", {OWNER_KEY: "agent"}), "none", []),
    ("uuid case", BASE, _set("c_info/uuid", UUID.upper()), _nothing, "none", []),
    ("mac case", BASE, _set("nics/0/mac", "00:16:3E:00:00:01"), _nothing, "none", []),
    ("enum case", BASE, _set("on_reboot", "RESTART"), _nothing, "none", []),
    ("defbool case", HVM, _nothing, _set("b_info/type.hvm/pae", "true"), "none", []),
    ("explicit zero is default", BASE, _set("disks/0/is_cdrom", 0), _nothing, "none", []),
    ("empty dict is default", BASE, _set("b_info/sched_params", {}), _nothing, "none", []),
    ("generated uuid", BASE, _set("c_info/uuid", _DELETE), _nothing, "none", []),
    ("generated shadow memory", BASE, _nothing, _set("b_info/shadow_memkb", 9216), "none", []),
    ("generated disk fields", BASE, _nothing, _set("disks/0/backend", "qdisk"), "none", []),
    ("generated nic fields", BASE, _nothing, _set("nics/0/script", "vif-bridge"), "none", []),
    # What real libxl 4.17 reported back for a guest whose file set none of it (seen on real Xen).
    ("libxl scheduler defaults", BASE, _nothing,
     _set("b_info/sched_params", {"sched": "credit2", "weight": 256}), "none", []),
    ("libxl arch defaults", BASE, _nothing, _set("b_info/arch_x86", {"msr_relaxed": "False"}), "none", []),
    ("libxl lifecycle default", BASE, _set("on_reboot", _DELETE), _nothing, "none", []),
    ("kernel removed from the file", BASE, _set("b_info/type.pv/kernel", _DELETE), _nothing,
     "restart-required", []),
    ("nic without mac matches by devid", BASE, _set("nics/0/mac", _DELETE), _nothing, "none", []),
    ("vcpu bitmap order", BASE, _set("b_info/avail_vcpus", [1, 0]), _nothing, "none", []),
    ("absent avail means all", BASE, _set("b_info/avail_vcpus", _DELETE),
     _set("b_info/avail_vcpus", [0, 1, 2, 3]), "none", []),
    ("absent target means max", BASE, _set("b_info/target_memkb", _DELETE),
     _set("b_info/target_memkb", 1048576), "none", []),
    ("memory target up", BASE, _set("b_info/target_memkb", 786432), _nothing, "hot", ["set-memory"]),
    ("memory target down", BASE, _set("b_info/target_memkb", 262144), _nothing, "hot", ["set-memory"]),
    ("memory target above max", BASE, _set("b_info/target_memkb", 2097152), _nothing,
     "restart-required", []),
    ("max memory", BASE, _set("b_info/max_memkb", 2097152), _nothing, "hot", ["set-maxmem"]),
    ("online vcpus up", BASE, _set("b_info/avail_vcpus", [0, 1, 2, 3]), _nothing, "hot", ["set-vcpus"]),
    ("online vcpus above current max", BASE,
     lambda c: (_set("b_info/max_vcpus", 8)(c), _set("b_info/avail_vcpus", list(range(6)))(c)), _nothing,
     "restart-required", []),
    ("max vcpus", BASE, _set("b_info/max_vcpus", 8), _nothing, "restart-required", []),
    ("disk add", BASE, _append("disks", XVDB), _nothing, "hot", ["disk-add"]),
    ("disk remove", BASE, _nothing, _append("disks", XVDB), "hot", ["disk-remove"]),
    ("disk source", BASE, _set("disks/0/pdev_path", "/img/other.img"), _nothing, "restart-required", []),
    ("disk read-only", BASE, _set("disks/0/readwrite", 0), _nothing, "restart-required", []),
    ("cdrom media change", BASE, _set("disks/1/pdev_path", "/iso/b.iso"), _nothing, "hot", ["cdrom-change"]),
    ("cdrom eject", BASE, _set("disks/1/pdev_path", _DELETE), _nothing, "hot", ["cdrom-change"]),
    ("cdrom device added", BASE, _append("disks", {"vdev": "xvdd", "is_cdrom": 1}), _nothing,
     "restart-required", []),
    ("hvm emulated disk add", HVM, _append("disks", {**XVDB, "vdev": "hdb"}), _nothing,
     "restart-required", []),
    ("hvm pv disk add", HVM, _append("disks", XVDB), _nothing, "hot", ["disk-add"]),
    ("nic add", BASE, _append("nics", NIC2), _nothing, "hot", ["nic-add"]),
    ("nic remove", BASE, _nothing, _append("nics", NIC2), "hot", ["nic-remove"]),
    ("nic mac change", BASE, _set("nics/0/mac", "00:16:3e:00:00:09"), _nothing, "hot",
     ["nic-add", "nic-remove"]),
    ("nic bridge", BASE, _set("nics/0/bridge", "br9"), _nothing, "restart-required", []),
    ("kernel", BASE, _set("b_info/type.pv/kernel", "/boot/vmlinuz-new"), _nothing, "restart-required", []),
    ("cmdline removed", BASE, _set("b_info/type.pv/cmdline", _DELETE), _nothing, "restart-required", []),
    ("domain type", BASE, _set("c_info/type", "pvh"), _nothing, "restart-required", []),
    ("bootloader", BASE, _set("b_info/type.pv/bootloader", "pygrub"), _nothing, "restart-required", []),
    ("firmware", HVM, _set("b_info/type.hvm/bios", "ovmf"), _nothing, "restart-required", []),
    ("lifecycle action", BASE, _set("on_reboot", "destroy"), _nothing, "restart-required", []),
    ("uuid set differently", BASE, _set("c_info/uuid", "00000000-0000-0000-0000-000000000001"), _nothing,
     "restart-required", []),
    ("hot and restart together", BASE,
     lambda c: (_set("b_info/target_memkb", 786432)(c), _set("b_info/type.pv/kernel", "/k")(c)),
     _nothing, "restart-required", ["set-memory"]),
]


@pytest.mark.parametrize(("base", "mutate_desired", "mutate_actual", "classification", "hot"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_diff_classification(base: dict[str, Any], mutate_desired: Mutator, mutate_actual: Mutator,
                             classification: str, hot: list[str]) -> None:
    desired, actual = copy.deepcopy(base), copy.deepcopy(base)
    mutate_desired(desired)
    mutate_actual(actual)
    result = diff_domain(desired, actual)
    assert result.classification == classification, (result.hot, result.restart)
    assert sorted(c.kind for c in result.hot) == sorted(hot)


def test_hot_device_changes_carry_the_raw_device_for_the_backend() -> None:
    desired = copy.deepcopy(BASE)
    desired["disks"].append(XVDB)
    desired["disks"][1]["pdev_path"] = "/iso/b.iso"
    result = diff_domain(desired, BASE)
    by_kind = {c.kind: c for c in result.hot}
    assert by_kind["disk-add"].desired == XVDB
    assert by_kind["cdrom-change"].desired["pdev_path"] == "/iso/b.iso"
    removed = diff_domain(BASE, desired)
    assert next(c for c in removed.hot if c.kind == "disk-remove").actual == XVDB


def test_restart_changes_name_the_field_path() -> None:
    desired = copy.deepcopy(BASE)
    desired["b_info"]["type.pv"]["kernel"] = "/boot/new"
    desired["nics"][0]["bridge"] = "br9"
    paths = {c.path for c in diff_domain(desired, BASE).restart}
    assert paths == {"b_info.type.pv.kernel", "nics[00:16:3e:00:00:01].bridge"}
    assert [c.desired for c in diff_domain(desired, BASE).restart if "kernel" in c.path] == ["/boot/new"]


def test_memory_values_are_reported_in_kib() -> None:
    desired = copy.deepcopy(BASE)
    desired["b_info"]["target_memkb"] = 786432
    change = diff_domain(desired, BASE).hot[0]
    assert (change.desired, change.actual) == (786432, 524288)


def test_normalise_does_not_modify_its_input() -> None:
    config = copy.deepcopy(BASE)
    config["c_info"]["xsdata"] = {OWNER_KEY: "x"}
    before = copy.deepcopy(config)
    normalise(config)
    diff_domain(config, BASE)
    assert config == before


def test_nic_identified_by_mac_ignores_devid_and_hot_adds_without_it() -> None:
    desired = copy.deepcopy(BASE)
    desired["nics"] = [{"devid": 0, "mac": "00:16:3e:00:00:02", "bridge": "br0"},
                       {"devid": 1, "mac": "00:16:3e:00:00:01", "bridge": "br0"}]
    result = diff_domain(desired, BASE)
    assert [c.kind for c in result.hot] == ["nic-add"] and result.restart == []
    assert "devid" not in result.hot[0].desired  # devid 0 belongs to the nic the guest keeps
    replaced = copy.deepcopy(BASE)
    replaced["nics"] = [{"devid": 0, "mac": "00:16:3e:00:00:09", "bridge": "br0"}]
    assert [c.kind for c in diff_domain(replaced, BASE).hot] == ["nic-remove", "nic-add"]
