"""One Backend contract, run against the simulated host and against the real libxl 4.17.

The simulator is only worth its tests while it behaves like libxl. Each case below states what real
libxl does with a config, and runs twice: on ``SimHost`` and on ``RealHost`` under the LD_PRELOAD
shim (tests/shim/xenshim.c), where libxl runs for real up to the first hypercall that makes a
domain. There the shim's ``xc_domain_create`` counts the call and fails, so "libxl accepted the
config and asked Xen for the domain" is told apart from "libxl refused it" without reading log text.
A case whose stated outcome real libxl does not give fails on the ``libxl`` side; a sim that refuses
what libxl accepts, or accepts what libxl refuses, fails on the ``sim`` side.

What the shim cannot reach (anything after Xen made the domain: the domain builder, device setup,
name uniqueness in xenstore) is sim-only: such a case says ``later=`` why the sim refuses a config
that libxl hands to Xen, and the libxl side still proves that libxl itself lets it through (so the
sim never claims a libxl check that does not exist). Two reasons in ``later=`` start with
UNVERIFIED: libxl lets those configs through and nothing here shows what refuses them after.

Besides single configs: every guest the project builds from its examples and corpora gets libxl's
answer on both backends, every enum value in libxl's headers is accepted by both, the sim reads a
config back as libxl's parser keeps it, a fresh host lists Domain-0 alone, and an operation on an
unknown domid is a permanent ERROR_DOMAIN_NOTFOUND on both. Tests named ``test_sim_only_*`` cover
what the real binding cannot do without Xen (a domain made and then named again; domain 0 as a
target, whose pause the shim does not model).
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
import realxl

from libxl.errors import BackendError
from libxl.hosts.backend import OWNER_KEY
from libxl.hosts.sim import GIB_KIB, SimHost

BACKENDS = ["sim", "libxl"]
#: The shim's host has 16 cpus; the sim plays the same host (libxl sizes cpu bitmaps by it).
SHIM_CPUS = 16
_MISSING = realxl.libxl_missing()
#: Where the generated types live (enum values are read from it, so the sim is held to libxl's lists).
_TYPES_HEADER = Path("/usr/include/_libxl_types.h")


class Outcome(StrEnum):
    #: sim: the domain exists; real libxl: every libxl check passed and Xen was asked for the domain.
    ACCEPTED = "accepted"
    #: A permanent ``BackendError`` (retrying cannot help) and nothing made.
    REFUSED = "refused"
    #: Real libxl 4.17 fails an assert and kills the process. The sim refuses instead: the agent
    #: must never send such a config, and a test host must not die of it.
    ABORTED = "aborted"


@dataclass(frozen=True)
class Case:
    id: str
    config: Any
    libxl: Outcome
    #: Sim-only: why the sim refuses a config libxl passes to Xen (a later stage refuses it).
    later: str | None = None

    @property
    def sim(self) -> Outcome:
        if self.libxl is Outcome.ACCEPTED and self.later is None:
            return Outcome.ACCEPTED
        return Outcome.REFUSED


def guest(**changes: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """A small PV guest as the builder makes it (a disk, a cdrom, a nic, the owner marker)."""
    config: dict[str, Any] = {
        "c_info": {"type": "pv", "name": "g", "uuid": "5a1e2c3d-0000-4000-8000-00000000000a",
                   "xsdata": {OWNER_KEY: "contract"}},
        "b_info": {"max_vcpus": 2, "avail_vcpus": [0, 1], "max_memkb": 262144, "target_memkb": 262144,
                   "kernel": "/boot/vmlinuz", "cmdline": "root=/dev/xvda1", "type.pv": {}},
        "disks": [{"vdev": "xvda", "pdev_path": "/img/g.raw", "format": "raw", "backend": "qdisk",
                   "readwrite": 1},
                  {"vdev": "xvdc", "format": "empty", "is_cdrom": 1}],
        "nics": [{"mac": "00:16:3e:00:00:01", "bridge": "br0", "nictype": "vif"}],
        "on_crash": "destroy",
    }
    for change in changes.values():
        change(config)
    return config


def pvh(config: dict[str, Any]) -> None:
    config["c_info"]["type"] = "pvh"
    config["b_info"]["type.pvh"] = config["b_info"].pop("type.pv")


def hvm(config: dict[str, Any]) -> None:
    config["c_info"]["type"] = "hvm"
    config["b_info"]["type.hvm"] = config["b_info"].pop("type.pv")
    for key in ("kernel", "cmdline"):  # libxl refuses direct-boot arguments without a kernel
        del config["b_info"][key]


DISK_LATER = ("libxl checks a disk (libxl__device_disk_setdefault) only when it adds the devices, "
              "after Xen made the domain, which it then destroys")
ACCEPTED, REFUSED, ABORTED = Outcome.ACCEPTED, Outcome.REFUSED, Outcome.ABORTED

CASES = [
    # -- accepted by both
    Case("pv guest", guest(), ACCEPTED),
    Case("pvh guest", guest(t=pvh), ACCEPTED),
    Case("hvm guest", guest(t=hvm), ACCEPTED),
    Case("upper-case enums, uuid and mac", guest(
        t=lambda c: c["c_info"].update(type="PV", uuid=c["c_info"]["uuid"].upper()),
        d=lambda c: c["disks"][0].update(format="RAW", backend="QDISK"),
        n=lambda c: c["nics"][0].update(mac="00:16:3E:00:00:01", nictype="VIF"),
        a=lambda c: c.update(on_crash="Restart")), ACCEPTED),
    Case("no max_memkb: libxl's 32 MiB default", guest(
        m=lambda c: [c["b_info"].pop(k) for k in ("max_memkb", "target_memkb")]), ACCEPTED),
    Case("max_vcpus 0: libxl's default of one", guest(
        v=lambda c: c["b_info"].update(max_vcpus=0, avail_vcpus=[0])), ACCEPTED),
    Case("a size given as a string is dropped by libxl's parser", guest(
        v=lambda c: c["b_info"].update(max_vcpus="2", avail_vcpus=[0])), ACCEPTED),
    Case("a second guest may share the nil uuid", guest(u=lambda c: c["c_info"].pop("uuid")), ACCEPTED),
    # -- refused by both: libxl's JSON parser
    Case("not a JSON object", "not a config", REFUSED),
    Case("unknown domain type", guest(t=lambda c: c["c_info"].update(type="kvm")), REFUSED),
    Case("bad uuid", guest(u=lambda c: c["c_info"].update(uuid="not-a-uuid")), REFUSED),
    Case("bad mac", guest(n=lambda c: c["nics"][0].update(mac="00:16:3e:zz:00:01")), REFUSED),
    Case("bad disk backend", guest(d=lambda c: c["disks"][0].update(backend="floppy")), REFUSED),
    Case("bad disk format", guest(d=lambda c: c["disks"][0].update(format="vmdk")), REFUSED),
    Case("bad nictype", guest(n=lambda c: c["nics"][0].update(nictype="e1000")), REFUSED),
    Case("bad on_crash action", guest(a=lambda c: c.update(on_crash="explode")), REFUSED),
    Case("bad tsc_mode", guest(b=lambda c: c["b_info"].update(tsc_mode="bogus")), REFUSED),
    Case("bad vga kind", guest(t=hvm, v=lambda c: c["b_info"]["type.hvm"].update(vga={"kind": "matrox"})),
         REFUSED),
    Case("bad bios", guest(t=hvm, v=lambda c: c["b_info"]["type.hvm"].update(bios="award")), REFUSED),
    Case("negative size", guest(m=lambda c: c["b_info"].update(max_memkb=-1)), REFUSED),
    # -- refused by both: libxl's checks before any hypercall
    Case("no b_info", {"c_info": {"type": "pv", "name": "g"}}, REFUSED),
    Case("hvm guest with a cmdline but no kernel", guest(t=hvm, c=lambda c: c["b_info"].update(cmdline="x")),
         REFUSED),
    Case("rombios with qemu-xen", guest(t=hvm, b=lambda c: c["b_info"]["type.hvm"].update(bios="rombios")),
         REFUSED),
    Case("rombios with qemu-xen-traditional", guest(
        t=hvm, b=lambda c: c["b_info"]["type.hvm"].update(bios="rombios"),
        d=lambda c: c["b_info"].update(device_model_version="qemu_xen_traditional")), ACCEPTED),
    Case("pci passthrough with populate-on-demand", guest(t=hvm, m=lambda c: c["b_info"].update(
        target_memkb=131072), p=lambda c: c.update(pcidevs=[{"func": 0, "dev": 2, "bus": 0, "domain": 0}])),
         REFUSED),
    Case("pci passthrough without populate-on-demand", guest(t=hvm, p=lambda c: c.update(
        pcidevs=[{"func": 0, "dev": 2, "bus": 0, "domain": 0}])), ACCEPTED),
    Case("populate-on-demand without passthrough", guest(t=hvm, m=lambda c: c["b_info"].update(
        target_memkb=131072)), ACCEPTED),
    Case("a cpupool this host does not have", guest(p=lambda c: c["c_info"].update(poolid=5)), REFUSED),
    # -- libxl 4.17 aborts; the sim refuses
    Case("no c_info.type", guest(t=lambda c: c["c_info"].pop("type")), ABORTED),
    Case("c_info.type not matching the b_info variant", guest(t=lambda c: c["c_info"].update(type="hvm")),
         ABORTED),
    Case("two b_info variants", guest(t=lambda c: c["b_info"].update({"type.hvm": {}})), ABORTED),
    Case("cpumap shorter than the host's cpu bitmap", guest(c=lambda c: c["b_info"].update(cpumap=[2])),
         ABORTED),
    Case("cpumap longer than the host's cpu bitmap", guest(c=lambda c: c["b_info"].update(cpumap=[20])),
         ABORTED),
    Case("cpumap as long as the host's cpu bitmap", guest(c=lambda c: c["b_info"].update(cpumap=[2, 15])),
         ACCEPTED),
    Case("the same pinning as vcpu_hard_affinity", guest(
        c=lambda c: c["b_info"].update(vcpu_hard_affinity=[[2], [2]])), ACCEPTED),
    # -- libxl passes these to Xen; a later stage refuses them (sim-only refusals, see ``later``)
    Case("pv guest without kernel or bootloader", guest(k=lambda c: c["b_info"].pop("kernel")), ACCEPTED,
         later="the PV domain builder has nothing to load, after Xen made the domain"),
    Case("pvh guest without kernel", guest(t=pvh, k=lambda c: c["b_info"].pop("kernel")), ACCEPTED,
         later="the PVH domain builder has nothing to load, after Xen made the domain"),
    Case("more vcpus than Xen allows a pv guest", guest(v=lambda c: c["b_info"].update(max_vcpus=1000)),
         ACCEPTED, later="Xen's createdomain refuses max_vcpus beyond its limit (the hypercall itself)"),
    Case("more vcpus than Xen allows an hvm guest",
         guest(t=hvm, v=lambda c: c["b_info"].update(max_vcpus=200)), ACCEPTED,
         later="Xen's createdomain refuses max_vcpus beyond HVM_MAX_VCPUS (the hypercall itself)"),
    Case("target above max_memkb", guest(m=lambda c: c["b_info"].update(target_memkb=10**9)), ACCEPTED,
         later="Xen refuses to populate memory beyond the maximum libxl sets after createdomain"),
    Case("no name", guest(n=lambda c: c["c_info"].pop("name")), ACCEPTED,
         later="libxl names the domain in xenstore only after createdomain and refuses a missing name there"),
    Case("disk without vdev", guest(d=lambda c: c["disks"][0].pop("vdev")), ACCEPTED, later=DISK_LATER),
    Case("disk without pdev_path", guest(d=lambda c: c["disks"][0].pop("pdev_path")), ACCEPTED,
         later=DISK_LATER),
    Case("empty disk that is not a cdrom", guest(d=lambda c: c["disks"][0].update(format="empty")), ACCEPTED,
         later=DISK_LATER),
    Case("two disks on one vdev", guest(d=lambda c: c["disks"].append(dict(c["disks"][0]))), ACCEPTED,
         later=DISK_LATER + " (the second finds the first's xenstore entries)"),
    Case("avail_vcpus beyond max_vcpus", guest(v=lambda c: c["b_info"].update(max_vcpus=1)), ACCEPTED,
         later="UNVERIFIED on real Xen: libxl lets it through to Xen; the sim refuses it"),
    Case("two nics with one mac", guest(n=lambda c: c["nics"].append(dict(c["nics"][0]))), ACCEPTED,
         later="UNVERIFIED on real Xen: libxl lets it through to Xen; the sim refuses it"),
]


# ---- running a create on each backend -----------------------------------------------------------

def shim_like_host() -> SimHost:
    return SimHost(total_memory_kib=1024 * GIB_KIB, nr_cpus=SHIM_CPUS)


def sim_outcome(config: Any, host: SimHost | None = None) -> tuple[Outcome, str]:
    """What ``SimHost.create`` does with ``config``: a refusal must be permanent, nothing else raised."""
    host = host or shim_like_host()
    try:
        host.create(copy.deepcopy(config), paused=True)
    except BackendError as err:
        assert not err.transient, f"a config refusal must be permanent: {err}"
        return Outcome.REFUSED, str(err)
    return Outcome.ACCEPTED, ""


def libxl_outcome(answer: dict[str, Any]) -> tuple[Outcome, str]:
    if answer["outcome"] == "hypervisor":
        return Outcome.ACCEPTED, ""
    if answer["outcome"] == "aborted":
        return Outcome.ABORTED, answer["signal"]
    assert answer["outcome"] == "refused", answer  # "created" cannot happen without Xen
    assert answer["transient"] is False, f"a config refusal must be permanent: {answer['error']}"
    return Outcome.REFUSED, answer["error"]


def real_libxl() -> None:
    if _MISSING:
        pytest.skip(_MISSING)


@functools.cache
def real_outcomes(key: str) -> dict[str, tuple[Outcome, str]]:
    """One subprocess per group of configs (``CASES``, built, enums): id -> real libxl's outcome."""
    configs = GROUPS[key]()
    answers = realxl.create_outcomes(list(configs.values()))
    return {name: libxl_outcome(a) for name, a in zip(configs, answers, strict=True)}


