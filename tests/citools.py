"""Tools CI installs (``.ci/run``) and the tests that need them."""

from __future__ import annotations

import os
import shutil

import pytest


def ci_tool(name: str, package: str) -> str:
    """The path of a tool CI installs (``.ci/run``): missing there is a failure, because a skip
    would let CI pass without the check; elsewhere (a developer's machine) a skip with the reason.
    ``.ci/run`` exports ``CI``, as hosted CI services do."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian package {package!r})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI installs it: the check cannot be skipped there")
        pytest.skip(reason)
    return path
