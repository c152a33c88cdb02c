"""``domxml-from-native FORMAT FILE`` and ``domxml-to-native FORMAT FILE``, as in virsh.

from-native reads an xl/xm/sxpr config and prints libvirt domain XML with libvirt's implicit
defaults spelled out (so it compares with ``virsh domxml-from-native``); to-native reads domain XML
and prints the native config. Each direction is a table of format name -> function, so a new format
is one line. FILE may be ``-`` for stdin. As virsh does, VNC/SPICE passwords are left out of the
output unless ``--security-info`` is given (output ends up in tickets, CI logs and diffs).

Conversions are lossy by libvirt's design, but never silently here: every input key or element with
no equivalent in the output is one stderr line, ``guest.cfg:14: cpu_weight: no domain XML
equivalent, dropped`` (``libxl.domain.formats.losses``), after the output. Exit status: 0 done (losses
reported), 1 the input is invalid (located message on stderr) or, with ``--strict``, anything was
dropped; 2 unknown format or unreadable file (one-line reason).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from libxl.errors import ConfigError

if TYPE_CHECKING:  # the domain model and formats are loaded by the conversion that runs, not by --help
    from libxl.domain.formats.xencommon import Unread
    from libxl.domain.formats.xmlshape import Lost
    from libxl.domain.model import Domain

    #: A native reader: the model and the settings it had no place for (reported as dropped).
    Reader = Callable[[str, str], tuple[Domain, list[Unread]]]


def _xl_in(text: str, file: str) -> tuple[Domain, list[Unread]]:
    from libxl.domain.formats.xl import read_xl
    return read_xl(text, file)


def _xm_in(text: str, file: str) -> tuple[Domain, list[Unread]]:
    from libxl.domain.formats.xm import read_xm
    return read_xm(text, file)


def _sxpr_in(text: str, file: str) -> tuple[Domain, list[Unread]]:
    from libxl.domain.formats.sxpr import read_sxpr
    return read_sxpr(text, file)


def _xl_out(dom: Domain) -> str:
    from libxl.domain.formats.xl import format_xl
    return format_xl(dom)


def _xm_out(dom: Domain) -> str:
    from libxl.domain.formats.xm import format_xm
    return format_xm(dom)


def _libxl_json_out(dom: Domain) -> str:
    import json

    from libxl.frontends.libvirt import build_config
    return json.dumps(build_config(dom), indent=4)


@dataclass(frozen=True)
class Writer:
    """A native writer and, when the format can be read back, its reader: what does not come back
    from ``read(write(dom))`` is what the conversion lost."""
    write: Callable[[Domain], str]
    read: Reader | None = None


#: Native readers (imported lazily: each format pulls in only its own modules).
FROM_NATIVE: dict[str, Reader] = {
    "xen-xl": _xl_in,
    "xen-xm": _xm_in,
    "xen-sxpr": _sxpr_in,
}
#: Formats libvirt converts in its libxl driver, whose post-parse defaults differ from the xen-xm one's.
LIBXL_DRIVER_FORMATS = ("xen-xl",)
#: Native writers.
TO_NATIVE: dict[str, Writer] = {
    "xen-xl": Writer(_xl_out, _xl_in),
    "xen-xm": Writer(_xm_out, _xm_in),
    "libxl-json": Writer(_libxl_json_out),
}


def register(sub: argparse._SubParsersAction) -> None:
    for verb, table, run, what in (
        ("domxml-from-native", FROM_NATIVE, run_from_native, "print domain XML for a native config"),
        ("domxml-to-native", TO_NATIVE, run_to_native, "print the native config for domain XML"),
    ):
        parser = sub.add_parser(verb, help=what, description=what)
        parser.add_argument("format", metavar="FORMAT", help=" | ".join(table))
        parser.add_argument("file", metavar="FILE", help="input file, or - for stdin")
        parser.add_argument("--security-info", action="store_true",
                            help="include VNC/SPICE passwords in the output (left out by default)")
        parser.add_argument("--strict", action="store_true",
                            help="exit 1 when the conversion drops anything (each loss is on stderr)")
        parser.set_defaults(func=run)


class _Usage(Exception):
    """Unknown format or unreadable input: exit 2."""


def _read(path: str) -> tuple[str, str]:
    """The input's text: a regular file (a FIFO or device is refused unopened) or stdin, at most
    the size limit desired files have, strictly UTF-8 (stdin's locale decoding could smuggle in
    surrogates)."""
    from libxl.domain.formats.domxml import MAX_XML_BYTES
    from libxl.domain.formats.readfile import read_regular

    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            raw = getattr(sys.stdin, "buffer", None)  # None: a text stream put there in-process
            data = (raw.read(MAX_XML_BYTES + 1) if raw is not None
                    else sys.stdin.read(MAX_XML_BYTES + 1).encode("utf-8", "surrogatepass"))
            if len(data) > MAX_XML_BYTES:
                raise ConfigError(f"input is over the {MAX_XML_BYTES} byte limit")
        else:
            data = read_regular(path, MAX_XML_BYTES)
        return data.decode("utf-8"), name
    except ConfigError as err:
        raise _Usage(f"cannot read {path}: {err.message}") from None
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise _Usage(f"cannot read {name}: {reason}") from None


def _secured(dom: Domain, security_info: bool) -> Domain:
    """``dom`` without its display passwords unless ``security_info`` (virsh's flag of that name)."""
    if security_info or not any(g.passwd for g in dom.devices.graphics):
        return dom
    graphics = [dataclasses.replace(g, passwd=None) for g in dom.devices.graphics]
    return dataclasses.replace(dom, devices=dataclasses.replace(dom.devices, graphics=graphics))


def _lookup(table: dict, fmt: str) -> Callable:
    if fmt not in table:
        raise _Usage(f"unknown format {fmt!r} (expected one of: {', '.join(table)})")
    return table[fmt]


def _run(verb: str, convert: Callable[[], tuple[str, list[ConfigError]]], strict: bool) -> int:
    """Print the output, then one stderr line per loss; ``strict`` makes any loss exit 1."""
    try:
        out, losses = convert()
    except _Usage as err:
        print(f"xenreconcile {verb}: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"xenreconcile {verb}: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(out if out.endswith("\n") else out + "\n")
    for loss in sorted(losses, key=lambda err: err.line or 0):
        print(loss, file=sys.stderr)
    return 1 if strict and losses else 0


def run_from_native(args: argparse.Namespace) -> int:
    def convert() -> tuple[str, list[ConfigError]]:
        from libxl.domain.formats.defaults import with_defaults
        from libxl.domain.formats.domxml import format_domain_xml
        from libxl.domain.formats.losses import unformatted_fields, unused_keys

        parse = _lookup(FROM_NATIVE, args.format)
        text, name = _read(args.file)
        dom, unused = parse(text, name)
        full = with_defaults(dom, libxl_driver=args.format in LIBXL_DRIVER_FORMATS)
        xml = format_domain_xml(full)
        losses = unused_keys(unused, name) + unformatted_fields(full, xml, name)
        shown = _secured(full, args.security_info)  # passwords left out as virsh does: not a loss
        return (xml if shown is full else format_domain_xml(shown)), losses
    return _run("domxml-from-native", convert, args.strict)


def run_to_native(args: argparse.Namespace) -> int:
    def convert() -> tuple[str, list[ConfigError]]:
        from libxl.domain.formats.domxml import parse_domain_xml, xml_tree
        from libxl.domain.formats.losses import round_trip_losses, unsupported_elements

        writer = _lookup(TO_NATIVE, args.format)
        text, name = _read(args.file)
        unsupported: list[Lost] = []
        dom = parse_domain_xml(text, file=name, unsupported=unsupported)
        out = writer.write(dom)
        losses = unsupported_elements(unsupported, name, args.format)
        if writer.read is not None:
            back, _ = writer.read(out, name)
            losses += round_trip_losses(xml_tree(text, name), dom, back, name, args.format)
        shown = _secured(dom, args.security_info)  # passwords left out as virsh does: not a loss
        return (out if shown is dom else writer.write(shown)), losses
    return _run("domxml-to-native", convert, args.strict)
