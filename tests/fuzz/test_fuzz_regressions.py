"""The minimal inputs of every bug the fuzz tests found, kept as plain regression tests.

Each one used to end in an exception other than the project's typed error, a wrong round trip, or
(sxpr) work quadratic in the input size.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_helpers import FILE, outcome

from agent.config import AgentConfigError, load_config
from libxl.domain.formats.domxml import format_domain_xml, parse_domain_xml
from libxl.domain.formats.sxpr import parse_sexpr, parse_sxpr
from libxl.domain.formats.xl import format_xl, parse_xl
from libxl.domain.formats.xlcfg import MAX_LIST_DEPTH, parse_cfg
from libxl.errors import ConfigError

_GUEST = 'name = "g"\nmemory = 64\n'


@pytest.mark.parametrize(("text", "message"), [
    ("a = " + "[" * 5000, "nested deeper"),  # was RecursionError
    ("a = " + "9" * 5000, "number too long"),  # was ValueError (Python's 4300-digit int limit)
])
def test_cfg_syntax_limits(text: str, message: str) -> None:
    err = outcome(parse_cfg, text)
    assert isinstance(err, ConfigError) and message in str(err) and err.line == 1


def test_cfg_nesting_limit_is_exact() -> None:
    def nested(depth: int) -> str:
        return "a = " + "[" * depth + "]" * depth

    assert isinstance(parse_cfg(nested(MAX_LIST_DEPTH))["a"].value, list)
    with pytest.raises(ConfigError, match="nested deeper"):
        parse_cfg(nested(MAX_LIST_DEPTH + 1))


@pytest.mark.parametrize("text", [
    _GUEST.replace("64", "9" * 4299),  # memory * 1024 had over 4300 digits: str() of it raised
    _GUEST.replace("64", '"' + "9" * 5000 + '"'),  # a quoted number: int() raised ValueError
    _GUEST + "vnuma = [ [ 'size=" + "9" * 4299 + "', 'vcpus=0' ] ]",
])
def test_xl_huge_memory_is_a_located_error(text: str) -> None:
    err = outcome(parse_xl, text)
    assert isinstance(err, ConfigError) and err.element in ("memory", "vnuma"), err


def test_domxml_huge_memory_is_a_located_error() -> None:
    doc = ("<domain type='xen'><name>g</name><memory unit='EiB'>" + "9" * 4299 + "</memory>"
           "<os><type>linux</type></os></domain>")
    err = outcome(parse_domain_xml, doc)  # parsed, then format_domain_xml raised ValueError
    assert isinstance(err, ConfigError) and err.line == 1 and "limit" in str(err)


@pytest.mark.parametrize(("extra", "field", "value"), [
    ("vnuma = []", "cpu", None),  # an empty <cpu> that the writer (rightly) drops
    ("cpuid = []", "cpu", None),
    ('cpuid = ""', "cpu", None),
    ("nestedhvm = 0", "cpu", None),  # HVM-only: on PV it produced a <cpu> xl cannot write
    ("cpus = []", "cpuset", None),  # an empty cpuset the writer drops
    ('cpus = ""', "cpuset", None),
])
def test_xl_settings_that_said_nothing_no_longer_break_the_round_trip(extra: str, field: str,
                                                                       value: object) -> None:
    dom = parse_xl(_GUEST + extra + "\n")
    got = dom.cpu if field == "cpu" else dom.vcpu.cpuset
    assert got == value
    assert parse_xl(format_xl(dom)) == dom


@pytest.mark.parametrize(("text", "element"), [
    ("(domain (name a)(memory 1)(image ()))", None),  # IndexError
    ("(domain (name a)(memory 1)(image (linux (vnc 1)(vncunused 0)(vncdisplay x))))", "image"),
    ("(domain (name a)(memory " + "9" * 4299 + "))", "memory"),  # over 4300 digits once * 1024
    ("(domain (name a)(memory -1))", "memory"),
])
def test_sxpr_regressions(text: str, element: str | None) -> None:
    result = outcome(parse_sxpr, text)
    if element is None:
        assert not isinstance(result, ConfigError), result
    else:
        assert isinstance(result, ConfigError) and result.element == element, result


def test_sexpr_line_numbers_are_counted_incrementally() -> None:
    """Errors still name the right line now that lines are counted as the reader goes (the old
    recount from the start of the text on every token made 1.4 MB of ``(a b)`` take minutes)."""
    with pytest.raises(ConfigError) as caught:
        parse_sexpr("(domain\n (a b)\n (c 'd)\n", FILE)
    assert caught.value.line == 3


def test_sexpr_long_inputs_parse() -> None:
    text = "(domain " + "(a b)\n" * 20000 + ")"
    assert len(parse_sexpr(text)) == 20001


@pytest.mark.parametrize(("content", "problem"), [
    (b"\x80", "not UTF-8"),  # was UnicodeDecodeError
    (b"resync_interval = nan", "finite"),  # nan passed every `>= minimum` check
    (b"backoff_cap = inf", "finite"),  # inf overflows timers
])
def test_agent_config_regressions(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "xenreconcile.toml"
    path.write_bytes(content)
    with pytest.raises(AgentConfigError) as caught:
        load_config(path)
    assert problem in str(caught.value)


def test_domxml_carriage_returns_and_attribute_whitespace_survive_the_round_trip() -> None:
    """The writer emitted raw CR in text and raw LF/TAB in attributes; XML parsers normalise those."""
    doc = ("<domain type='xen' xmlns:xen='http://libvirt.org/schemas/domain/xen/1.0'><name>g</name>"
           "<description>&#13;\n</description><memory>1024</memory><os><type>linux</type></os>"
           "<xen:commandline><xen:arg value='a&#10;b&#9;c&#13;'/></xen:commandline></domain>")
    dom = parse_domain_xml(doc)
    assert dom.description == "\r\n" and dom.commandline == ["a\nb\tc\r"]
    assert parse_domain_xml(format_domain_xml(dom)) == dom


@pytest.mark.parametrize("extra", ['vnc = 1\nvnclisten = ""', 'vnc = 1\nvncpasswd = ""',
                                   'vfb = [ "type=vnc,vnclisten=,keymap=" ]'])
def test_xl_empty_vnc_values_say_nothing(extra: str) -> None:
    dom = parse_xl(_GUEST + extra + "\n")
    gfx = dom.devices.graphics[0]
    assert (gfx.listen, gfx.passwd, gfx.keymap) == (None, None, None)
    assert parse_xl(format_xl(dom)) == dom
