"""Domain XML written by real libvirt users (Qubes, virt-manager; tests/data/realworld-xml, provenance
in its MANIFEST.tsv): each file builds a config the real libxl keeps field for field, or is refused
with one located line. Which outcome is expected is stated per file, so neither can drift."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import realxl

from libxl.domain.formats.domxml import parse_domain_xml
from libxl.errors import ConfigError
from libxl.frontends.libvirt import build_config

DATA = Path(__file__).parent / "data" / "realworld-xml"

#: File -> None (builds) or the exact refusal (file name, line, element, reason).
EXPECTED: dict[str, str | None] = {
    "qubes-pv.xml": None,
    "qubes-pvh.xml": None,
    "qubes-hvm.xml": "qubes-hvm.xml:42: <graphics type='qubes'>: type must be one of vnc, sdl, spice, "
                     "not 'qubes'",
    "virt-install-xen-default.xml": None,
    "virt-install-xen-hvm.xml": None,
    "virt-install-xen-pv.xml": "virt-install-xen-pv.xml:21: <blockio logical_block_size='512' "
                               "physical_block_size='4096'>: not supported by this agent",
}


def _build(name: str) -> dict:
    path = DATA / name
    return build_config(parse_domain_xml(path.read_bytes(), name))


def test_manifest_lists_every_file_with_provenance() -> None:
    rows = list(csv.DictReader((DATA / "MANIFEST.tsv").open(), delimiter="\t"))
    assert sorted(r["file"] for r in rows) == sorted(p.name for p in DATA.glob("*.xml")) == sorted(EXPECTED)
    assert all(r["repository"] and r["path"] and len(r["commit"]) == 40 for r in rows)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_builds_or_is_refused_with_a_located_line(name: str) -> None:
    expected = EXPECTED[name]
    if expected is None:
        assert _build(name)["c_info"]["name"]
    else:
        with pytest.raises(ConfigError) as err:
            _build(name)
        assert str(err.value) == expected


def test_qubes_invtsc_reaches_libxl_as_its_cpuid_bit() -> None:
    """Qubes marks the TSC invariant on every HVM/PVH qube: leaf 0x80000007 edx bit 8, as libxl's
    own ``invtsc`` name sets it."""
    cpuid = _build("qubes-pvh.xml")["b_info"]["cpuid"]
    assert cpuid == [{"leaf": 0x80000007, "edx": "x" * 23 + "1" + "x" * 8}]


@pytest.mark.reallibxl
def test_built_configs_survive_real_libxl() -> None:
    missing = realxl.libxl_missing()
    if missing:
        pytest.skip(missing)
    built = {name: _build(name) for name, refusal in EXPECTED.items() if refusal is None}
    answers = realxl.roundtrip(list(built.values()))
    problems = {name: a.get("error") or realxl.lost_fields(cfg, a["json"])
                for (name, cfg), a in zip(built.items(), answers, strict=True)}
    assert {k: v for k, v in problems.items() if v} == {}
