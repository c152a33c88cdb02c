"""Reading xl.cfg values the way libxlu (xl's config library) reads them.

libxlu keeps every atom as text: ``memory = 512`` and ``memory = "512"`` are the same, and a number
is read with ``strtol(.., 0)`` (so ``0x10`` is 16 and ``010`` is 8). A value of the wrong shape (a
list where a string is wanted, text where a number is wanted) makes xl print a warning and carry on
as if the key were absent; ``XlValues`` does the same and records the warning, so nothing is
dropped silently. Every key read is remembered, so the caller can warn about the keys xl never
reads (xl ignores them without a word).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from libxl.domain.formats.xlcfg import Setting, SettingsReader, Value
from libxl.errors import ConfigError

_C_LONG = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def c_strtol(text: str) -> int | None:
    """``strtol(text, &end, 0)`` that must consume the whole text and fit a C long, or None."""
    m = _C_LONG.fullmatch(text)
    if not m:
        return None
    digits = m.group(2)
    base = 16 if digits[:2].lower() == "0x" else 8 if digits[0] == "0" else 10
    value = int(digits, base)
    value = -value if m.group(1) == "-" else value
    return value if -2**63 <= value < 2**63 else None  # strtol's ERANGE: xl ignores the value


def atom_text(value: Value) -> str | None:
    """The text libxlu stores for an atom; None for a list."""
    if isinstance(value, list):
        return None
    return str(value)


@dataclass
class XlValues(SettingsReader):
    """Typed reads of one file's settings, with xl's tolerance and our warnings."""
    settings: dict[str, Setting]
    file: str | None
    warnings: list[ConfigError] = field(default_factory=list)
    read: set[str] = field(default_factory=set)

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(self.error(key, message))

    def has(self, key: str) -> bool:
        self.read.add(key)
        return key in self.settings

    def string(self, key: str) -> str | None:
        """xlu_cfg_get_string: an atom's text; a list is warned about and ignored, as xl does."""
        value = self.raw(key)
        if value is None:
            return None
        text = atom_text(value)
        if text is None:
            self.warn(key, "expected a single value, got a list: ignored (as xl does)")
        return text

    def long(self, key: str, quiet: bool = False) -> int | None:
        """xlu_cfg_get_long: a whole number (C syntax); anything else is ignored with a warning."""
        value = self.raw(key)
        if value is None:
            return None
        text = atom_text(value)
        number = c_strtol(text) if text is not None else None
        if number is None and not quiet:
            self.warn(key, f"expected a number, got {value!r}: ignored (as xl does)")
        return number

    def defbool(self, key: str) -> str | None:
        """xlu_cfg_get_defbool: a number, non-zero meaning true, as libxl's ``"True"``/``"False"``."""
        number = self.long(key)
        return None if number is None else ("True" if number else "False")

    def items(self, key: str) -> list[str] | None:
        """xlu_cfg_get_list + get_listitem: the leading string items of a list (a nested list
        ends them, as in xl); a single atom is warned about and ignored, as xl does."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.warn(key, "expected a list, got a single value: ignored (as xl does)")
            return None
        out = []
        for item in value:
            if isinstance(item, list):
                self.warn(key, f"item {len(out)} is a nested list: it and the items after it are ignored "
                               "(as xl does)")
                break
            out.append(str(item))
        return out

    def list_or_atom(self, key: str) -> tuple[list[str] | None, str | None]:
        """Keys xl takes as a list or, failing that, as one value (``serial``, ``usbdevice``):
        (the list's strings, None) or (None, the value); (None, None) when absent."""
        value = self.raw(key)
        if isinstance(value, list):
            return [str(v) for v in value if not isinstance(v, list)], None
        return None, None if value is None else str(value)


__all__ = ["XlValues", "c_strtol", "atom_text"]