def outcome_on(backend: str, group: str, name: str, config: Any) -> tuple[Outcome, str]:
    if backend == "sim":
        return sim_outcome(config)
    real_libxl()
    return real_outcomes(group)[name]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_create(case: Case, backend: str) -> None:
    outcome, detail = outcome_on(backend, "cases", case.id, case.config)
    expected = case.libxl if backend == "libxl" else case.sim
    assert outcome is expected, f"{backend}: {outcome} ({detail}), libxl 4.17 {case.libxl}"


# ---- every config the project builds -------------------------------------------------------------

REALWORLD = Path(__file__).parent / "data" / "realworld"


def _realworld_domains() -> list[tuple[Path, Any]]:
    """The real-world xl.cfg and xm files (MANIFEST.tsv), as the desired loader would read them."""
    from libxl.domain.formats.xl import parse_xl
    from libxl.domain.formats.xm import parse_xm

    parse = {"xl": parse_xl, "xm": parse_xm}
    rows = [line.split("\t") for line in (REALWORLD / "MANIFEST.tsv").read_text().splitlines()[1:]]
    return [(REALWORLD / row[0], lambda path, kind=row[-1]: parse[kind]((path).read_text(), str(path)))
            for row in rows]


def built_configs() -> dict[str, Any]:
    """The builder's config for every example, libvirt corpus and real-world guest (what the agent
    really sends)."""
    from libxl.domain.formats.load import load_domain_file
    from libxl.errors import ConfigError
    from libxl.frontends.libvirt import build_config

    examples = Path(__file__).resolve().parent.parent / "examples" / "desired"
    paths = [(p, load_domain_file) for p in sorted(examples.glob("*.xml")) + sorted(examples.glob("*.cfg"))]
    if realxl.SHARED.is_dir():
        paths += [(p, load_domain_file) for p in sorted((realxl.SHARED / "corpus").glob("*/*.xml"))]
    paths += _realworld_domains()
    configs = {}
    for path, load in paths:
        try:
            configs[str(path)] = build_config(load(path), xsdata={OWNER_KEY: "contract"})
        except ConfigError:
            continue  # the corpora hold files the converter refuses; they are never sent
    return configs


