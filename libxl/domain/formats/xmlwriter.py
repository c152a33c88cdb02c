"""A tiny XML writer that produces libvirt's layout byte for byte.

lxml's serializer puts namespace declarations before attributes and uses double quotes; libvirt
writes attributes in a fixed order, single-quoted, two-space indented. Writing the text ourselves
is simpler than post-processing lxml output, and keeps the formatter a pure function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Attrs = list[tuple[str, str | None]]

#: libvirt's virBufferEscapeString escapes all five XML specials, in text and attributes alike.
_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;"})


class _Absent:
    """Marker for "this element has no text" as opposed to "the value is absent (None)"."""


ABSENT = _Absent()


#: XML parsers turn a raw CR (or CRLF) into LF, and in attribute values also LF and TAB into spaces:
#: these must go out as character references or a value does not read back as it was.
_TEXT_WHITESPACE = str.maketrans({"\r": "&#13;"})
_ATTR_WHITESPACE = str.maketrans({"\r": "&#13;", "\n": "&#10;", "\t": "&#9;"})


def escape(text: str) -> str:
    return text.translate(_ESCAPES).translate(_TEXT_WHITESPACE)


def escape_attr(value: str) -> str:
    return value.translate(_ESCAPES).translate(_ATTR_WHITESPACE)


@dataclass
class Node:
    tag: str
    attrs: Attrs = field(default_factory=list)
    text: str | None = None
    children: list[Node] = field(default_factory=list)

    def add(self, tag: str, attrs: Attrs | None = None) -> Node:
        """Append a container element (written even when it ends up empty)."""
        child = Node(tag, list(attrs or []))
        self.children.append(child)
        return child

    def leaf(self, tag: str, attrs: Attrs | None = None, text: str | None | _Absent = ABSENT) -> None:
        """Append an element without children; ``text=None`` means the value is unset: write nothing."""
        if text is None:
            return
        self.children.append(Node(tag, list(attrs or []), None if isinstance(text, _Absent) else text))


def _open(node: Node) -> str:
    attrs = "".join(f" {name}='{escape_attr(value)}'" for name, value in node.attrs if value is not None)
    return f"<{node.tag}{attrs}"


def _lines(node: Node, depth: int) -> list[str]:
    pad = "  " * depth
    if node.children:
        out = [f"{pad}{_open(node)}>"]
        for child in node.children:
            out.extend(_lines(child, depth + 1))
        return out + [f"{pad}</{node.tag}>"]
    if node.text:
        return [f"{pad}{_open(node)}>{escape(node.text)}</{node.tag}>"]
    return [f"{pad}{_open(node)}/>"]


def render(root: Node) -> str:
    """The document as text, newline-terminated, without an XML declaration (as libvirt writes it)."""
    return "\n".join(_lines(root, 0)) + "\n"
