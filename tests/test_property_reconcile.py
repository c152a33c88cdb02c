"""Property: for random desired sets, random starting hosts and random policies, one apply converges
(a fresh plan is empty, nothing failed) and no domain the agent does not own is touched.

Desired files go through the whole pipeline (domain XML -> model -> libxl JSON); the starting host
mixes owned, unowned and foreign-owned guests in every power state (running, paused, crashed,
shut down, ignoring shutdown requests), with configs that may differ from the desired ones in hot
and restart-required fields, plus broken files and duplicate names.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as s
from reconcile_fixtures import domain_xml, uuid_for

from libxl.config import build_config
from libxl.formats.domxml import parse_domain_xml
from libxl.sim import SimHost
from reconcilers.apply import Reconciler, with_owner
from reconcilers.desired import load_desired
from reconcilers.policy import Policy

OWNER = "prop-agent"
NAMES = ("a", "b", "c", "d")
#: Names only the starting host uses (never desired): prune candidates and bystanders.
HOST_ONLY = ("x", "y")
MACS = ("00:16:3e:00:00:01", "00:16:3e:00:00:02", "00:16:3e:00:00:03")
PRESERVE = "<on_poweroff>preserve</on_poweroff><on_crash>preserve</on_crash>"


@dataclass(frozen=True)
class Guest:
    name: str
    xml: str


@s.composite
def guest_xml(draw: s.DrawFn, name: str, *, power: bool, preserve: bool = False) -> str:
    """A random guest; ``preserve`` keeps it listed after a crash or shutdown."""
    memory = draw(s.sampled_from([256, 512, 1024]))
    vcpus = draw(s.integers(1, 4))
    return domain_xml(
        name,
        uuid=draw(s.sampled_from([uuid_for(name), uuid_for(name + "-other")])),
        memory_mib=memory,
        current_mib=draw(s.none() | s.sampled_from([m for m in (128, 256, 512) if m <= memory])),
        vcpus=vcpus,
        current_vcpus=draw(s.none() | s.integers(1, vcpus)),
        kernel=draw(s.sampled_from(["/boot/vmlinuz", "/boot/vmlinuz-new"])),
        disks=tuple(draw(s.lists(s.sampled_from(["xvda", "xvdb", "xvdc"]), min_size=1, max_size=3,
                                 unique=True))),
        macs=tuple(draw(s.lists(s.sampled_from(MACS), max_size=2, unique=True))),
        power=draw(s.sampled_from([None, "running", "paused", "stopped"])) if power else None,
        lifecycle=PRESERVE if preserve else draw(s.sampled_from(["", PRESERVE])),
    )


@s.composite
def desired_files(draw: s.DrawFn) -> list[tuple[str, str]]:
    """(file name, text): names may repeat (conflicts), some files are broken."""
    files = []
    for i in range(draw(s.integers(0, 5))):
        name = draw(s.sampled_from(NAMES))
        text = draw(guest_xml(name, power=True))
        if draw(s.integers(0, 9)) == 0:
            text = text.replace("</domain>", "")
        files.append((f"f{i}.xml", text))
    return files


@s.composite
def host_guests(draw: s.DrawFn) -> list[tuple[str, str, str | None, str]]:
    """(name, xml, owner marker, state) of the starting host, unique names."""
    out = []
    for name in draw(s.lists(s.sampled_from(NAMES + HOST_ONLY), max_size=5, unique=True)):
        state = draw(s.sampled_from(["running", "paused", "crashed", "shutdown", "unresponsive"]))
        xml = draw(guest_xml(name, power=False, preserve=state in ("crashed", "shutdown")))
        out.append((name, xml, draw(s.sampled_from([OWNER, None, "someone-else"])), state))
    return out


policies = s.builds(Policy, prune=s.sampled_from(["none", "shutdown", "destroy"]),
                    restart=s.sampled_from(["never", "always"]), allow_empty=s.booleans(), adopt=s.booleans(),
                    shutdown_timeout=s.just(0.0), owner=s.just(OWNER))


def start_host(guests: list[tuple[str, str, str | None, str]]) -> SimHost:
    host = SimHost(shutdown_delay=0.0)
    for _name, xml, owner, state in guests:
        config = build_config(parse_domain_xml(xml))
        if owner is not None:
            config = with_owner(config, owner)
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


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=desired_files(), guests=host_guests(), policy=policies)
def test_apply_converges_and_never_touches_unowned_domains(files, guests, policy) -> None:
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
        for kind in sorted({a.kind for r in results for a in r.applied} | {n.kind for r in results for n in r.notes}):
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
