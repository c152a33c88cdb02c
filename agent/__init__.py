"""The agent layer. ``VERSION`` is the release, as pyproject.toml and debian/changelog give it
(tests/test_version.py keeps the three equal): read at run time from here rather than from the
installed distribution's metadata, which the Debian package, its modules in a private directory,
does not have (build_info said version="unknown" there), and which cost the agent's start an
importlib.metadata import."""

VERSION = "0.1.0"
