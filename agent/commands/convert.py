"""``domxml-from-native FORMAT FILE`` and ``domxml-to-native FORMAT FILE``, as in virsh.

from-native reads an xl/xm/sxpr config and prints libvirt domain XML with libvirt's implicit
defaults spelled out (so it compares with ``virsh domxml-from-native``); to-native reads domain XML
and prints the native config. Each direction is a table of format name -> function, so a new format
is one line. FILE may be ``-`` for stdin. Exit status: 0 done, 1 the input is invalid (located
message on stderr), 2 unknown format or unreadable file (one-line reason).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from libxl.errors import ConfigError
from libxl.model import Domain


def _xl_in(text: str, file: str) -> Domain:
    from libxl.formats.xl import parse_xl
    return parse_xl(text, file)


def _xm_in(text: str, file: str) -> Domain:
    from libxl.formats.xm import parse_xm
    return parse_xm(text, file)


def _sxpr_in(text: str, file: str) -> Domain:
    from libxl.formats.sxpr import parse_sxpr
    return parse_sxpr(text, file)


def _xl_out(dom: Domain) -> str:
    from libxl.formats.xl import format_xl
    return format_xl(dom)


def _xm_out(dom: Domain) -> str:
    from libxl.formats.xm import format_xm
    return format_xm(dom)


def _libxl_json_out(dom: Domain) -> str:
    import json

    from libxl.config import build_config
    return json.dumps(build_config(dom), indent=4)


#: Native readers (imported lazily: each format pulls in only its own modules).
FROM_NATIVE: dict[str, Callable[[str, str], Domain]] = {
    "xen-xl": _xl_in,
    "xen-xm": _xm_in,
    "xen-sxpr": _sxpr_in,
}
#: Native writers.
TO_NATIVE: dict[str, Callable[[Domain], str]] = {
    "xen-xl": _xl_out,
    "xen-xm": _xm_out,
    "libxl-json": _libxl_json_out,
}


def register(sub: argparse._SubParsersAction) -> None:
    for verb, table, run, what in (
        ("domxml-from-native", FROM_NATIVE, run_from_native, "print domain XML for a native config"),
        ("domxml-to-native", TO_NATIVE, run_to_native, "print the native config for domain XML"),
    ):
        parser = sub.add_parser(verb, help=what, description=what)
        parser.add_argument("format", metavar="FORMAT", help=" | ".join(table))
        parser.add_argument("file", metavar="FILE", help="input file, or - for stdin")
        parser.set_defaults(func=run)


class _Usage(Exception):
    """Unknown format or unreadable input: exit 2."""


def _read(path: str) -> tuple[str, str]:
    """The file's text, strictly UTF-8 (stdin too: its locale decoding could smuggle in surrogates)."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            raw = getattr(sys.stdin, "buffer", None)  # None: a text stream put there in-process
            return (raw.read().decode("utf-8") if raw is not None else sys.stdin.read()), name
        with open(path, encoding="utf-8") as handle:
            return handle.read(), name
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise _Usage(f"cannot read {name}: {reason}") from None


def _lookup(table: dict, fmt: str) -> Callable:
    if fmt not in table:
        raise _Usage(f"unknown format {fmt!r} (expected one of: {', '.join(table)})")
    return table[fmt]


def _run(verb: str, convert: Callable[[], str]) -> int:
    try:
        out = convert()
    except _Usage as err:
        print(f"xenreconcile {verb}: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"xenreconcile {verb}: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    return 0


def run_from_native(args: argparse.Namespace) -> int:
    def convert() -> str:
        from libxl.formats.defaults import with_defaults
        from libxl.formats.domxml import format_domain_xml

        parse = _lookup(FROM_NATIVE, args.format)
        text, name = _read(args.file)
        return format_domain_xml(with_defaults(parse(text, name)))
    return _run("domxml-from-native", convert)


def run_to_native(args: argparse.Namespace) -> int:
    def convert() -> str:
        from libxl.formats.domxml import parse_domain_xml

        fmt = _lookup(TO_NATIVE, args.format)
        text, name = _read(args.file)
        return fmt(parse_domain_xml(text, file=name))
    return _run("domxml-to-native", convert)
