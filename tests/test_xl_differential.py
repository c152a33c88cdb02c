"""Differential test: real ``xl -N create`` (Xen 4.17, under the LD_PRELOAD shim) against
``xenreconcile render --no-policy`` on every real-world xl.cfg/xm file and every corpus xl.cfg.

For each file both sides either build, and then agree on every field of ``libxl_domain_config``
after libxl's own parser and printer normalised both (libxl leaves out defaults), or both refuse.
Only generated identity may differ: the uuid of a file without ``uuid=`` (xl makes a random one),
and nothing else. One field is xl's and not ours: 4.17's dry run prints a ``usbdev=`` device as
``{}`` (its union is printed before xl sets the type), while ``xl create`` itself passes hostbus and
hostaddr to libxl; the agent hands libxl both, so those two leaves are allowed to be ours alone.

``xl -N`` stops before libxl creates anything, so two refusals of ``xl create`` happen later than
the dry run: an HVM guest asking for ``device_model_version="qemu-xen-traditional"`` gets as far as
spawning ``qemu-dm``, which Xen 4.17 packages do not ship, and fails there; one with a ``soundhw``
libxl 4.17 does not know (``all``, ``ich6``) fails when libxl builds qemu's arguments. The agent
refuses both up front (with that reason); such a file counts as refused by both, and is listed.

The real-world files live in ``tests/data/realworld`` (``MANIFEST.tsv``: provenance; any other
directory with the same layout through ``XR_REALWORLD``). Run with ``-s`` to see the counts:
``.venv/bin/python -m pytest -s -q tests/test_xl_differential.py``.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import realxl

from libxl.errors import ConfigError
from libxl.frontends.hostconf import load_host_settings
from libxl.frontends.hostsettings import DEFAULT_XL_CONF
from libxl.frontends.xl import SOUNDHW_MODELS
from reconcilers.desired import DesiredDomain, parse_desired_file

pytestmark = pytest.mark.reallibxl

_MISSING = realxl.libxl_missing() or (None if realxl.XL.exists() else f"{realxl.XL} missing (xen-utils-4.17)")
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

REALWORLD = Path(os.environ.get("XR_REALWORLD", realxl.PROJECT / "tests" / "data" / "realworld"))
CORPUS = realxl.SHARED / "corpus" / "xlconfigdata"
#: The shim's host: 16 cpus (what xl cuts cpu lists to there).
SHIM_CPUS = 16
#: Leaves xl 4.17's dry run does not print though ``xl create`` hands them to libxl (see above).
XL_DRY_RUN_SILENT = {"usbdevs[].type.hostdev.hostbus", "usbdevs[].type.hostdev.hostaddr"}
#: The share of files that must agree (identical or both refused).
TARGET = 0.98
#: qemu-traditional's device model: absent from Xen 4.17 packages, so ``xl create`` fails to spawn it.
QEMU_DM = Path("/usr/lib/xen-4.17/bin/qemu-dm")


def refused_by_xl_create(theirs: dict, ours: ConfigError) -> bool:
    """xl's dry run built it, but ``xl create`` would fail where the agent refuses (see above)."""
    b_info = theirs.get("b_info") or {}
    hvm = b_info.get("type.hvm")
    if hvm is None:
        return False
    if ours.element == "device_model_version":
        return b_info.get("device_model_version") == "qemu_xen_traditional" and not QEMU_DM.exists()
    return ours.element == "soundhw" and hvm.get("soundhw") not in SOUNDHW_MODELS


def realworld_files() -> list[Path]:
    manifest = REALWORLD / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [REALWORLD / row["local_path"] for row in rows if (REALWORLD / row["local_path"]).is_file()]


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.cfg")) if CORPUS.is_dir() else []


@dataclass
class Outcome:
    identical: list[str] = field(default_factory=list)
    both_refuse: list[str] = field(default_factory=list)
    differ: list[str] = field(default_factory=list)
    built_but_xl_refuses: list[str] = field(default_factory=list)
    #: Of ``both_refuse``: refused by ``xl create`` only after its dry run (qemu-xen-traditional).
    at_create: list[str] = field(default_factory=list)

    def line(self) -> str:
        total = len(self.identical) + len(self.both_refuse) + len(self.differ)
        return (f"{total} files: {len(self.identical)} identical, {len(self.both_refuse)} both refuse "
                f"({len(self.at_create)} of them by xl create after its dry run), {len(self.differ)} differ")


