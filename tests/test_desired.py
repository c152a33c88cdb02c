"""The desired set: suffix allow-list, litter, symlinks, conflicts, last good, empty, cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from reconcile_fixtures import domain_xml, uuid_for

from libxl.domain.formats.load import is_desired_name
from libxl.errors import ConfigError
from reconcilers import desired as desired_mod
from reconcilers.desired import load_desired


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def parse_count(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Records every file the loader actually parses."""
    calls: list[Path] = []
    real = desired_mod.parse_domain_bytes

    def counting(path: Path, data: bytes):
        calls.append(path)
        return real(path, data)

    monkeypatch.setattr(desired_mod, "parse_domain_bytes", counting)
    return calls


def test_loads_domain_xml_and_builds_the_libxl_config(tmp_path: Path) -> None:
    write(tmp_path / "web.xml", domain_xml("web", current_mib=256, power="paused"))
    result = load_desired(tmp_path)
    web = result.domains["web"]
    assert web.file == tmp_path / "web.xml"
    assert web.config["b_info"]["target_memkb"] == 262144
    assert web.uuid == uuid_for("web")
    assert web.power_state == "paused"
    assert len(web.content_hash) == 64
    assert not result.invalid and not result.conflicts and not result.empty_suspicious


def test_loads_xl_cfg(tmp_path: Path) -> None:
    write(tmp_path / "db.cfg", 'name = "db"\nmemory = 256\nkernel = "/boot/vmlinuz"\n'
          "disk = [ '/img/db.img,raw,xvda,rw' ]\n")
    result = load_desired(tmp_path)
    assert result.invalid == {}
    assert result.domains["db"].config["b_info"]["max_memkb"] == 262144


@pytest.mark.parametrize("name", [".web.xml", ".web.xml.swp", "web.xml~", ".#web.xml", "4913", "web.txt",
                                  "web.xml.bak", "#web.xml#", "web.xml.dpkg-old", "README"])
def test_litter_is_never_read(tmp_path: Path, name: str) -> None:
    assert not is_desired_name(name)
    write(tmp_path / name, domain_xml("ghost"))
    result = load_desired(tmp_path)
    assert result.domains == {} and result.invalid == {}
    assert result.empty_suspicious


def test_subdirectories_are_not_read(tmp_path: Path) -> None:
    (tmp_path / "old.xml").mkdir()
    write(tmp_path / "old.xml" / "web.xml", domain_xml("web"))
    assert load_desired(tmp_path).domains == {}


def test_symlinked_files_and_a_swapped_directory_link_are_followed(tmp_path: Path) -> None:
    v1, v2 = tmp_path / "rev1", tmp_path / "rev2"
    v1.mkdir()
    v2.mkdir()
    write(v1 / "web.xml", domain_xml("web", memory_mib=512))
    write(v2 / "web.xml", domain_xml("web", memory_mib=1024))
    write(tmp_path / "shared.xml", domain_xml("shared"))
    os.symlink(tmp_path / "shared.xml", v2 / "shared.xml")
    link = tmp_path / "current"
    os.symlink(v1, link)
    first = load_desired(link)
    assert first.domains["web"].config["b_info"]["max_memkb"] == 524288
    tmp = tmp_path / "current.new"
    os.symlink(v2, tmp)
    os.replace(tmp, link)  # how git-sync publishes a new revision
    second = load_desired(link, first)
    assert second.domains["web"].config["b_info"]["max_memkb"] == 1048576
    assert set(second.domains) == {"web", "shared"}


def test_dangling_symlink_is_invalid(tmp_path: Path) -> None:
    os.symlink(tmp_path / "nowhere.xml", tmp_path / "web.xml")
    result = load_desired(tmp_path)
    assert "dangling symlink" in str(result.invalid[tmp_path / "web.xml"])


def test_same_name_in_two_files_is_a_conflict(tmp_path: Path) -> None:
    write(tmp_path / "a.xml", domain_xml("web"))
    write(tmp_path / "b.xml", domain_xml("web", uuid=uuid_for("other")))
    write(tmp_path / "c.xml", domain_xml("db"))
    result = load_desired(tmp_path)
    assert set(result.domains) == {"db"}
    assert result.conflicts == {"web": [tmp_path / "a.xml", tmp_path / "b.xml"]}


