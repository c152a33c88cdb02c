"""libvirt's own Xen converter cases that ../shared/corpus does not carry (tests/data/libvirt-extra,
provenance in its MANIFEST.tsv), run exactly as ../shared/corpus/check.py runs the corpus.

They are the generality check of the converters: cases the code was not written against. Every
case must pass; a failure names the case and the difference.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXTRA = Path(__file__).parent / "data" / "libvirt-extra"


def test_manifest_rows_name_existing_files_with_provenance() -> None:
    rows = list(csv.DictReader((EXTRA / "MANIFEST.tsv").open(), delimiter="\t"))
    assert len(rows) >= 14
    for row in rows:
        assert (EXTRA / row["input_file"]).is_file() and (EXTRA / row["expected_output_file"]).is_file()
        assert row["repository"] == "libvirt/libvirt"
        assert re.fullmatch(r"[0-9a-f]{40}", row["xml_commit"]) and re.fullmatch(r"[0-9a-f]{40}",
                                                                                 row["native_commit"])


def test_every_extra_case_passes(shared_corpus: Path) -> None:
    exe = Path(sys.executable).parent / "xenreconcile"
    if not exe.exists():
        pytest.skip(f"{exe} is missing: install the project (pip install -e .)")
    # libvirt's expected files carry the VNC passwords (its tests format with the secure flag), so
    # the converters run with --security-info, as in tests/test_convert_cli.py.
    cmd = f"""sh -c '"$0" "$1" --security-info "$2" "$3"' {exe}"""
    proc = subprocess.run([sys.executable, str(shared_corpus / "check.py"), "--corpus", str(EXTRA),
                           "--cmd", cmd], capture_output=True, text=True, check=False)
    failures = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert failures == [], "\n".join(failures)
    total = re.search(r"conformance: (\d+) passed, (\d+) failed", proc.stdout)
    assert total is not None and total.group(2) == "0" and int(total.group(1)) >= 26, proc.stdout


@pytest.mark.reallibxl
def test_extra_domain_xml_builds_survive_real_libxl() -> None:
    """Every extra case's domain XML, built as the agent would, keeps every field in the real
    libxl's from_json/to_json (the rbd target and the 64-bit viridian mask included)."""
    import realxl

    from libxl.domain.formats.domxml import parse_domain_xml
    from libxl.frontends.libvirt import build_config

    missing = realxl.libxl_missing()
    if missing:
        pytest.skip(missing)
    paths = sorted(EXTRA.glob("*/*.xml"))
    built = [build_config(parse_domain_xml(p.read_bytes(), str(p))) for p in paths]
    answers = realxl.roundtrip(built)
    problems = {p.name: a.get("error") or realxl.lost_fields(c, a["json"])
                for p, c, a in zip(paths, built, answers, strict=True)}
    assert {k: v for k, v in problems.items() if v} == {}
    assert len(paths) >= 14
