"""Build hook for the optional native libxl binding (everything else is in pyproject.toml).

The cffi module is only declared when ``<libxl.h>`` is found, and it is marked optional, so
``pip install`` succeeds on a machine without libxen-dev; ``xen:///system`` then says why it is
unavailable. Stale in-tree builds are a known pip pitfall: build from a clean ``build/``.
"""

import sys
from pathlib import Path

from setuptools import find_packages, setup

sys.path.insert(0, str(Path(__file__).parent / "libxl" / "hosts" / "binding"))
from build_ffi import headers_available  # noqa: E402

#: The project's layers keep short import names inside the project; installed, they live under the
#: one name it claims, ``xenreconcile`` (whose ``main`` puts them on sys.path: see its docstring).
LAYERS = ("agent", "reconcilers", "libxl")

setup(
    packages=["xenreconcile",
              *(f"xenreconcile.{p}" for p in find_packages(include=[f"{t}*" for t in LAYERS]))],
    package_dir={"xenreconcile": "xenreconcile", **{f"xenreconcile.{t}": t for t in LAYERS}},
    cffi_modules=["libxl/hosts/binding/build_ffi.py:ffibuilder"] if headers_available() else [],
)
