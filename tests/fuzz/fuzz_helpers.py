"""Shared machinery of the fuzz tests: the budget, the invariant check and the input generators.

The invariant every parser must keep is the same, so it is checked in one place (``outcome``): an
input yields a value or a located ``ConfigError``; any other exception fails the test, and so does an
input that keeps a parser busy past ``HANG_SECONDS`` (a watchdog alarm, far above the milliseconds a
parse takes: it catches hangs, it does not measure speed).

Inputs come in two kinds. Random text or bytes finds what a hand-written test would never try;
mutated valid documents (``mutated``) get past the first syntax check and exercise the semantic
checks behind it, which is where the crashes hide.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from libxl.errors import ConfigError

#: Examples per fuzz test. The CI default keeps the whole fuzz set well under a minute on 2 cores;
#: ``XR_FUZZ_EXAMPLES=20000`` is the documented longer run (README, "Fuzzing").
EXAMPLES = int(os.environ.get("XR_FUZZ_EXAMPLES", "200"))
#: Far beyond any honest parse (milliseconds): only a hang or runaway work reaches it.
HANG_SECONDS = 20.0
#: The file name handed to every parser, so the check can tell that errors carry it.
FILE = "fuzz-input"

#: CI runs are derandomized (the same inputs every run, so CI never flakes on a new find); a longer
#: run with ``XR_FUZZ_EXAMPLES`` explores fresh random inputs each time.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize="XR_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

T = TypeVar("T")


class Hang(Exception):
    """A parser ran for HANG_SECONDS on one input."""


@contextmanager
def watchdog(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Raise ``Hang`` in the main thread when the body runs longer than ``seconds``."""
    def alarm(signum: int, frame: object) -> None:
        raise Hang(f"no result after {seconds:g} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(parse: Callable[..., T], data: Any, **kwargs: Any) -> T | ConfigError:
    """``parse(data, file=FILE)``: its value, or the ConfigError it raised after checking that the
    error is located (names the file and, for errors inside the document, a line or element)."""
    try:
        with watchdog():
            return parse(data, file=FILE, **kwargs)
    except ConfigError as err:
        assert err.file == FILE, f"error lost the file name: {err!r} ({err})"
        assert str(err).startswith(FILE), str(err)
        return err


# ---- inputs ------------------------------------------------------------------------------------

#: Values that break naive parsers: huge and negative numbers, radix prefixes, unicode (combining,
#: right-to-left, astral, full-width digits), NUL and control bytes, quotes and separators.
NASTY = [
    "", "0", "-1", "-0", "+1", "1.5", "1e9", "0x", "0x1F", "0b1", "0o7", "00", "NaN", "inf",
    "9" * 30, "-" + "9" * 30, "9" * 5000, "4294967296", "18446744073709551616", "-2147483649",
    "\x00", "a\x00b", "\x1b[0m", "\t", "\n", "\r\n", "\\", "\\\n", "'", '"', '"""', "'''", "#",
    ";", ",", "=", "+=", "[", "]", "(", ")", "<", ">", "&", "&amp;", "]]>", "<!--", ":", "@", "/",
    "é", "\u0301", "\u202e", "\ufeff", "\U0001f600", "１２３", "٣", "²", "\u00a0", "A" * 70000,
    "xenbr0.42", "br:1:2", "phy:/dev/vg/x", "tap:aio:/x", "hd:cdrom", "00:16:3e:00:00:01",
    "aa:bb:cc:dd:ee:ff:00", "0000:00:1f.7", "1f:00.8", "host,vmx=1", "10240KB/s@20ms",
    "connection=socket", "type=qusb,version=3", "hostbus=x,hostaddr=1",
]

nasty_values = st.sampled_from(NASTY)


def _lines(text: str) -> list[str]:
    return text.split("\n")


@st.composite
def mutated(draw: st.DrawFn, seeds: list[str], extra: Callable[[str], st.SearchStrategy[str]] | None = None,
            max_steps: int = 4) -> str:
    """A seed document after 1..max_steps edits: line delete/duplicate/swap, character flip,
    truncation, a NASTY value spliced in or replacing a token, deep nesting, a format-specific edit."""
    text = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(1, max_steps))):
        kinds = ["delete", "duplicate", "swap", "flip", "truncate", "insert", "replace", "nest"]
        if extra is not None:
            kinds.append("extra")
        kind = draw(st.sampled_from(kinds))
        lines = _lines(text)
        if kind in ("delete", "duplicate", "swap"):
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "delete":
                del lines[i]
            elif kind == "duplicate":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == "flip" and text:
            i = draw(st.integers(0, len(text) - 1))
            text = text[:i] + draw(st.characters(codec="utf-8")) + text[i + 1:]
        elif kind == "truncate":
            text = text[:draw(st.integers(0, len(text)))]
        elif kind == "insert":
            i = draw(st.integers(0, len(text)))
            text = text[:i] + draw(nasty_values) + text[i:]
        elif kind == "replace":
            text = _replace_token(draw, text)
        elif kind == "nest":
            i = draw(st.integers(0, len(text)))
            depth = draw(st.sampled_from([2, 50, 300, 5000]))
            opener, closer = draw(st.sampled_from([("[", "]"), ("(", ")"), ("<a>", "</a>"), ('"', '"')]))
            text = text[:i] + opener * depth + closer * draw(st.sampled_from([0, depth])) + text[i:]
        elif kind == "extra" and extra is not None:
            text = draw(extra(text))
    return text


def _replace_token(draw: st.DrawFn, text: str) -> str:
    """Replace one word (a number, a name, a path piece) with a NASTY value."""
    spans = [m.span() for m in re.finditer(r"[^\s'\"<>=,\[\]();:/]+", text)]
    if not spans:
        return text
    start, end = draw(st.sampled_from(spans))
    return text[:start] + draw(nasty_values) + text[end:]


#: Random text biased towards each format's own punctuation, so some of it gets past the tokenizer.
def token_soup(tokens: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(tokens), nasty_values, st.text(max_size=5)),
                    max_size=40).map("".join)


__all__ = ["EXAMPLES", "HANG_SECONDS", "FILE", "FUZZ", "Hang", "watchdog", "outcome", "NASTY",
           "nasty_values", "mutated", "token_soup"]