def test_same_uuid_under_two_names_is_a_conflict_on_both(tmp_path: Path) -> None:
    write(tmp_path / "a.xml", domain_xml("web", uuid=uuid_for("x")))
    write(tmp_path / "b.xml", domain_xml("www", uuid=uuid_for("x").upper()))
    result = load_desired(tmp_path)
    assert result.domains == {}
    assert set(result.conflicts) == {"web", "www"}
    assert result.conflicts["www"] == [tmp_path / "a.xml", tmp_path / "b.xml"]


def test_broken_file_is_reported_with_its_location(tmp_path: Path) -> None:
    write(tmp_path / "web.xml",
          "<domain type='xen'>\n<name>web</name>\n<memory unit='XB'>1</memory></domain>")
    result = load_desired(tmp_path)
    err = result.invalid[tmp_path / "web.xml"]
    assert isinstance(err, ConfigError)
    assert err.file == str(tmp_path / "web.xml") and err.line == 3
    assert result.domains == {} and not result.empty_suspicious


def test_broken_file_keeps_the_last_good_version_in_force(tmp_path: Path) -> None:
    path = write(tmp_path / "web.xml", domain_xml("web", memory_mib=512))
    good = load_desired(tmp_path)
    write(path, domain_xml("web", memory_mib=1024).replace("</domain>", ""))
    broken = load_desired(tmp_path, good)
    assert broken.domains["web"].config["b_info"]["max_memkb"] == 524288
    assert broken.last_good == {path: good.domains["web"]}
    assert path in broken.invalid
    assert broken.invalid_names() == {"web"}
    still_broken = load_desired(tmp_path, broken)  # the last good survives more than one scan
    assert still_broken.domains["web"] is good.domains["web"]
    write(path, domain_xml("web", memory_mib=2048))
    fixed = load_desired(tmp_path, still_broken)
    assert fixed.domains["web"].config["b_info"]["max_memkb"] == 2097152
    assert fixed.invalid == {} and fixed.last_good == {}


def test_empty_directory_is_suspicious(tmp_path: Path) -> None:
    assert load_desired(tmp_path).empty_suspicious
    write(tmp_path / "web.xml", domain_xml("web"))
    assert not load_desired(tmp_path).empty_suspicious


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_desired(tmp_path / "absent")


def test_unchanged_rescan_parses_nothing_and_a_touch_reuses_the_content_hash(
        tmp_path: Path, parse_count: list[Path]) -> None:
    for i in range(5):
        write(tmp_path / f"g{i}.xml", domain_xml(f"g{i}"))
    first = load_desired(tmp_path)
    assert len(parse_count) == 5
    second = load_desired(tmp_path, first)
    assert len(parse_count) == 5
    assert second.domains["g0"] is first.domains["g0"]
    os.utime(tmp_path / "g0.xml", ns=(1, 1))  # new mtime, same bytes
    load_desired(tmp_path, second)
    assert len(parse_count) == 5
    write(tmp_path / "g1.xml", domain_xml("g1", memory_mib=1024))
    load_desired(tmp_path, second)
    assert parse_count[5:] == [tmp_path / "g1.xml"]


def test_an_unchanged_rescan_shares_the_assembled_set_and_a_change_does_not(tmp_path: Path) -> None:
    """A no-op rescan gives the same domains without assembling them again (its dicts are the
    previous set's, which is how the agent knows nothing is affected); any change assembles anew."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.xml").write_text(domain_xml(name))
    (tmp_path / "c.xml").write_text("<domain>")
    first = load_desired(tmp_path)
    again = load_desired(tmp_path, first)
    assert again is not first and again.domains is first.domains and again.invalid is first.invalid
    fresh = load_desired(tmp_path)
    assert again.domains == fresh.domains and (again.conflicts, again.last_good) == (fresh.conflicts, {})
    assert {p: str(e) for p, e in again.invalid.items()} == {p: str(e) for p, e in fresh.invalid.items()}
    (tmp_path / "b.xml").unlink()
    fewer = load_desired(tmp_path, again)
    assert fewer.domains is not again.domains and sorted(fewer.domains) == ["a"]
    (tmp_path / "b.xml").write_text(domain_xml("b"))
    assert sorted(load_desired(tmp_path, fewer).domains) == ["a", "b"]
    assert load_desired(tmp_path, first, security=None).domains is not first.domains  # another policy
