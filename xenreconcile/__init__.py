"""The installed entry point of ``xenreconcile``, and the only import name the project claims.

The modules keep their short top-level names inside the project (``agent``, ``reconcilers``,
``libxl``), which are too generic to own in a system's site-packages: an installed copy puts them
under this package's directory (setup.py maps them there) and the command puts that directory
first on ``sys.path`` before importing the CLI. The Debian package does the same from
/usr/lib/xenreconcile. Import nothing else from here: the modules are private to the command.
"""

import importlib.util
import sys
from pathlib import Path


def private_dir() -> Path:
    """The directory holding ``agent``, ``reconcilers`` and ``libxl``: this package's own directory
    once installed, the source tree in an editable install (setuptools maps it there)."""
    spec = importlib.util.find_spec("xenreconcile.agent")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("xenreconcile: broken installation: the agent package is missing")
    return Path(next(iter(spec.submodule_search_locations))).parent


def main() -> int:
    sys.path.insert(0, str(private_dir()))
    from agent.cli.main import main as cli_main

    return cli_main()