def render(path: Path) -> DesiredDomain | ConfigError:
    """What ``render --no-policy`` prints, with this machine's xl.conf (which xl reads too) laid
    under and the shim's cpu count. Files are read as ``.cfg`` whatever their name (xm files too)."""
    host = replace(load_host_settings(DEFAULT_XL_CONF, None), cpus=SHIM_CPUS)
    return parse_desired_file(path.with_suffix(".cfg"), path.read_bytes(), "", None, host)


def differences(ours: Any, theirs: Any, file_has_uuid: bool) -> list[str]:
    mine, xl = realxl.flatten(ours), realxl.flatten(theirs)
    out = []
    for leaf in sorted(set(mine) | set(xl)):
        a, b = mine.get(leaf, "<absent>"), xl.get(leaf, "<absent>")
        if a == b or (leaf == "c_info.uuid" and not file_has_uuid):
            continue
        if re.sub(r"\[\d+\]", "[]", leaf) in XL_DRY_RUN_SILENT and b == "<absent>":
            continue
        out.append(f"{leaf}: ours {a!r}, xl {b!r}")
    return out


def compare(files: list[Path]) -> Outcome:
    outcome = Outcome()
    pairs: list[tuple[Path, DesiredDomain, dict]] = []
    for path in files:
        theirs, why = realxl.xl_create_dry(path)
        ours = render(path)
        if theirs is None and isinstance(ours, ConfigError):
            outcome.both_refuse.append(path.name)
        elif theirs is None:
            reason = why.splitlines()[-1] if why else "crash"
            outcome.differ.append(f"{path}: xl refuses ({reason}), we build")
            outcome.built_but_xl_refuses.append(str(path))
        elif isinstance(ours, ConfigError) and refused_by_xl_create(theirs, ours):
            outcome.both_refuse.append(path.name)
            outcome.at_create.append(path.name)
        elif isinstance(ours, ConfigError):
            outcome.differ.append(f"{path}: xl builds, we refuse: {ours}")
        else:
            pairs.append((path, ours, theirs))
    normalised = realxl.roundtrip([o.config for _, o, _ in pairs] + [t for _, _, t in pairs])
    half = len(pairs)
    for index, (path, ours, _) in enumerate(pairs):
        mine, xl = normalised[index], normalised[half + index]
        if "error" in mine or "error" in xl:
            outcome.differ.append(f"{path}: libxl refuses ours: {mine.get('error') or xl.get('error')}")
            continue
        problems = [f"libxl drops {p}" for p in realxl.lost_fields(ours.config, mine["json"])]
        problems += differences(mine["json"], xl["json"], "uuid" in ours.config["c_info"])
        if problems:
            outcome.differ.append(f"{path}: " + "; ".join(problems[:6]))
        else:
            outcome.identical.append(path.name)
    return outcome


def check(outcome: Outcome, label: str) -> None:
    print(f"\n{label}: {outcome.line()}")
    for line in outcome.differ:
        print("  differ:", line)
    total = len(outcome.identical) + len(outcome.both_refuse) + len(outcome.differ)
    agree = len(outcome.identical) + len(outcome.both_refuse)
    assert outcome.built_but_xl_refuses == [], "files built that xl refuses"
    assert agree >= TARGET * total, f"{label}: {outcome.line()}:\n" + "\n".join(outcome.differ)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent")
def test_corpus_xl_cfg_files_agree_with_xl() -> None:
    files = corpus_files()
    outcome = compare(files)
    check(outcome, "corpus")
    assert len(files) >= 34


def test_realworld_files_agree_with_xl() -> None:
    files = realworld_files()
    if not files:
        pytest.skip(f"no real-world corpus at {REALWORLD} (MANIFEST.tsv and the files it lists)")
    outcome = compare(files)
    check(outcome, "real-world")
    assert len(files) >= 80, f"only {len(files)} real-world files"


def test_a_difference_is_seen() -> None:
    """The comparison itself: a config that differs in one leaf from xl's is reported."""
    xl = {"c_info": {"name": "a", "uuid": "x"}, "b_info": {"max_memkb": 1024}}
    ours = {"c_info": {"name": "a", "uuid": "y"}, "b_info": {"max_memkb": 2048}}
    assert differences(ours, xl, file_has_uuid=False) == ["b_info.max_memkb: ours 2048, xl 1024"]
    assert differences(ours, xl, file_has_uuid=True)[0].startswith("b_info.max_memkb")
    assert "c_info.uuid: ours 'y', xl 'x'" in differences(ours, xl, file_has_uuid=True)
