"""Autoballooning on the simulated host: dom0 shrinks for a guest that does not fit, or the create
fails with the memory needed and free."""

from __future__ import annotations

from pathlib import Path

import pytest

from libxl.errors import BackendError
from libxl.frontends.hostsettings import HostSettings
from libxl.hosts.backend import HostInfo
from libxl.hosts.balloon import MIN_DOM0_KIB, AutoballoonBackend, has_dom0_mem, memory_needed
from libxl.hosts.sim import GIB_KIB, SimHost
from libxl.hosts.uri import open_backend
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy

MIB = 1024


def guest(name: str = "big", mib: int = 1024) -> dict:
    return {"c_info": {"name": name, "type": "pvh"},
            "b_info": {"max_memkb": mib * MIB, "target_memkb": mib * MIB, "shadow_memkb": 4 * MIB,
                       "kernel": "/k"}}


def full_host(**kwargs: object) -> SimHost:
    """4 GiB, dom0 booted with 3.5 GiB of it: 512 MiB free, like a host without dom0_mem=."""
    return SimHost(total_memory_kib=4 * GIB_KIB, dom0_memory_kib=3584 * MIB, **kwargs)  # type: ignore[arg-type]


def dom0_kib(host: SimHost) -> int:
    return next(d.memory_kib for d in host.list_domains() if d.domid == 0)


def test_memory_needed_is_libxls_estimate() -> None:
    # target + shadow + 2 MiB PVH overhead, rounded up to 2 MiB
    assert memory_needed(guest(mib=1024)) == 1024 * MIB + 4 * MIB + 2 * MIB
    pv = {"c_info": {"type": "pv"}, "b_info": {"max_memkb": 1000}}
    assert memory_needed(pv) == 2048  # 1000 + 1024 rounds up to 2 MiB


def test_on_shrinks_dom0_by_what_the_guest_needs() -> None:
    sim = full_host()
    need, free = memory_needed(guest()), sim.host_info().free_memory_kib
    domid = AutoballoonBackend(sim, "on").create(guest())
    assert dom0_kib(sim) == 3584 * MIB - (need - free)
    assert [d.name for d in sim.list_domains() if d.domid == domid] == ["big"]


def test_a_guest_that_fits_leaves_dom0_alone() -> None:
    sim = full_host()
    AutoballoonBackend(sim, "on").create(guest(mib=256))
    assert dom0_kib(sim) == 3584 * MIB


def test_off_fails_with_memory_needed_and_free() -> None:
    sim = full_host()
    with pytest.raises(BackendError) as err:
        AutoballoonBackend(sim, "off").create(guest())
    need = memory_needed(guest())
    assert err.value.message == (f"not enough free memory for big: needs {need} KiB, {512 * MIB} KiB free, "
                                 "and dom0 is not ballooned (autoballoon is off)")
    assert dom0_kib(sim) == 3584 * MIB and [d.name for d in sim.list_domains()] == ["Domain-0"]


@pytest.mark.parametrize("cmdline, ballooned", [("", True), ("console=com1 dom0_mem=3584M,max:3584M", False),
                                                ("dom0_max_vcpus=2", True)])
def test_auto_is_off_when_xen_fixes_dom0_mem(cmdline: str, ballooned: bool) -> None:
    assert has_dom0_mem(cmdline) is not ballooned
    uri = f"test:///default?memory_mib=4096&dom0_memory_mib=3584&xen_cmdline={cmdline.replace('=', '%3D')}"
    host = open_backend(uri, host=HostSettings(autoballoon="auto"))
    if ballooned:
        host.create(guest())
        assert dom0_kib(host.backend) < 3584 * MIB
    else:
        with pytest.raises(BackendError, match="Xen's command line sets dom0_mem="):
            host.create(guest())


def test_impossible_says_how_far_dom0_can_go() -> None:
    sim = full_host()
    with pytest.raises(BackendError) as err:
        AutoballoonBackend(sim, "on").create(guest(mib=4000))
    spare = 3584 * MIB - MIN_DOM0_KIB
    assert f"floor frees only {spare} KiB more" in err.value.message
    assert err.value.transient  # another guest stopping may make room: the agent retries


def test_sim_refuses_dom0_below_libxls_floor() -> None:
    with pytest.raises(BackendError, match="for dom0 not within"):
        full_host().set_memory_target(0, MIN_DOM0_KIB - 1)


class LaggingBalloon:
    """A host whose dom0 hands memory back one step per look, as a real balloon driver does."""

    def __init__(self, steps: int) -> None:
        self.sim, self.steps, self.freed = full_host(), steps, 0

    def host_info(self) -> HostInfo:
        info = self.sim.host_info()
        if self.freed < self.steps:
            self.freed += 1
            info.free_memory_kib = 512 * MIB  # not yet
        return info

    def __getattr__(self, name: str) -> object:
        return getattr(self.sim, name)


def test_waits_for_the_balloon_driver() -> None:
    slow = LaggingBalloon(steps=4)
    naps: list[float] = []
    wrapped = AutoballoonBackend(slow, "on", wait=30, poll=0.5, sleep=naps.append,
                                 clock=lambda: len(naps) * 0.5)
    wrapped.create(guest())
    assert naps == [0.5, 0.5, 0.5]  # the first look is before ballooning, then three more before it arrives


def test_gives_up_after_the_wait() -> None:
    naps: list[float] = []
    wrapped = AutoballoonBackend(LaggingBalloon(steps=10**6), "on", wait=2, poll=0.5, sleep=naps.append,
                                 clock=lambda: len(naps) * 0.5)
    with pytest.raises(BackendError, match=r"after 2 s only 524288 KiB of the \d+ KiB needed are free"):
        wrapped.create(guest())


def test_the_reconciler_creates_through_the_balloon(tmp_path: Path) -> None:
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "big.cfg").write_text('name = "big"\ntype = "pvh"\nkernel = "/k"\nmemory = 1024\n')
    for mode, ok in (("off", False), ("on", True)):
        uri = f"test://{tmp_path}/{mode}.json?memory_mib=4096&dom0_memory_mib=3584"
        backend = open_backend(uri, host=HostSettings(autoballoon=mode))
        result = Reconciler(backend, Policy(), tmp_path / f"state-{mode}").reconcile_all(
            load_desired(desired, security=None))[0]
        assert result.ok is ok, result.error
        if not ok:
            assert "needs" in (result.error or "") and "KiB free" in (result.error or "")
