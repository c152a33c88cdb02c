"""The native libxl binding: built by `pip install` when libxen-dev is present, and a clear
sentence (never a traceback from deep inside cffi) when xen:///system cannot work here."""

from __future__ import annotations

import os
import sys

import pytest

from libxl.errors import BackendUnavailable
from libxl.hosts.binding import host

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "libxl", "hosts", "binding"))
from build_ffi import API_VERSION, headers_available  # noqa: E402

sys.path.pop(0)

NO_HEADERS = "libxl headers not installed (Debian: apt-get install libxen-dev; .ci/run does)"


@pytest.mark.skipif(not headers_available(), reason=NO_HEADERS)
def test_binding_was_built_and_imports() -> None:
    from libxl.hosts.binding import _libxl

    assert API_VERSION == "0x041300"
    for name in ("libxl_domain_config_from_json", "libxl_domain_create_new", "libxl_set_vcpuonline",
                 "libxl_set_vcpuaffinity", "libxl_domain_sched_params_set", "libxl_domain_setmaxmem",
                 "libxl_list_vcpu",
                 "libxl_evenable_domain_death", "xr_ctx_alloc", "xr_wait_event"):
        assert hasattr(_libxl.lib, name), name


@pytest.mark.skipif(not headers_available(), reason=NO_HEADERS)
@pytest.mark.skipif(any(os.path.exists(p) for p in ("/dev/xen/privcmd", "/proc/xen/privcmd")),
                    reason="this machine runs on Xen: the no-hypervisor error cannot happen")
def test_no_hypervisor_is_one_clear_sentence() -> None:
    with pytest.raises(BackendUnavailable) as info:
        host.open_real_host()
    message = str(info.value)
    assert message.startswith("no Xen hypervisor here: cannot open /dev/xen/privcmd")
    assert "cannot open libxc handle" in message  # libxl's own log line, captured


def test_missing_binding_says_which_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import libxl.hosts.binding

    monkeypatch.setitem(sys.modules, "libxl.hosts.binding._libxl", None)
    monkeypatch.delattr(libxl.hosts.binding, "_libxl", raising=False)
    with pytest.raises(BackendUnavailable, match="libxl binding was not built.*libxen-dev"):
        host.open_real_host()


@pytest.mark.parametrize(("flags", "state", "reason"), [
    ({"running": True}, "running", None),
    ({"blocked": True}, "blocked", None),
    ({}, "running", None),
    ({"paused": True, "blocked": True}, "paused", None),
    ({"shutdown": True, "shutdown_reason": "poweroff"}, "shutdown", "poweroff"),
    ({"shutdown": True}, "shutdown", "unknown"),
    ({"shutdown": True, "shutdown_reason": "crash"}, "crashed", "crash"),
    ({"dying": True, "shutdown": True, "shutdown_reason": "crash"}, "dying", "crash"),
])
def test_dominfo_json_becomes_a_domaininfo(flags: dict, state: str, reason: str | None) -> None:
    info = host.dominfo_from_json(
        {"domid": 7, "uuid": "6a1f4a6e-94b6-4e4c-8c0c-1f0e2b6f6b01", "current_memkb": 524288,
         "max_memkb": 1048576, "vcpu_max_id": 3, "vcpu_online": 2, "cpu_time": 5, **flags},
        "web", "agent-a")
    assert (info.state, info.shutdown_reason) == (state, reason)
    assert (info.domid, info.memory_kib, info.max_memory_kib, info.vcpus_online, info.vcpus_max) \
        == (7, 524288, 1048576, 2, 4)
    assert (info.name, info.owner, info.cpu_time_ns) == ("web", "agent-a", 5)
