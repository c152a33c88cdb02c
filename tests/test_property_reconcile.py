"""Property: for random desired sets, random starting hosts and random policies, one apply converges
(a fresh plan is empty, nothing failed) and no domain the agent does not own is touched.

Desired files go through the whole pipeline (domain XML -> model -> libxl JSON); the starting host
mixes owned, unowned and foreign-owned guests in every power state (running, paused, crashed,
shut down, ignoring shutdown requests), with configs that may differ from the desired ones in hot
and restart-required fields, plus broken files and duplicate names.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as s
from reconcile_fixtures import domain_xml, uuid_for

from libxl.domain.formats.domxml import parse_domain_xml
from libxl.frontends.libvirt import build_config
from libxl.hosts.sim import SimHost
from reconcilers.apply import Reconciler, for_create
from reconcilers.desired import load_desired
from reconcilers.policy import Policy

OWNER = "prop-agent"
NAMES = ("a", "b", "c", "d")
#: Names only the starting host uses (never desired): prune candidates and bystanders.
HOST_ONLY = ("x", "y")
MACS = ("00:16:3e:00:00:01", "00:16:3e:00:00:02", "00:16:3e:00:00:03")
#: Cases per run; raise it for a soak (``XENRECONCILE_PROPERTY_EXAMPLES=5000``).
EXAMPLES = int(os.environ.get("XENRECONCILE_PROPERTY_EXAMPLES", "300"))
PRESERVE = "<on_poweroff>preserve</on_poweroff><on_crash>preserve</on_crash>"


HOT_FIELDS = ("current_mib", "current_vcpus", "disks", "macs", "memory_mib", "cpuset", "shares")
RESTART_FIELDS = ("kernel", "vcpus", "uuid", "lifecycle")


@s.composite
def guest(draw: s.DrawFn, name: str) -> dict[str, Any]:
    """Keyword arguments of ``domain_xml`` for a random small PV guest."""
    memory = draw(s.sampled_from([256, 512, 1024]))
    vcpus = draw(s.integers(1, 4))
    return {
        "name": name,
        "uuid": draw(s.sampled_from([uuid_for(name), uuid_for(name + "-other")])),
        "memory_mib": memory,
        "current_mib": draw(s.none() | s.sampled_from([m for m in (128, 256, 512) if m <= memory])),
        "vcpus": vcpus,
        "current_vcpus": draw(s.none() | s.integers(1, vcpus)),
        "kernel": draw(s.sampled_from(["/boot/vmlinuz", "/boot/vmlinuz-new"])),
        "disks": tuple(draw(s.lists(s.sampled_from(["xvda", "xvdb", "xvdc"]), min_size=1, max_size=3,
                                    unique=True))),
        "macs": tuple(draw(s.lists(s.sampled_from(MACS), max_size=2, unique=True))),
        "lifecycle": draw(s.sampled_from(["", PRESERVE])),
        "cpuset": draw(s.sampled_from([None, "0", "1-2", "0,3"])),
        "shares": draw(s.sampled_from([None, 128, 512])),
    }


@s.composite
def variant(draw: s.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` with a few fields redrawn: mostly hot ones, sometimes restart-required ones."""
    other = draw(guest(base["name"]))
    fields = draw(s.lists(s.sampled_from(HOT_FIELDS + RESTART_FIELDS), max_size=2, unique=True))
    out = {**base, **{f: other[f] for f in fields}}
    if (out["current_mib"] or 0) > out["memory_mib"]:  # keep current values within the maximum
        out["current_mib"] = None
    if (out["current_vcpus"] or 0) > out["vcpus"]:
        out["current_vcpus"] = None
    return out


@s.composite
def scenario(draw: s.DrawFn) -> tuple[list[tuple[str, str]], list[tuple[str, str, str | None, str]]]:
    """Desired files (file name, text) and starting guests (name, xml, owner marker, state).

    Desired names are mostly unique, with an occasional second file for a name (a conflict) and an
    occasional broken file. Host guests use desired names and names of their own; a host guest with
    a desired name is often a variant of the desired guest, so hot and restart diffs both occur.
    """
    names = draw(s.lists(s.sampled_from(NAMES), max_size=len(NAMES), unique=True))
    specs = {n: draw(guest(n)) for n in names}
    files = []
    for i, name in enumerate(names):
        text = domain_xml(**specs[name], power=draw(s.sampled_from([None, "running", "paused", "stopped"])))
        if draw(s.integers(0, 9)) == 0:
            text = text.replace("</domain>", "")
        files.append((f"f{i}.xml", text))
    if names and draw(s.integers(0, 9)) == 0:
        files.append(("dup.xml", domain_xml(**draw(guest(draw(s.sampled_from(names)))))))
    guests = []
    for name in draw(s.lists(s.sampled_from(NAMES + HOST_ONLY), max_size=5, unique=True)):
        state = draw(s.sampled_from(["running", "running", "paused", "crashed", "shutdown", "unresponsive"]))
        spec = draw(variant(specs[name])) if name in specs and draw(s.booleans()) else draw(guest(name))
        if state in ("crashed", "shutdown"):
            spec = {**spec, "lifecycle": PRESERVE}  # so the remains stay listed
        owner = draw(s.sampled_from([OWNER, OWNER, None, "someone-else"]))
        guests.append((name, domain_xml(**spec), owner, state))
    return files, guests


policies = s.builds(Policy, prune=s.sampled_from(["none", "shutdown", "destroy"]),
                    restart=s.sampled_from(["never", "always"]), allow_empty=s.booleans(), adopt=s.booleans(),
                    shutdown_timeout=s.just(0.0), owner=s.just(OWNER))


def start_host(guests: list[tuple[str, str, str | None, str]]) -> SimHost:
    host = SimHost(shutdown_delay=0.0)
    for _name, xml, owner, state in guests:
        config = build_config(parse_domain_xml(xml))
        if owner is not None:
            config = for_create(config, owner)
        domid = host.create(config, paused=state == "paused")
        if state == "crashed":
            host.crash(domid)
        elif state == "shutdown":
            host.shutdown_from_inside(domid, "poweroff")
        elif state == "unresponsive":
            host.set_unresponsive(domid)
    return host


def fingerprint(host: SimHost, domid: int) -> tuple[object, ...]:
    info = next((i for i in host.list_domains() if i.domid == domid), None)
    if info is None:
        return ("gone",)
    return (info.state, info.memory_kib, info.vcpus_online, host.domain_config(domid))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenario(), policy=policies)
def test_apply_converges_and_never_touches_unowned_domains(case, policy) -> None:
    files, guests = case
    host = start_host(guests)
    unowned = {i.domid: i.name for i in host.list_domains() if i.domid != 0 and i.owner != OWNER}
    before = {domid: fingerprint(host, domid) for domid in unowned}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "desired"
        directory.mkdir()
        for file_name, text in files:
            (directory / file_name).write_text(text)
        desired = load_desired(directory)
        reconciler = Reconciler(host, policy, Path(tmp) / "state")
        results = reconciler.reconcile_all(desired)
        for kind in {a.kind for r in results for a in r.applied} | {n.kind for r in results for n in r.notes}:
            event(kind)
        assert [r.error for r in results if not r.ok] == []
        after = reconciler.plan(desired)
        assert [(a.domain, a.kind, a.reason) for a in after.actions] == []
        second = reconciler.reconcile_all(desired)
        assert [a for r in second for a in r.applied] == []
    adoptable = set(desired.domains) if policy.adopt else set()
    for domid, name in unowned.items():
        if name not in adoptable:
            assert fingerprint(host, domid) == before[domid], f"unowned {name} (domid {domid}) was touched"
