"""What a conversion between domain XML and a native format leaves behind, one located line each.

libvirt's converters are lossy by design (a key with no domain XML form, an element with no xl
form), but they are silent about it; ours name every loss, as ``FILE:LINE: what: no X equivalent,
dropped``, so an operator moving from ``xl create`` to libvirt XML (or back) learns what the
other side will not do.

Native -> XML: the xl/xm readers remember the keys they read (``xencommon.Cfg``); every other
key is a loss. XML -> native: the document is written out, read back, and both models are formatted
as XML with libvirt's defaults laid under them; every element, attribute or value of the first
that the second lacks did not survive (``xmlshape.lost``), plus what the domain-XML parser itself
could not carry into the model.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable
from typing import Any

from lxml import etree

from libxl.domain.formats.defaults import with_defaults
from libxl.domain.formats.domxml_format import format_domain_xml
from libxl.domain.formats.xencommon import Unread
from libxl.domain.formats.xmlshape import Lost, locate, lost
from libxl.domain.model import Clock, Domain
from libxl.errors import ConfigError


def _dropped(target: str) -> str:
    return f"no {target} equivalent, dropped"


def unused_keys(left: Iterable[Unread], file: str | None) -> list[ConfigError]:
    """One ``FILE:LINE: key: no domain XML equivalent, dropped`` per key (or part of a value:
    ``pci: '01:00.0,seize=1': seize=1: ...``) the reader left behind."""
    return [ConfigError(f"{u.detail}: {_dropped('domain XML')}" if u.detail else _dropped("domain XML"),
                        file=file, line=u.line, element=u.key) for u in left]


def unsupported_elements(items: Iterable[Lost], file: str | None, target: str) -> list[ConfigError]:
    """What the domain-XML parser had no place for, as conversion losses."""
    return [item.error(file, _dropped(target)) for item in items]


def model_differences(before: Any, after: Any, path: str = "") -> list[str]:
    """``path=value`` of every model field of ``before`` that ``after`` does not hold the same."""
    if dataclasses.is_dataclass(before) and type(before) is type(after):
        return [diff for f in dataclasses.fields(before)
                for diff in model_differences(getattr(before, f.name), getattr(after, f.name),
                                              f"{path}.{f.name}" if path else f.name)]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return [diff for i, (b, a) in enumerate(zip(before, after, strict=True))
                for diff in model_differences(b, a, f"{path}[{i}]")]
    return [] if before == after else [f"{path}={before!r}"]


def unformatted_fields(dom: Domain, xml: str, file: str | None) -> list[ConfigError]:
    """Fields of ``dom`` that its domain XML ``xml`` does not carry: a reader filled a model field
    the XML form has no place for. A safety net under the key tracking: normally empty."""
    from libxl.domain.formats.domxml import parse_domain_xml

    back = parse_domain_xml(xml, file)
    return [ConfigError(_dropped("domain XML"), file=file, element=diff)
            for diff in model_differences(dom, back)]


def _comparable(dom: Domain) -> etree._Element:
    """``dom`` as XML with libvirt's defaults, in the one spelling both sides of a round trip share.

    An HVM clock in ``utc`` or ``localtime`` is the ``variable`` clock with adjustment 0 that xl and
    xm write for it (``rtc_timeoffset = 0``, ``localtime = 0|1``): the same guest clock, so not a loss.
    """
    dom = copy.deepcopy(dom)
    clock = dom.clock
    if dom.os.is_hvm and clock.offset in ("utc", "localtime") and clock.adjustment in (None, "0", "reset"):
        dom.clock = Clock(offset="variable", adjustment="0", basis=clock.offset, timers=clock.timers)
    return etree.fromstring(format_domain_xml(with_defaults(dom, libxl_driver=True)).encode("utf-8"))


def round_trip_losses(source: etree._Element, before: Domain, after: Domain, file: str | None,
                      target: str) -> list[ConfigError]:
    """What of ``before`` (parsed from ``source``) is missing from ``after`` (``before`` written as
    ``target`` and read back), each located at its element in ``source``."""
    return [locate(item, source).error(file, _dropped(target))
            for item in lost(_comparable(before), _comparable(after), values=True)]


__all__ = ["unused_keys", "unsupported_elements", "round_trip_losses", "model_differences",
           "unformatted_fields"]
