"""The real libxenlight, without Xen, through the LD_PRELOAD shim (tests/shim/xenshim.c).

These prove the binding end to end (context, logger, error capture) and that libxl's own JSON
parser keeps every field of the configs this project sends. They run in subprocesses; CI installs
libxen-dev (.ci/run), so they must not skip there.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import realxl

pytestmark = pytest.mark.reallibxl

_MISSING = realxl.libxl_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

CORPUS_JSON = realxl.SHARED / "corpus" / "libxlxml2domconfigdata"


def test_context_allocates_and_reports_the_faked_host() -> None:
    info = realxl.run_under_shim({"op": "host_info"})
    assert info == {"total_memory_kib": 16 * 1024 * 1024, "nr_cpus": 16, "xen_version": "4.17.0-shim"}


def test_event_wait_times_out_and_wakes_through_the_pipe() -> None:
    """The loop step behind watch_events: 2 = timeout (re-arm time), 1 = woken by close()."""
    assert realxl.run_under_shim({"op": "event_wait"}) == {"timed_out": 2, "woken": 1}


def test_refused_config_raises_with_libxl_log_line_and_is_permanent() -> None:
    [answer] = realxl.roundtrip([{"c_info": {"type": "no-such-type", "name": "bad"}}])
    assert "json_roundtrip: ERROR_FAIL (-3)" in answer["error"]
    assert "libxl__object_from_json" in answer["error"]  # libxl's own log line, captured
    assert answer["transient"] is False


def test_lost_fields_sees_what_libxl_drops() -> None:
    """The comparison itself: a misspelt key and a wrongly typed value are reported, libxl's
    normalisations (case, avail_vcpus order, omitted defaults) are not."""
    sent = {
        "c_info": {"type": "PV", "name": "t", "nmae": "typo", "uuid": "AB0DEBB1-A0F0-4B79-9A30-2EA5A1E9C4A1"},
        "b_info": {"max_vcpus": "2", "avail_vcpus": [1, 0], "max_memkb": 524288, "type.pv": {}},
        "disks": [{"vdev": "xvda", "readwrite": 0, "format": "RAW"}],
    }
    [answer] = realxl.roundtrip([sent])
    assert sorted(realxl.lost_fields(sent, answer["json"])) == [
        "b_info.max_vcpus: '2' dropped", "c_info.nmae: 'typo' dropped"]


@pytest.mark.skipif(not CORPUS_JSON.is_dir(), reason="../shared/corpus is absent: no libvirt JSON cases")
def test_libvirt_expected_json_survives_real_libxl() -> None:
    """libvirt's expected libxl JSON (hand-made reference configs) keeps every field."""
    files = sorted(CORPUS_JSON.glob("*.json"))
    configs = [json.loads(f.read_text()) for f in files]
    answers = realxl.roundtrip(configs)
    problems = {f.name: a.get("error") or realxl.lost_fields(c, a["json"])
                for f, c, a in zip(files, configs, answers, strict=True)}
    assert {k: v for k, v in problems.items() if v} == {}
    assert len(files) >= 17


def _domain_inputs() -> list[Path]:
    """Every desired-state example and every corpus domain XML the builder is fed."""
    examples = Path(__file__).resolve().parent.parent / "examples" / "desired"
    paths = sorted(examples.glob("*.xml")) + sorted(examples.glob("*.cfg"))
    if realxl.SHARED.is_dir():
        paths += sorted((realxl.SHARED / "corpus").glob("*/*.xml"))
    return paths


def _build(path: Path, owner: str | None = "test-agent") -> dict:
    """The libxl JSON the agent builds for one input (domain XML through the builder, xl.cfg through
    the xl front end), with the owner marker the agent adds (if any)."""
    from libxl.frontends.libvirt import build_config
    from libxl.hosts.backend import OWNER_KEY

    xsdata = {OWNER_KEY: owner} if owner else None
    if path.suffix == ".xml":
        from libxl.domain.formats.domxml import parse_domain_xml

        return build_config(parse_domain_xml(path.read_bytes(), str(path)), xsdata=xsdata)
    from libxl.frontends.xl import read_xl_config

    config = read_xl_config(path.read_text(), str(path)).config
    if xsdata:
        config["c_info"]["xsdata"] = xsdata
    return config


def test_every_built_config_survives_real_libxl() -> None:
    """All examples and corpus domain XMLs: libxl keeps every field the builder sets."""
    from libxl.errors import ConfigError

    built: dict[str, dict] = {}
    refused: dict[str, str] = {}
    for path in _domain_inputs():
        try:
            built[str(path)] = _build(path)
        except ConfigError as err:
            refused[str(path)] = str(err)
    answers = realxl.roundtrip(list(built.values()))
    problems = {name: a.get("error") or realxl.lost_fields(cfg, a["json"])
                for (name, cfg), a in zip(built.items(), answers, strict=True)}
    assert {k: v for k, v in problems.items() if v} == {}
    if realxl.SHARED.is_dir():
        assert len(built) >= 100, f"too few corpus XMLs built; refused: {refused}"


# xl.cfg inputs are compared with real `xl -N create` field by field, with no accepted differences,
# in tests/test_xl_differential.py (the corpus and the real-world files).


def test_live_tuning_bitmaps_and_refusals_under_real_libxl() -> None:
    """cpu lists become libxl bitmaps bit for bit (cpu N is bit N%8 of byte N//8), None is NULL
    (libxl_set_vcpuaffinity then leaves that affinity alone), and inputs libxl cannot take are
    refused before any hypercall, permanently."""
    answer = realxl.run_under_shim({"op": "live_tuning"})
    assert answer["bitmap"] == {"size": 2, "map": [0b00001001, 0b00000010]}
    assert answer["null"] is True
    empty, negative, beyond, period = answer["refusals"]
    assert "vcpu 0: an affinity needs at least one cpu" in empty["error"] and not empty["transient"]
    assert "none negative" in negative["error"]
    # The shim's host has cpus 0..15 (physinfo max_cpu_id), read through real libxl.
    assert "vcpu 1: affinity names cpu 16, the host has 0..15" in beyond["error"] and not beyond["transient"]
    assert "scheduler parameter 'period' is not set live" in period["error"] and not period["transient"]
