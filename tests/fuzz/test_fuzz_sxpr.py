"""Fuzzing the xend s-expression reader (``parse_sxpr``): import only, so no round trip.

Invariant: any text yields a Domain or a located ConfigError, in time linear in the input.
"""

from __future__ import annotations

from fuzz_helpers import FUZZ, mutated, outcome, token_soup
from hypothesis import given
from hypothesis import strategies as st

from libxl.domain.formats.sxpr import parse_sxpr

_SXPR_TOKENS = ["(", ")", "(domain", "(name a)", "(memory 1)", "(image", "(hvm", "(linux", "(device",
                "(vbd", "(vif", "(vfb", "(pci", "(dev", "(vnc 1)", "(vncunused 0)", "(vncdisplay",
                "(boot", "(serial", "'", '"', " ", "\n", "\\\n", "0x1f", "-1"]


def _sxpr_edits(text: str) -> st.SearchStrategy[str]:
    """Wrap a random tail of the document in an extra list, or insert a known field."""
    fields = st.sampled_from(["(image ())", "(image (hvm))", "(device ())", "(device (pci (dev)))",
                              "(vncdisplay x)", "(vnc 1)", "(memory -5)", "(maxmem 0x10)", "(vcpus -1)",
                              "(device (vif (mac zz)))", "(device (vbd (uname phy:)))", "(localtime x)"])
    return st.builds(lambda i, f: text[:i] + f + text[i:], st.integers(0, len(text)), fields)


@FUZZ
@given(st.one_of(st.text(), token_soup(_SXPR_TOKENS)))
def test_random_text(text: str) -> None:
    outcome(parse_sxpr, text)


@FUZZ
@given(st.data())
def test_mutated_documents(seeds, data: st.DataObject) -> None:  # noqa: ANN001 (fixture)
    outcome(parse_sxpr, data.draw(mutated(seeds.sxpr, _sxpr_edits)))
