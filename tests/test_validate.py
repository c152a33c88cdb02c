"""``xenreconcile validate``: one line per problem, exit 1 on any, conflicts across files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.cli.main import main

Capture = pytest.CaptureFixture[str]

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "desired"
#: The examples' own policy (allows qemu-passthrough.xml's device model arguments).
EXAMPLES_POLICY = str(EXAMPLES.parent / "xenreconcile.toml")


def guest(name: str, uuid: str | None = None, memory: str = "<memory unit='MiB'>256</memory>") -> str:
    uuid_el = f"<uuid>{uuid}</uuid>" if uuid else ""
    return (f"<domain type='xen'>\n  <name>{name}</name>\n  {uuid_el}\n  {memory}\n"
            "  <os><type>linux</type></os>\n</domain>\n")


def run(capsys: Capture, *args: str) -> tuple[int, list[str]]:
    code = main(["validate", *args])
    return code, capsys.readouterr().out.splitlines()


def test_all_examples_validate(capsys: Capture) -> None:
    code, lines = run(capsys, "-v", "--config", EXAMPLES_POLICY, str(EXAMPLES))
    names = {p.stem for p in EXAMPLES.glob("*.xml")}
    assert {"pv-bootloader", "pv-kernel", "hvm-bios", "hvm-kernel", "qemu-passthrough"} <= names
    assert code == 0
    assert len(lines) == len(list(EXAMPLES.glob("*.xml"))) + len(list(EXAMPLES.glob("*.cfg")))
    pv = f"{EXAMPLES / 'pv-bootloader.xml'}: ok: pv-bootloader (pv), 128 MiB, 1 vcpus, 1 disks, 1 nics"
    assert pv in lines
    assert f"{EXAMPLES / 'hvm-bios.xml'}: ok: hvm-bios (hvm), 512 MiB, 1 vcpus, 2 disks, 1 nics" in lines


def test_valid_files_print_nothing_without_verbose(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "a.xml").write_text(guest("a"))
    assert run(capsys, str(tmp_path / "a.xml")) == (0, [])


def test_one_line_per_problem(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "good.xml").write_text(guest("good"))
    (tmp_path / "unit.xml").write_text(guest("u", memory="<memory unit='XB'>1</memory>"))
    (tmp_path / "kvm.xml").write_text(guest("k").replace("'xen'", "'kvm'"))
    code, lines = run(capsys, str(tmp_path))
    assert code == 1
    assert lines == [f"{tmp_path / 'kvm.xml'}:1: <domain type='kvm'>: domain type must be 'xen', not 'kvm'",
                     f"{tmp_path / 'unit.xml'}:4: <memory unit='XB'>: unknown unit 'XB'"]


def test_directory_skips_litter_and_other_files(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "a.xml").write_text(guest("a"))
    for litter in (".a.xml.swp", "a.xml~", ".#a.xml", "4913", "README.md", ".hidden.xml"):
        (tmp_path / litter).write_text("garbage <<<")
    (tmp_path / "sub.xml").mkdir()
    code, lines = run(capsys, "--verbose", str(tmp_path))
    assert (code, lines) == (0, [f"{tmp_path / 'a.xml'}: ok: a (pv), 256 MiB, 1 vcpus, 0 disks, 0 nics"])


def test_explicit_file_is_checked_whatever_its_name(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "a.txt").write_text(guest("a"))
    code, lines = run(capsys, str(tmp_path / "a.txt"))
    assert code == 1 and lines == [f"{tmp_path / 'a.txt'}: unknown file type '.txt' (expected .xml, .cfg)"]


def test_missing_path(tmp_path: Path, capsys: Capture) -> None:
    code, lines = run(capsys, str(tmp_path / "nope"))
    assert code == 1 and lines == [f"{tmp_path / 'nope'}: no such file or directory"]


def test_duplicate_name_is_a_conflict(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "a.xml").write_text(guest("web"))
    (tmp_path / "b.xml").write_text(guest("web"))
    code, lines = run(capsys, str(tmp_path))
    assert code == 1
    assert lines == [f"{tmp_path / 'b.xml'}: conflict: name 'web' is also declared by {tmp_path / 'a.xml'}"]


def test_duplicate_uuid_is_a_conflict_whatever_its_spelling(tmp_path: Path,
                                                            capsys: Capture) -> None:
    (tmp_path / "a.xml").write_text(guest("a", "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"))
    (tmp_path / "b.xml").write_text(guest("b", "4DEA22B31D52D8F32516782E98AB3FA0"))
    code, lines = run(capsys, str(tmp_path))
    assert code == 1
    assert lines == [f"{tmp_path / 'b.xml'}: conflict: uuid '4dea22b3-1d52-d8f3-2516-782e98ab3fa0' "
                     f"is also declared by {tmp_path / 'a.xml'}"]


def test_examples_can_share_a_directory_without_conflict(tmp_path: Path,
                                                         capsys: Capture) -> None:
    """Copies of the examples plus the same files named twice still only conflict with each other."""
    for src in EXAMPLES.glob("*.xml"):
        shutil.copy(src, tmp_path / src.name)
    code, _ = run(capsys, "--config", EXAMPLES_POLICY, str(tmp_path))
    assert code == 0
    code, lines = run(capsys, "--config", EXAMPLES_POLICY, str(tmp_path), str(EXAMPLES / "hvm-bios.xml"))
    assert code == 1
    assert any("conflict: name 'hvm-bios'" in line for line in lines)


def test_summary_goes_to_stderr(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "a.xml").write_text(guest("a"))
    main(["validate", "-v", str(tmp_path)])
    assert capsys.readouterr().err.strip() == "1 files checked, 1 parsed, 0 problems"


def test_policy_applies_by_default_and_can_be_skipped(tmp_path: Path, capsys: Capture) -> None:
    """The examples' qemu arguments need the examples' own policy; the strict default refuses them."""
    example = EXAMPLES / "qemu-passthrough.xml"
    code, lines = run(capsys, "--config", str(tmp_path / "absent.toml"), str(example))
    assert code == 2 and lines == []
    (tmp_path / "defaults.toml").write_text("")
    code, lines = run(capsys, "--config", str(tmp_path / "defaults.toml"), str(example))
    assert code == 1
    assert lines == [f"{example}:26: <xen:arg value='-drive'>: device model arguments are not allowed "
                     "(allow_device_model_args = false)"]
    assert run(capsys, "--no-policy", str(example)) == (0, [])


def test_the_seeds_floppy_is_refused_like_libxl_refuses_it(tmp_path: Path, capsys: Capture) -> None:
    """The seed's HVM guest has a floppy; libxl has no floppy drives, so the agent would refuse the
    file: validate must say so in GitOps CI rather than pass it."""
    text = (EXAMPLES / "hvm-bios.xml").read_text().replace(
        "  </devices>", "    <disk type='file' device='floppy'>\n      <source file='/root/fd.img'/>\n"
        "      <target dev='fda'/>\n    </disk>\n  </devices>")
    bad = tmp_path / "hvm-floppy.xml"
    bad.write_text(text)
    code, lines = run(capsys, str(bad))
    assert code == 1
    line = text.splitlines().index("      <target dev='fda'/>") + 1  # issue 13: located like every refusal
    assert lines == [f"{bad}:{line}: <disk><target dev='fda'>: libxl has no floppy drives"]
