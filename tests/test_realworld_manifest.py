"""The real-world xl.cfg/xm corpus (tests/data/realworld/) keeps its provenance.

The differential test (issue 13) compares this agent with real ``xl -N create`` on these files;
it is only worth something if every file is a real, complete guest config whose origin can be
checked: listed in MANIFEST.tsv with its repository, path and commit, and not an unrendered
template (a placeholder would make xl and the agent agree on nonsense).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

REALWORLD = Path(__file__).parent / "data" / "realworld"
MANIFEST = REALWORLD / "MANIFEST.tsv"
COLUMNS = ["local_path", "repository", "path", "commit", "licence", "kind"]
#: Not corpus files: the provenance list itself and the record of what real xl made of each file.
OWN_FILES = {"MANIFEST.tsv", "XL_RESULTS.md"}
#: Jinja/Go/Helm ``{{ }}``/``{% %}``, shell/Perl-template ``${VAR}``, autoconf ``@FOO@``, ERB ``<% %>``.
PLACEHOLDER = re.compile(r"\{\{|\{%|\$\{|@[A-Z][A-Z0-9_]*@|<%")
#: A build-time sed target such as Yocto recipes substitute (``/dev/STORAGE_PART2``,
#: ``cpus="DOMF_ALLOWED_PCPUS"``): no xl.cfg value is an upper-case name with an underscore.
SED_TARGET = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]*[A-Z0-9]\b")


def _rows() -> list[dict[str, str]]:
    with MANIFEST.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        assert reader.fieldnames == COLUMNS
        return list(reader)


def _corpus_files() -> set[str]:
    return {p.relative_to(REALWORLD).as_posix() for p in REALWORLD.rglob("*")
            if p.is_file() and p.name not in OWN_FILES}


def test_every_file_is_listed_and_every_listed_file_is_present() -> None:
    listed = [row["local_path"] for row in _rows()]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    assert sorted(_corpus_files() - set(listed)) == [], "files without provenance"
    assert sorted(set(listed) - _corpus_files()) == [], "listed files missing"


def test_every_row_names_a_repository_path_commit_and_kind() -> None:
    for row in _rows():
        where = row["local_path"]
        assert re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", row["repository"]), where
        assert row["path"] and not row["path"].startswith("/"), where
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), where
        assert row["licence"], where
        assert row["kind"] in {"xl", "xm"}, where
        assert where.split("/")[0] == _slug(row["repository"]), f"{where}: not under its project's directory"
        assert Path(where).name == Path(row["path"]).name, f"{where}: original file name not kept"


def _slug(repository: str) -> str:
    return repository.lower().replace("/", "-").replace("_", "-").replace(".", "-")


def test_corpus_is_large_and_diverse_enough() -> None:
    rows = _rows()
    assert len(rows) >= 80
    assert len({row["repository"] for row in rows}) >= 15


def test_no_file_is_an_unrendered_template() -> None:
    offenders = []
    for path in sorted(_corpus_files()):
        text = (REALWORLD / path).read_bytes().decode("utf-8", "replace")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        if PLACEHOLDER.search(text) or SED_TARGET.search(code):
            offenders.append(path)
    assert offenders == []
