"""Read one desired-state file into a Domain, choosing the format by the file's suffix.

The validator, the desired-set loader and the agent all read files through here, so they agree on
which files count (``DESIRED_SUFFIXES``) and every failure, including an unreadable file, is the
same located ``ConfigError``.
"""

from __future__ import annotations

from pathlib import Path

from libxl.domain.formats.domxml import MAX_XML_BYTES, locate_error, parse_domain_xml
from libxl.domain.formats.readfile import Trust, read_regular
from libxl.domain.formats.xl import parse_xl
from libxl.domain.formats.xlcfg import config_text
from libxl.domain.model import Domain
from libxl.errors import ConfigError

#: Suffixes of desired-state files: libvirt domain XML and xl.cfg(5).
DESIRED_SUFFIXES = (".xml", ".cfg")
#: Names editors and tools leave next to the files they save (vim's ``4913`` write probe included).
_LITTER_SUFFIXES = ("~", ".swp", ".swx", ".swo", ".tmp", ".bak", ".orig", ".rej", ".dpkg-new", ".dpkg-old")
_LITTER_NAMES = frozenset({"4913"})


def is_desired_name(name: str) -> bool:
    """True for a file name a desired-state directory scan reads: known suffix, no dotfile
    (``.#x`` lock files, ``.x.swp``), no ``#x#`` autosave, no editor or packaging litter."""
    if name.startswith((".", "#")) or name in _LITTER_NAMES or name.endswith(_LITTER_SUFFIXES):
        return False
    return name.lower().endswith(DESIRED_SUFFIXES)


def read_desired_bytes(path: Path, trust: Trust | None = None) -> bytes:
    """The bytes of one desired file, read race-free (``readfile``): a regular file only (a FIFO
    or device is refused unopened), every component judged by ``trust`` when given (the agent's
    strict_modes), at most ``MAX_XML_BYTES`` read. Every failure is a located ``ConfigError``."""
    return read_regular(str(path), MAX_XML_BYTES, trust)


def load_domain_file(path: Path) -> Domain:
    """Parse ``path`` as domain XML (``.xml``) or xl.cfg (``.cfg``)."""
    _check_suffix(path)
    return parse_domain_bytes(path, read_desired_bytes(path))


def _check_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in DESIRED_SUFFIXES:
        expected = ", ".join(DESIRED_SUFFIXES)
        raise ConfigError(f"unknown file type {path.suffix!r} (expected {expected})", file=str(path))
    return suffix


def parse_domain_bytes(path: Path, data: bytes) -> Domain:
    """Parse ``data``, already read from ``path``: callers that hash what they read (the desired
    loader) parse exactly those bytes, never a second read that a concurrent write could change."""
    suffix = _check_suffix(path)
    if suffix == ".xml":
        return parse_domain_xml(data, file=str(path))
    return parse_xl(config_text(data, str(path), MAX_XML_BYTES), file=str(path))


def located(err: ConfigError, path: Path, data: bytes) -> ConfigError:
    """``err`` pointed at ``path`` and, for domain XML, at the line of the element it names (the
    libxl builder's refusals know the model, not the document)."""
    if path.suffix.lower() == ".xml":
        return locate_error(err, data, str(path))
    return err.located(str(path))


__all__ = ["DESIRED_SUFFIXES", "is_desired_name", "load_domain_file", "located", "parse_domain_bytes",
           "read_desired_bytes"]
