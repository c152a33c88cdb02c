"""The builder against libvirt's libxlxml2domconfigdata cases (domain XML -> libxl JSON).

Comparison follows ../shared/corpus/check.py: empty containers, nulls, "default", devid -1 and the
mocked shadow_memkb are dropped on both sides. The ``*-legacy-nest`` cases describe libxl builds
*without* ``b_info.nested_hvm`` (before Xen 4.10): their input equals the modern case's and only
the place of ``nested_hvm`` differs, so for them the test proves exactly that and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libxl.domain.formats.domxml import parse_domain_xml
from libxl.frontends.libvirt import build_config

SUITE = "libxlxml2domconfigdata"
FIRMWARE_DIR = "/usr/lib/xen/boot"


def normal(value):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = normal(item)
            if key == "shadow_memkb" or item in ({}, [], None, "default") or (key == "devid" and item == -1):
                continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [normal(v) for v in value]
    return value


def cases() -> list[str]:
    """Case names at collection time (the fixture, which skips, is not available yet)."""
    folder = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / SUITE
    return sorted(p.stem for p in folder.glob("*.xml")) if folder.is_dir() else ["(corpus absent)"]


def load(corpus: Path, case: str) -> tuple[dict, dict]:
    folder = corpus / SUITE
    if not (folder / f"{case}.xml").is_file():
        pytest.skip(f"{folder} has no {case}.xml")
    text = (folder / f"{case}.xml").read_text().replace("/LIBXL_FIRMWARE_DIR", FIRMWARE_DIR)
    built = build_config(parse_domain_xml(text, file=f"{case}.xml"))
    expected = json.loads((folder / f"{case}.json").read_text().replace("\\\n", ""))
    return normal(built), normal(expected)


@pytest.mark.parametrize("case", cases())
def test_corpus_case(shared_corpus, case):
    built, expected = load(shared_corpus, case)
    if case.endswith("-legacy-nest"):
        legacy = expected["b_info"]["type.hvm"].pop("nested_hvm")
        expected["b_info"]["nested_hvm"] = legacy
    assert built == expected


def test_builder_output_is_json(shared_corpus):
    text = (shared_corpus / SUITE / "basic-pv.xml").read_text()
    config = build_config(parse_domain_xml(text))
    assert json.loads(json.dumps(config)) == config
    assert config["b_info"]["shadow_memkb"] == 4 * (256 * 4 + 2 * 512)
