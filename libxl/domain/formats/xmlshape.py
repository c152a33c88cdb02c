"""What a domain XML document says, as a multiset of element and attribute places, and what got lost.

Nothing may be dropped silently, and neither the domain-XML parser nor the native writers can list
everything they leave behind by hand without that list going stale. They do not need to: the
formatter writes exactly what the model holds, so ``format(parse(doc))`` has the *shape* (element
paths, attribute names, leaf text) of what the parser honoured, and ``format(parse(native(model)))``
the shape of what survived a conversion. Whatever the first shape has that the second lacks was
dropped; ``lost`` finds it and points at the element in the document the user wrote.

Two shapes are compared: ``places`` (path and attribute *name*: a value the model keeps in another
spelling, ``unit='GiB'`` as KiB, is still honoured) for the parser, and ``facts`` (with values) for
conversions, where a value that comes back different was lost on the way.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from lxml import etree

from libxl.domain.formats.xmlwriter import Node
from libxl.errors import ConfigError

#: Opaque application data: libvirt stores ``<metadata>`` children without reading them.
_OPAQUE = ("domain/metadata",)
#: Containers whose empty form says nothing (Qubes writes ``<features></features>`` for PV guests).
_CONTAINERS = ("domain/features", "domain/cputune", "domain/devices", "domain/os/acpi")
#: Legacy spellings the parser reads as another attribute (``<clock sync>`` is ``offset``).
_ALIASES = {("domain/clock", "sync"): "offset"}
#: The key of one element's attribute, its leaf text (``#text``) or the element itself (``""``).
Key = tuple[str, str, str | None]


@dataclass(frozen=True)
class Lost:
    """One element or attribute of the source document that did not reach the other side."""
    line: int | None
    element: str  # ``<model type='qxl'>``, as error messages point at elements
    detail: str  # ``vram='9216'``, ``text '512'`` or ``""`` for the whole element
    path: str = ""  # ``domain/devices/video/model``
    attribute: str = ""  # the lost attribute, ``#text`` or ``""``

    def error(self, file: str | None, reason: str) -> ConfigError:
        message = f"{self.detail}: {reason}" if self.detail else reason
        return ConfigError(message, file=file, line=self.line, element=self.element)


def describe(el: etree._Element) -> str:
    """``<memory unit='XB'>``: how an error message points at an element."""
    name = etree.QName(el).localname
    if el.prefix:
        name = f"{el.prefix}:{name}"
    attrs = "".join(f" {etree.QName(k).localname}='{v}'" for k, v in el.attrib.items())
    return f"<{name}{attrs}>"


def _local(name: str) -> str:
    """``{namespace}tag`` -> ``tag`` (cheaper than ``etree.QName`` on every node)."""
    return name.rpartition("}")[2]


def _walk(root: etree._Element) -> Iterator[tuple[str, etree._Element]]:
    stack: list[tuple[str, etree._Element]] = [(_local(root.tag), root)]
    while stack:
        path, el = stack.pop()
        if path in _OPAQUE:
            continue
        yield path, el
        for child in reversed([c for c in el if isinstance(c.tag, str)]):
            stack.append((f"{path}/{_local(child.tag)}", child))


def _keys(path: str, el: etree._Element, values: bool) -> Iterator[Key]:
    if path in _CONTAINERS and not el.attrib and not any(isinstance(c.tag, str) for c in el):
        return
    yield path, "", None
    for name, value in el.attrib.items():
        local = _local(name)
        attr = _ALIASES.get((path, local), local)
        yield path, attr, value if values else None
    text = (el.text or "").strip()
    if text and not any(isinstance(c.tag, str) for c in el):
        yield path, "#text", text if values else None


def shape(root: etree._Element, values: bool) -> Counter[Key]:
    return Counter(key for path, el in _walk(root) for key in _keys(path, el, values))


def node_shape(root: Node) -> Counter[Key]:
    """``shape(values=False)`` of the formatter's own tree, before it is rendered: what the parser
    honoured, without writing and re-reading the document (a cold start parses every file)."""
    out: Counter[Key] = Counter()
    stack: list[tuple[str, Node]] = [(_local_prefixed(root.tag), root)]
    while stack:
        path, node = stack.pop()
        if path in _OPAQUE:
            continue
        attrs = [name for name, value in node.attrs if value is not None and not name.startswith("xmlns")]
        if path in _CONTAINERS and not attrs and not node.children:
            continue
        out[(path, "", None)] += 1
        for name in attrs:
            out[(path, _local_prefixed(name), None)] += 1
        if node.text and node.text.strip() and not node.children:
            out[(path, "#text", None)] += 1
        stack.extend((f"{path}/{_local_prefixed(child.tag)}", child) for child in node.children)
    return out


def _local_prefixed(name: str) -> str:
    """``xen:arg`` -> ``arg``: the formatter spells namespaces with their prefix."""
    return name.rpartition(":")[2]


def lost(source: etree._Element, kept: etree._Element | Counter[Key], *, values: bool) -> list[Lost]:
    """Elements and attributes of ``source`` that ``kept`` (a document, or its shape) lacks,
    located in ``source``. A lost element is reported once, not once more for each of its
    attributes and children."""
    kept_shape = kept if isinstance(kept, Counter) else shape(kept, values)
    missing = shape(source, values) - kept_shape
    if not missing:
        return []
    out: list[Lost] = []
    gone: set[str] = set()
    for path, el in _walk(source):
        for key in _keys(path, el, values):
            if missing[key] <= 0:
                continue
            missing[key] -= 1
            if any(path == g or path.startswith(g + "/") for g in gone):
                continue
            _, attr, value = key
            if attr == "":
                gone.add(path)
                detail = ""
            elif attr == "#text":
                detail = f"text {(el.text or '').strip()!r}"
            else:
                detail = f"{attr}='{value if value is not None else el.get(attr, '')}'"
            out.append(Lost(el.sourceline, describe(el), detail, path, attr))
    return out


def locate(item: Lost, root: etree._Element) -> Lost:
    """``item`` (found in a canonical rewrite of a document) pointed at the element of the original
    ``root`` on the same path, preferring one that carries the lost attribute."""
    steps = item.path.split("/")[1:]
    candidates = [root]
    for step in steps:
        candidates = [c for parent in candidates for c in parent
                      if isinstance(c.tag, str) and etree.QName(c).localname == step]
    if not candidates:
        return item
    best = next((c for c in candidates if item.attribute and item.attribute in c.attrib), candidates[0])
    return Lost(best.sourceline, describe(best), item.detail, item.path, item.attribute)


_STEP = re.compile(r"<([\w:.-]+)((?:\s+[\w:.-]+='[^']*')*)\s*>")
_ATTR = re.compile(r"([\w:.-]+)='([^']*)'")


def element_line(root: etree._Element, element: str) -> int | None:
    """The line of the element an error names as ``<disk><target dev='hda'>`` (a path of tags,
    the last one's attributes to match): how a builder refusal, which only knows the model, is
    pointed at the document. None when nothing matches."""
    steps = [(m[1].split(":")[-1], dict(_ATTR.findall(m[2]))) for m in _STEP.finditer(element)]
    if not steps:
        return None
    tag, attrs = steps[-1]
    for el in root.iter(tag=etree.Element):
        if etree.QName(el).localname != tag:
            continue
        if any(k in el.attrib and el.get(k) != v for k, v in attrs.items()):
            continue  # an attribute the document leaves out is a default the builder spelt out
        ancestors = {etree.QName(a).localname for a in el.iterancestors()}
        if all(t in ancestors for t, _ in steps[:-1]):
            line: int | None = el.sourceline
            return line
    return None


__all__ = ["Lost", "describe", "shape", "node_shape", "lost", "locate", "element_line"]
