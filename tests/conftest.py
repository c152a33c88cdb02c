"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
#: libvirt's Xen conversion test data, next to the checkout (see ../shared/README.md).
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    """The corpus directory; skips (with the reason) when ../shared/corpus is not there."""
    if not (SHARED_CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"../shared/corpus is absent: {SHARED_CORPUS} has no MANIFEST.tsv "
                    "(libvirt's Xen conversion test data)")
    return SHARED_CORPUS


def ci_tool(name: str, package: str) -> str:
    """The path of a tool CI installs (``.ci/run``): missing there is a failure, because a skip
    would let CI pass without the check; elsewhere (a developer's machine) a skip with the reason.
    ``.ci/run`` exports ``CI``, as hosted CI services do."""
    import os
    import shutil

    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian package {package!r})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI installs it: the check cannot be skipped there")
        pytest.skip(reason)
    return path
