"""Build hook for the optional native libxl binding (everything else is in pyproject.toml).

The cffi module is only declared when ``<libxl.h>`` is found, and it is marked optional, so
``pip install`` succeeds on a machine without libxen-dev; ``xen:///system`` then says why it is
unavailable. Stale in-tree builds are a known pip pitfall: build from a clean ``build/``.
"""

import sys
from pathlib import Path

from setuptools import setup

sys.path.insert(0, str(Path(__file__).parent / "libxl" / "binding"))
from build_ffi import headers_available  # noqa: E402

setup(cffi_modules=["libxl/binding/build_ffi.py:ffibuilder"] if headers_available() else [])
