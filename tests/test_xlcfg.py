"""xl.cfg(5) syntax: values, quoting, lists over lines, +=, comments and located errors."""

from __future__ import annotations

import pytest

from libxl.domain.formats.xlcfg import format_cfg, parse_cfg, quote
from libxl.errors import ConfigError


def values(text: str) -> dict:
    return {k: s.value for k, s in parse_cfg(text).items()}


def test_numbers_strings_and_comments() -> None:
    text = 'name = "a" # trailing\n# whole line\nmemory = 512\nhex = 0x10\nw = 1.5\nq = \'x\'\n'
    assert values(text) == {"name": "a", "memory": 512, "hex": 16, "w": "1.5", "q": "x"}


def test_lists_span_lines_nest_and_allow_trailing_comma() -> None:
    text = 'disk = [ "a",\n   "b", # comment inside\n ]\nvnuma = [ [ "pnode=0", "size=1" ], [ "pnode=1" ] ]\n'
    assert values(text) == {"disk": ["a", "b"], "vnuma": [["pnode=0", "size=1"], ["pnode=1"]]}


def test_triple_quotes_keep_both_quote_kinds() -> None:
    assert values('d = """phy:/x\'",hdb,w"""\n') == {"d": "phy:/x'\",hdb,w"}


def test_escapes_in_quoted_strings() -> None:
    assert values(r'a = "x\"y\\z\n"' + "\n") == {"a": 'x"y\\z\n'}


def test_semicolons_separate_settings_and_later_key_wins() -> None:
    assert values("a = 1; b = 2\na = 3\n") == {"a": 3, "b": 2}


def test_plus_equals_appends_lists_and_strings() -> None:
    assert values('l = [ "a" ]\nl += [ "b" ]\ns = "x"\ns += "y"\n') == {"l": ["a", "b"], "s": "xy"}


def test_plus_equals_refuses_to_mix_list_and_scalar() -> None:
    with pytest.raises(ConfigError, match="mixes"):
        parse_cfg('l = [ "a" ]\nl += "b"\n')


def test_lines_are_recorded() -> None:
    settings = parse_cfg('a = 1\n\ndisk = [\n "x",\n]\nb = 2\n')
    assert (settings["a"].line, settings["disk"].line, settings["b"].line) == (1, 3, 6)


@pytest.mark.parametrize(("text", "line", "near"), [
    ('name = "x"\nmemory 1024\n', 2, "1024"),
    ('a = [ "x" "y" ]\n', 1, '"y"'),
    ("a = \n", 1, "end of line"),
    ('a = 1 2\n', 1, "2"),
    ('= 3\n', 1, "="),
    ('a = "unterminated\n', 1, '"'),  # the token only: the rest of the line may be another file's content
    ('a = 1\nb = [ "x",\n', 3, "end of file"),
])
def test_syntax_errors_name_file_line_and_token(text: str, line: int, near: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_cfg(text, file="bad.cfg")
    assert str(info.value) == f"bad.cfg:{line}: syntax error near {near!r}"


@pytest.mark.parametrize("text", ["plain", "with 'single'", 'with "double"', "both ' and \"",
                                  "back\\slash", "new\nline", 'ends with "'])
def test_quote_reads_back(text: str) -> None:
    assert values(f"k = {quote(text)}\n") == {"k": text}


def test_format_cfg_round_trips() -> None:
    settings = [("name", "g"), ("memory", 256), ("disk", ["a", "b"]), ("v", [["x"], []]), ("e", [])]
    assert values(format_cfg(settings)) == dict(settings)
