"""Coverage-guided fuzzing of every parser with atheris (libFuzzer), run by hand, not in CI.

hypothesis (the ``test_fuzz_*`` files) draws from structured strategies; atheris instead grows a
corpus from branch coverage, which finds the odd path through a tokenizer that a strategy does not
think of. The first input byte picks the parser, the rest is its input. Anything but the parser's
typed error (``ValueError`` for the disk/vif spec helpers, whose callers turn it into
``ConfigError``) is a crash, and atheris saves the input as ``crash-<sha1>``.

    .venv/bin/pip install atheris
    .venv/bin/python tests/fuzz/atheris_parsers.py -max_total_time=600 -timeout=20 -rss_limit_mb=1024 \\
        /tmp/xr-atheris-corpus

A saved crash replays with ``.venv/bin/python tests/fuzz/atheris_parsers.py crash-<sha1>``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from agent.config import AgentConfigError, load_config
    from libxl.domain.formats import diskspec, vifspec
    from libxl.domain.formats.domxml import format_domain_xml, parse_domain_xml
    from libxl.domain.formats.sxpr import parse_sxpr
    from libxl.domain.formats.xl import parse_xl
    from libxl.domain.formats.xm import parse_xm
    from libxl.errors import ConfigError

_CONFIG = Path(tempfile.mkdtemp(prefix="xr-atheris-")) / "xenreconcile.toml"


def _domxml(data: bytes) -> None:
    dom = parse_domain_xml(data, file="in.xml")
    if parse_domain_xml(format_domain_xml(dom)) != dom:
        raise AssertionError("domain XML round trip changed the model")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _agent_config(data: bytes) -> None:
    _CONFIG.write_bytes(data)
    load_config(_CONFIG)


TARGETS = [
    _domxml,
    lambda d: parse_xl(_text(d), file="in.cfg"),
    lambda d: parse_xm(_text(d), file="in.cfg"),
    lambda d: parse_sxpr(_text(d), file="in.sexpr"),
    lambda d: diskspec.parse_xl_disk(_text(d)),
    lambda d: diskspec.parse_xm_disk(_text(d)),
    lambda d: vifspec.parse_vif(_text(d)),
    _agent_config,
]
_SPEC_TARGETS = {4, 5, 6}


def one_input(data: bytes) -> None:
    if not data:
        return
    index = data[0] % len(TARGETS)
    try:
        TARGETS[index](data[1:])
    except (ConfigError, AgentConfigError):
        pass
    except ValueError:
        if index not in _SPEC_TARGETS:
            raise


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