#: Guests the converter builds that libxl does not accept, each reported to the lead: every other
#: built guest must be accepted by both backends, these refused by the sim and given libxl's answer.
POD_WITH_IOMMU = ("populate-on-demand (memory < maxmem, HVM) with an IOMMU in use: libxl refuses it "
                  "before any hypercall")
KNOWN_BUILT: dict[str, tuple[Outcome, str]] = {
    "corpus/xmconfigdata/test-pci-devs.xml": (REFUSED, POD_WITH_IOMMU),
    "corpus/xlconfigdata/test-fullvirt-hypervisor-features.xml": (REFUSED, POD_WITH_IOMMU),
}


def known_built(name: str) -> Outcome | None:
    return next((outcome for key, (outcome, _) in KNOWN_BUILT.items() if name.endswith(key)), None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_built_config_gets_libxls_answer(backend: str) -> None:
    configs = built_configs()
    assert len(configs) >= 5
    if realxl.SHARED.is_dir():
        assert sum(known_built(n) is not None for n in configs) == len(KNOWN_BUILT), "a file above is gone"
    if backend == "sim":  # a host each, as on the libxl side: guests may fix the same display port
        outcomes = {name: sim_outcome(config) for name, config in configs.items()}
    else:
        real_libxl()
        outcomes = real_outcomes("built")
    expected = {n: known_built(n) or ACCEPTED for n in configs}
    if backend == "sim":
        expected = {n: ACCEPTED if o is ACCEPTED else REFUSED for n, o in expected.items()}
    assert {n: (o, d) for n, (o, d) in outcomes.items() if o is not expected[n]} == {}


# ---- every enum value libxl knows, in any case ---------------------------------------------------

def _variant(value: str) -> Callable[[dict[str, Any]], Any]:
    return {"pvh": pvh, "hvm": hvm}.get(value.lower(), lambda c: None)


#: Each enum-typed field the sim checks: libxl's enum type, and a guest with a value there.
ENUM_FIELDS: dict[str, tuple[str, Callable[[str], dict[str, Any]]]] = {
    "disks[].backend": ("disk_backend", lambda v: guest(x=lambda c: c["disks"][0].update(backend=v))),
    "disks[].format": ("disk_format", lambda v: guest(x=lambda c: c["disks"][0].update(format=v))),
    "nics[].nictype": ("nic_type", lambda v: guest(x=lambda c: c["nics"][0].update(nictype=v))),
    "on_crash": ("action_on_shutdown", lambda v: guest(x=lambda c: c.update(on_crash=v))),
    "b_info.tsc_mode": ("tsc_mode", lambda v: guest(x=lambda c: c["b_info"].update(tsc_mode=v))),
    "b_info.type.hvm.vga.kind": ("vga_interface_type", lambda v: guest(
        t=hvm, x=lambda c: c["b_info"]["type.hvm"].update(vga={"kind": v}))),
    "b_info.type.hvm.bios": ("bios_type", lambda v: guest(
        t=hvm, x=lambda c: c["b_info"]["type.hvm"].update(bios=v))),
    "c_info.type": ("domain_type", lambda v: guest(t=_variant(v), x=lambda c: c["c_info"].update(type=v))),
}


def libxl_enum_values(kind: str) -> list[str]:
    """``libxl_<kind>``'s values from the installed header, as libxl spells them in JSON."""
    text = _TYPES_HEADER.read_text()
    body = re.search(rf"typedef enum libxl_{kind} \{{(.*?)\}} libxl_{kind};", text, re.S)
    assert body, f"libxl_{kind} not in {_TYPES_HEADER}"
    prefix = f"LIBXL_{kind.upper()}_"
    return [name[len(prefix):].lower() for name in re.findall(r"\b(LIBXL_\w+)\s*=", body.group(1))]


#: Values with conditions of their own (cases above): not a guest type; an empty disk must be a
#: cdrom; rombios needs qemu-xen-traditional.
SPECIAL_ENUM_VALUES = {("domain_type", "invalid"), ("disk_format", "empty"), ("bios_type", "rombios")}


def enum_configs() -> dict[str, Any]:
    """A guest per (field, value libxl knows), the value upper-cased (libxl ignores case)."""
    return {f"{field}={value}": make(value.upper())
            for field, (kind, make) in ENUM_FIELDS.items() for value in libxl_enum_values(kind)
            if (kind, value) not in SPECIAL_ENUM_VALUES}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_libxl_enum_value_is_accepted_in_any_case(backend: str) -> None:
    """The sim's enum lists are libxl's: a value libxl knows (upper-cased here) is never refused."""
    if not _TYPES_HEADER.is_file():
        pytest.skip(f"{_TYPES_HEADER} is absent (Debian: libxen-dev): no libxl enum lists to compare")
    configs = enum_configs()
    assert len(configs) > 30
    if backend == "sim":
        outcomes = {name: sim_outcome(config) for name, config in configs.items()}
    else:
        real_libxl()
        outcomes = real_outcomes("enums")
    assert {n: d for n, (o, d) in outcomes.items() if o is not Outcome.ACCEPTED} == {}


GROUPS: dict[str, Callable[[], dict[str, Any]]] = {
    "cases": lambda: {c.id: c.config for c in CASES},
    "built": built_configs,
    "enums": enum_configs,
}


# ---- what is read back ---------------------------------------------------------------------------

def test_the_sim_reads_a_config_back_as_libxl_keeps_it() -> None:
    """Every field sent comes back from the sim exactly as libxl's parser keeps it (enum, uuid and
    mac case lowered, a wrongly typed value gone), so a diff against the sim sees what it would see
    against libxl."""
    real_libxl()
    sent = guest(
        t=lambda c: c["c_info"].update(type="PV", uuid=c["c_info"]["uuid"].upper()),
        d=lambda c: c["disks"][0].update(format="RAW", backend="QDISK"),
        n=lambda c: c["nics"][0].update(mac="00:16:3E:00:00:01", nictype="VIF"),
        a=lambda c: c.update(on_crash="Restart"),
        v=lambda c: c["b_info"].update(video_memkb="8192"))
    [kept] = realxl.roundtrip([sent])
    real = realxl.flatten(kept["json"])
    host = SimHost()
    sim = realxl.flatten(host.domain_config(host.create(copy.deepcopy(sent))))
    paths = realxl.flatten(sent)
    assert {p: (sim.get(p), real.get(p)) for p in paths if sim.get(p) != real.get(p)} == {}


# ---- the host --------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_host_info(backend: str) -> None:
    if backend == "sim":
        info = SimHost().host_info()
        facts = {"total_memory_kib": info.total_memory_kib, "free_memory_kib": info.free_memory_kib,
                 "nr_cpus": info.nr_cpus, "xen_version": info.xen_version,
                 "xen_commandline": info.extra["xen_commandline"]}
    else:
        real_libxl()
        facts = realxl.run_under_shim({"op": "host_facts"})
    assert 0 < facts["free_memory_kib"] <= facts["total_memory_kib"]
    assert facts["nr_cpus"] > 0 and facts["xen_version"].startswith("4.17.")
    assert isinstance(facts["xen_commandline"], str)


# ---- domains that are there, and one that is not ---------------------------------------------------

NIL_UUID = "00000000-0000-0000-0000-000000000000"
#: Every operation on an existing domain, with arguments that would be fine for a real one.
DOMAIN_CALLS: dict[str, tuple[Any, ...]] = {
    "unpause": (), "pause": (), "destroy": (), "domain_config": (), "shutdown": (1.0,),
    "disk_add": ({"vdev": "xvdb", "pdev_path": "/x", "format": "raw", "backend": "qdisk"},),
    "disk_remove": ({"vdev": "xvdb", "pdev_path": "/x", "format": "raw", "backend": "qdisk"},),
    "nic_add": ({"mac": "00:16:3e:00:00:02"},), "nic_remove": ({"mac": "00:16:3e:00:00:02", "devid": 0},),
    "cdrom_insert": ({"vdev": "xvdc", "format": "empty", "is_cdrom": 1, "backend": "qdisk"},),
    "set_memory_target": (131072,), "set_vcpus_online": (1,),
}
#: A domid no domain has on either host.
UNKNOWN = 42


@functools.cache
def real_calls() -> dict[str, dict[str, Any]]:
    """The real binding's answers (one subprocess) to ``list_domains`` and ``DOMAIN_CALLS`` on
    ``UNKNOWN``, keyed by method."""
    calls = [["list_domains"], *([name, UNKNOWN, *args] for name, args in DOMAIN_CALLS.items())]
    return {call[0]: answer for call, answer in zip(calls, realxl.call_outcomes(calls), strict=True)}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_fresh_host_lists_domain0_alone(backend: str) -> None:
    if backend == "sim":
        import dataclasses

        rows = [dataclasses.asdict(row) for row in SimHost().list_domains()]
    else:
        real_libxl()
        answer = real_calls()["list_domains"]
        assert answer["outcome"] == "returned", answer
        rows = answer["value"]
    [dom0] = rows
    assert {k: dom0[k] for k in ("name", "domid", "uuid", "state", "owner", "shutdown_reason")} == {
        "name": "Domain-0", "domid": 0, "uuid": NIL_UUID, "state": "running", "owner": None,
        "shutdown_reason": None}
    assert dom0["memory_kib"] > 0 and dom0["vcpus_online"] == dom0["vcpus_max"] > 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("operation", list(DOMAIN_CALLS))
def test_an_unknown_domain_is_a_permanent_not_found(operation: str, backend: str) -> None:
    """Whatever libxl's own path to the failure (``unable to get domain type``, a userdata lock, a
    hypercall's ESRCH), the caller learns the one thing that matters: the domain is not there, and
    retrying will not bring it back."""
    if backend == "sim":
        with pytest.raises(BackendError) as err:
            getattr(SimHost(), operation)(UNKNOWN, *DOMAIN_CALLS[operation])
        error, transient = str(err.value), err.value.transient
    else:
        real_libxl()
        answer = real_calls()[operation]
        assert answer["outcome"] == "refused", answer
        error, transient = answer["error"], answer["transient"]
    assert "ERROR_DOMAIN_NOTFOUND" in error and not transient, error


# ---- sim-only: what the real binding cannot do without Xen ---------------------------------------

@pytest.mark.parametrize("operation", ["pause", "destroy", "shutdown", "domain_config"])
def test_sim_only_domain0_is_not_an_operations_target(operation: str) -> None:
    """(Under the shim, domain 0's pause is not modelled: the call aborts rather than guess.)"""
    with pytest.raises(BackendError, match="domain 0") as err:
        getattr(SimHost(), operation)(0, *DOMAIN_CALLS[operation])
    assert not err.value.transient


def test_sim_only_a_name_in_use_is_refused_once_created() -> None:
    """libxl checks name uniqueness in xenstore after createdomain (beyond the shim)."""
    host = SimHost()
    host.create(guest())
    another_uuid = {"u": lambda c: c["c_info"].update(uuid="5a1e2c3d-0000-4000-8000-00000000000b")}
    assert sim_outcome(guest(**another_uuid), host)[0] is Outcome.REFUSED
    assert sim_outcome(guest(**another_uuid, n=lambda c: c["c_info"].update(name="Domain-0")),
                       host)[0] is Outcome.REFUSED
    assert sim_outcome(guest(**another_uuid, n=lambda c: c["c_info"].update(name="h")), host)[0] is ACCEPTED


def test_a_cpuset_is_built_per_vcpu_and_libxl_takes_it() -> None:
    """``<vcpu cpuset>`` as b_info.cpumap (libvirt's driver allocates it at the host's size, but
    read from JSON it is only as long as its highest cpu) makes libxl 4.17 assert in
    libxl_bitmap_copy and kill the agent: it is written per vCPU, as xl writes ``cpus=``, with
    ``<vcpupin>`` winning for the vCPUs it names."""
    from libxl.domain.formats.domxml import parse_domain_xml
    from libxl.frontends.libvirt import build_config

    dom = parse_domain_xml("<domain type='xen'><name>p</name><memory>131072</memory>"
                           "<vcpu cpuset='2-3'>3</vcpu><cputune><vcpupin vcpu='0' cpuset='1'/></cputune>"
                           "<os><type>xen</type><kernel>/k</kernel></os></domain>")
    config = build_config(dom, xsdata={OWNER_KEY: "contract"})
    assert "cpumap" not in config["b_info"]
    assert config["b_info"]["vcpu_hard_affinity"] == [[1], [2, 3], [2, 3]]
    assert sim_outcome(config) == (ACCEPTED, "")
    real_libxl()
    (answer,) = realxl.create_outcomes([config])
    assert libxl_outcome(answer) == (ACCEPTED, "")
