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

