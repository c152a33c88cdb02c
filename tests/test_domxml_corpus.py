"""Conformance with libvirt's own Xen test data in ../shared/corpus.

Every domain XML file there must parse. Files that are libvirt *output* (the expected result of a
native -> XML conversion, and the sexpr2xml results) must also come back out of parse + format as
the same canonical XML: that is what makes our formatter's output comparable with libvirt's.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import SHARED_CORPUS
from lxml import etree

from libxl.domain.formats.domxml import format_domain_xml, parse_domain_xml


def _libvirt_outputs(corpus: Path) -> set[str]:
    """Relative paths of the .xml files libvirt produced (rather than only read)."""
    outputs = set()
    with open(corpus / "MANIFEST.tsv", newline="") as manifest:
        for row in csv.DictReader(manifest, delimiter="\t"):
            if row["suite"] == "sexpr2xmldata" or row["direction"] == "native->xml":
                outputs.add(row["expected_output_file"])
            elif row["direction"] == "both":
                outputs.add(row["input_file"])
    return {path for path in outputs if path.endswith(".xml")}


ALL_XML = sorted(str(p.relative_to(SHARED_CORPUS)) for p in SHARED_CORPUS.glob("*/*.xml"))
OUTPUTS = sorted(_libvirt_outputs(SHARED_CORPUS)) if (SHARED_CORPUS / "MANIFEST.tsv").is_file() else []


def canonical(text: str) -> str:
    """C14N with whitespace-only text dropped: attribute order and indentation do not matter."""
    root = etree.fromstring(text.encode(), etree.XMLParser(remove_blank_text=True, resolve_entities=False))
    for el in root.iter():
        if el.text is not None and not el.text.strip():
            el.text = None
        if el.tail is not None and not el.tail.strip():
            el.tail = None
    return etree.tostring(root, method="c14n").decode()


@pytest.mark.parametrize("rel", ALL_XML or ["<corpus absent>"])
def test_corpus_file_parses_and_is_stable(shared_corpus: Path, rel: str) -> None:
    path = shared_corpus / rel
    dom = parse_domain_xml(path.read_bytes(), file=rel)
    assert dom.name and dom.memory_kib > 0
    assert parse_domain_xml(format_domain_xml(dom)) == dom


@pytest.mark.parametrize("rel", OUTPUTS or ["<corpus absent>"])
def test_libvirt_output_round_trips_exactly(shared_corpus: Path, rel: str) -> None:
    text = (shared_corpus / rel).read_text()
    assert canonical(format_domain_xml(parse_domain_xml(text, file=rel))) == canonical(text)


@pytest.mark.parametrize("rel", OUTPUTS or ["<corpus absent>"])
def test_libvirt_output_is_reproduced_byte_for_byte(shared_corpus: Path, rel: str) -> None:
    """Stronger than canonical: same attribute order, quoting and indentation as libvirt."""
    text = (shared_corpus / rel).read_text()
    assert format_domain_xml(parse_domain_xml(text, file=rel)) == text


def test_corpus_has_the_expected_shape(shared_corpus: Path) -> None:
    """Guards the two tables above against silently shrinking (a renamed suite, a moved file)."""
    assert len(ALL_XML) >= 100
    assert len(OUTPUTS) >= 80
    assert all((shared_corpus / rel).is_file() for rel in OUTPUTS)
