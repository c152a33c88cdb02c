"""The binding's lifecycle calls: declared and compiled (``make venv`` builds them), and
``RealHost.restore`` refusing what is not an image through the real libxl under the shim."""

from __future__ import annotations

from pathlib import Path

import pytest
import realxl

from libxl.hosts import saveimage

_MISSING = realxl.libxl_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)


def test_lifecycle_calls_are_compiled_in() -> None:
    from libxl.hosts.binding import _libxl

    for name in ("libxl_domain_suspend", "libxl_domain_resume", "libxl_domain_create_restore",
                 "libxl_domain_core_dump", "libxl_domain_restore_params_init",
                 "libxl_domain_restore_params_dispose"):
        assert hasattr(_libxl.lib, name), name
    params = _libxl.ffi.new("libxl_domain_restore_params *")
    _libxl.lib.libxl_domain_restore_params_init(params)
    assert (params.checkpointed_stream, params.stream_version) == (0, 1)  # libxl's init values
    _libxl.lib.libxl_domain_restore_params_dispose(params)


def test_restore_refuses_non_images_and_configs_libxl_refuses(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"Xen saved domain, xl format\n")  # an xl image is not the agent's
    bad = tmp_path / "bad.xr-save"
    config = {"c_info": {"type": "nonsense", "name": "web"}, "b_info": {"max_memkb": 65536}}
    with open(bad, "wb") as out:
        saveimage.write_header(out, config)
        out.write(b"stream")
    cases = [[str(junk), config], [str(tmp_path / "missing"), config], [str(bad), config]]
    answers = realxl.run_under_shim({"op": "restore_refusals", "cases": cases})
    assert "not a xenreconcile save image" in answers[0]["error"]
    assert "No such file or directory" in answers[1]["error"]
    assert answers[2]["error"].startswith("restore:") and answers[2]["transient"] is False
    assert all(not a.get("restored") for a in answers)


def test_calls_in_flight_at_once_each_hold_their_own_libxl_context() -> None:
    """libxl holds a context's lock through a domain build: two creates on one context run one
    after the other. Two calls at once run on two contexts, neither the one events wait on; a
    context is reused once its call returned (the pool grows only with the calls in flight)."""
    config = {"c_info": {"type": "pv", "name": "web"}, "b_info": {"max_memkb": 65536}}
    seen = realxl.run_under_shim({"op": "contexts", "config": config})
    first, second = seen["at_once"]
    assert first != second
    assert seen["main"] not in seen["at_once"]
    assert seen["after"] in seen["at_once"]
    assert seen["allocated"] == 3  # the events' context and one per call in flight
    assert seen["kept"] == {"a": True, "b": True}  # libxl answered on both contexts
