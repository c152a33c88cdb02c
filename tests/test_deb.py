"""The Debian package (``make deb``): built with Debian's own tooling, installed privately, and
working on Debian's own Python libraries (which are older than the pins pip resolves)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
DEBIAN_PYTHON = Path("/usr/bin/python3")
#: Debian's module for each Python dependency the package declares.
RUNTIME_MODULES = ("lxml", "watchdog", "_cffi_backend", "structlog", "prometheus_client")


def _missing() -> str | None:
    if shutil.which("dpkg-buildpackage") is None or shutil.which("dh") is None:
        return "debhelper not installed (.ci/run installs it)"
    if not Path("/usr/include/libxl.h").exists():
        return "libxen-dev not installed (.ci/run installs it)"
    return None


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = _missing()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("deb")
    subprocess.run(["make", "-s", "deb", f"DEB_BUILD={work / 'build'}", f"DEB_DIST={work / 'dist'}"],
                   cwd=PROJECT, check=True, capture_output=True, text=True, timeout=600)
    (found,) = (work / "dist").glob("xenreconcile_*.deb")
    return found


def _field(deb: Path, name: str) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), name], check=True, capture_output=True,
                          text=True).stdout.strip()


def _contents(deb: Path) -> list[str]:
    out = subprocess.run(["dpkg-deb", "-c", str(deb)], check=True, capture_output=True, text=True).stdout
    return [line.split()[-1].removeprefix(".") for line in out.splitlines()]


def test_the_file_name_carries_version_and_architecture(deb: Path) -> None:
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert deb.name == f"xenreconcile_{_field(deb, 'Version')}_{arch}.deb"


def test_modules_are_private_and_the_command_is_on_the_path(deb: Path) -> None:
    files = _contents(deb)
    assert "/usr/bin/xenreconcile" in files
    assert "/usr/lib/xenreconcile/agent/cli/main.py" in files
    assert "/usr/lib/xenreconcile/libxl/hosts/binding/_libxl.abi3.so" in files, "the cffi binding is compiled"
    assert not [f for f in files if "dist-packages" in f or "site-packages" in f]


def test_depends_on_debians_python_libraries_and_libxen(deb: Path) -> None:
    depends = _field(deb, "Depends")
    for package in ("python3-lxml", "python3-watchdog", "python3-cffi-backend", "python3-structlog",
                    "python3-prometheus-client"):
        assert package in depends
    assert "libxenstore" in depends and "libxenmisc" in depends, depends  # from the binding's links


def _control(deb: Path, tmp_path: Path) -> Path:
    subprocess.run(["dpkg-deb", "-e", str(deb), str(tmp_path / "DEBIAN")], check=True)
    return tmp_path / "DEBIAN"


def test_config_is_a_conffile_and_units_are_shipped(deb: Path, tmp_path: Path) -> None:
    control = _control(deb, tmp_path)
    assert "/etc/xenreconcile/xenreconcile.toml" in (control / "conffiles").read_text().split()
    units = [f for f in _contents(deb) if f.startswith("/lib/systemd/system/")]
    shipped = {p.name for p in (PROJECT / "etc" / "systemd").glob("*.service")}
    assert shipped and shipped <= {Path(u).name for u in units}


def test_installing_neither_enables_nor_starts_the_agent(deb: Path, tmp_path: Path) -> None:
    """A host handed over from xendomains must be configured before the agent runs."""
    postinst = (_control(deb, tmp_path) / "postinst").read_text()
    assert "deb-systemd-invoke" not in postinst  # no start, no restart
    lines = [line.strip() for line in postinst.splitlines()
             if line.strip() and not line.strip().startswith("#")]
    enables = [n for n, line in enumerate(lines) if line.startswith("deb-systemd-helper enable")]
    # dh_installsystemd --no-enable keeps only "re-enable what the admin had enabled" on upgrades.
    assert all("was-enabled" in lines[n - 1] for n in enables), postinst


def test_the_packaged_tree_runs_on_debians_python(deb: Path, tmp_path: Path) -> None:
    missing = [m for m in RUNTIME_MODULES
               if subprocess.run([str(DEBIAN_PYTHON), "-c", f"import {m}"], capture_output=True).returncode]
    if missing:
        pytest.skip(f"Debian's python3 modules missing: {missing} (.ci/run installs them)")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp_path / "root")], check=True)
    launcher = (tmp_path / "root/usr/bin/xenreconcile").read_text()
    assert launcher.startswith("#!/usr/bin/python3\n")
    private = tmp_path / "root/usr/lib/xenreconcile"
    def packaged(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(DEBIAN_PYTHON), "-I", "-c",
                               f"import sys; sys.path.insert(0, {str(private)!r}); "
                               "from agent.cli.main import main; sys.exit(main(sys.argv[1:]))", *argv],
                              capture_output=True, text=True, timeout=120)
    run = packaged("validate", "--no-policy", "-v", str(PROJECT / "examples" / "desired"))
    assert run.returncode == 0, run.stderr
    assert run.stdout.count(": ok: ") == len(list((PROJECT / "examples" / "desired").iterdir()))
    # The package has no distribution metadata: the version comes with the modules themselves.
    upstream = _field(deb, "Version").split("-")[0]
    assert packaged("--version").stdout == f"xenreconcile {upstream}\n"
