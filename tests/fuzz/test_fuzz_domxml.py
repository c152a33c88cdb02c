"""Fuzzing ``parse_domain_xml``: random bytes and text, text-mutated and tree-mutated documents.

Invariant: any input yields a Domain or a located ConfigError; a document that parses formats to
XML that parses back to an equal model (the module promises parse -> format -> parse is the
identity, so the comparison is strict).
"""

from __future__ import annotations

from fuzz_helpers import FUZZ, mutated, nasty_values, outcome, token_soup
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from libxl.domain.formats.domxml import format_domain_xml, parse_domain_xml
from libxl.errors import ConfigError

_XML_TOKENS = ["<domain type='xen'>", "</domain>", "<name>a</name>", "<memory>1</memory>",
               "<os><type>hvm</type></os>", "<devices>", "</devices>", "<disk>", "<!DOCTYPE d [",
               "<!ENTITY e 'x'>", "&e;", "<![CDATA[", "]]>", "<?xml version='1.0'?>", "='", "'", "/>"]
#: Attribute names worth setting anywhere: they are what the reader looks up.
_ATTRS = ["type", "dev", "bus", "unit", "name", "id", "port", "current", "cpuset", "index", "mode",
          "slot", "function", "domain", "value", "memory", "state", "address", "model", "prefix",
          "offset", "adjustment", "retries", "vram", "heads", "tlsPort", "autoport", "file", "path"]


@st.composite
def tree_mutated(draw: st.DrawFn, seeds: list[str]) -> bytes:
    """A well-formed variant of a seed: an element removed, duplicated, moved, or given a nasty
    attribute or text. Gets past the XML syntax check to the domain reader's own checks."""
    root = etree.fromstring(draw(st.sampled_from(seeds)).encode())
    for _ in range(draw(st.integers(1, 3))):
        elements = list(root.iter(etree.Element))
        el = draw(st.sampled_from(elements))
        kind = draw(st.sampled_from(["remove", "duplicate", "move", "attr", "text"]))
        parent = el.getparent()
        if kind == "remove" and parent is not None:
            parent.remove(el)
        elif kind == "duplicate" and parent is not None:
            parent.append(etree.fromstring(etree.tostring(el)))
        elif kind == "move" and parent is not None:
            target = draw(st.sampled_from(elements))
            if el not in target.iterancestors() and el is not target:
                target.append(el)
        elif kind in ("attr", "text"):
            value = draw(nasty_values).replace("\x00", "").replace("\x1b", "")
            if kind == "attr":
                el.set(draw(st.sampled_from(_ATTRS + list(el.attrib))), value)
            elif not isinstance(el, etree._Comment):
                el.text = value
    return etree.tostring(root)


@FUZZ
@given(st.one_of(st.binary(), st.text(), token_soup(_XML_TOKENS)))
def test_random_input(data: bytes | str) -> None:
    outcome(parse_domain_xml, data)


@FUZZ
@given(st.data())
def test_mutated_documents(seeds, data: st.DataObject) -> None:  # noqa: ANN001 (fixture)
    doc = data.draw(st.one_of(mutated(seeds.xml), tree_mutated(seeds.xml)))
    outcome(parse_domain_xml, doc)


@FUZZ
@given(st.data())
def test_parse_format_parse_is_identity(seeds, data: st.DataObject) -> None:  # noqa: ANN001 (fixture)
    doc = data.draw(st.one_of(st.sampled_from(seeds.xml), tree_mutated(seeds.xml), mutated(seeds.xml)))
    first = outcome(parse_domain_xml, doc)
    if isinstance(first, ConfigError):
        return
    text = format_domain_xml(first)
    second = outcome(parse_domain_xml, text)
    assert not isinstance(second, ConfigError), f"formatted XML does not re-parse: {second}\n{text}"
    assert second == first, f"round trip changed the model\n{text}"
