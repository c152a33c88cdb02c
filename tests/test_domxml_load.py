"""load_domain_file: suffix dispatch, file errors, and the desired-file name filter."""

from __future__ import annotations

from pathlib import Path

import pytest

from libxl.domain.formats.domxml import MAX_XML_BYTES
from libxl.domain.formats.load import DESIRED_SUFFIXES, is_desired_name, load_domain_file
from libxl.errors import ConfigError

GUEST = "<domain type='xen'><name>g</name><memory>1024</memory><os><type>linux</type></os></domain>"


def test_xml_is_parsed_with_the_file_named_in_errors(tmp_path: Path) -> None:
    good = tmp_path / "g.xml"
    good.write_text(GUEST)
    assert load_domain_file(good).name == "g"
    bad = tmp_path / "bad.xml"
    bad.write_text(GUEST.replace("linux", "dos"))
    with pytest.raises(ConfigError, match=r"bad\.xml:1: <type>: must be one of"):
        load_domain_file(bad)


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = tmp_path / "G.XML"
    path.write_text(GUEST)
    assert load_domain_file(path).name == "g"


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text("{}")
    with pytest.raises(ConfigError, match=r"g\.json: unknown file type '\.json' \(expected \.xml, \.cfg\)"):
        load_domain_file(path)


def test_missing_and_unreadable_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.xml: cannot read: No such file or directory"):
        load_domain_file(tmp_path / "nope.xml")
    directory = tmp_path / "dir.xml"
    directory.mkdir()
    with pytest.raises(ConfigError, match=r"dir\.xml: cannot read: Is a directory"):
        load_domain_file(directory)


def test_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.xml"
    path.write_bytes(b"<domain type='xen'>" + b" " * (4 * MAX_XML_BYTES) + b"</domain>")
    with pytest.raises(ConfigError, match="byte limit"):
        load_domain_file(path)


def test_cfg_is_read_by_the_xl_reader(tmp_path: Path) -> None:
    path = tmp_path / "g.cfg"
    path.write_text("name = 'g'\nmemory = 128\nkernel = '/boot/vmlinuz'\n")
    dom = load_domain_file(path)
    assert (dom.name, dom.memory_kib, dom.os.kernel) == ("g", 128 * 1024, "/boot/vmlinuz")


def test_cfg_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "g.cfg"
    path.write_text("name = 'g'\nmemory = [\n")
    with pytest.raises(ConfigError, match=r"g\.cfg"):
        load_domain_file(path)


def test_cfg_must_be_utf8(tmp_path: Path) -> None:
    path = tmp_path / "g.cfg"
    path.write_bytes(b"name = '\xff'\n")
    with pytest.raises(ConfigError, match=r"g\.cfg: not UTF-8 text \(byte 8\)"):
        load_domain_file(path)


@pytest.mark.parametrize(("name", "wanted"), [
    ("web.xml", True), ("db.cfg", True), ("WEB.XML", True),
    (".web.xml", False), (".web.xml.swp", False), ("web.xml~", False), (".#web.xml", False),
    ("#web.xml#", False), ("4913", False), ("web.xml.bak", False), ("web.xml.dpkg-new", False),
    ("notes.txt", False), ("web.json", False),
])
def test_desired_name_filter(name: str, wanted: bool) -> None:
    assert is_desired_name(name) is wanted


def test_suffixes() -> None:
    assert DESIRED_SUFFIXES == (".xml", ".cfg")
