"""``xenreconcile validate PATH...``: check desired-state files before they reach a host.

Meant for GitOps CI: one line per problem (``FILE:LINE: element: problem``), exit status 1 when
anything is wrong. Besides each file on its own it checks what only the set can show: two files
declaring the same name or uuid, which the agent treats as a conflict and applies neither. Each
file is also held to the agent's security policy (bootloaders, device-model arguments, passthrough,
hotplug scripts, device models; the settings of ``--config``, else the strict defaults), so CI
refuses what the agent would; file modes are not checked (they belong to the deployed directory).
"""

from __future__ import annotations

import argparse
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.config import DEFAULT_CONFIG_PATH, AgentConfigError, load_config
from agent.errors import describe, one_line
from libxl.config import build_config
from libxl.errors import ConfigError
from libxl.formats.load import is_desired_name, load_domain_file
from libxl.model import Domain
from reconcilers.security import SecurityPolicy, policy_errors


@dataclass
class Report:
    files: list[Path]
    valid: dict[Path, Domain]
    problems: list[str]


def _cannot(path: Path, err: OSError) -> str:
    return f"{path}: {(err.strerror or str(err)).lower()}"


def collect(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files named on the command line, plus the desired-state files directly inside directories.

    A path that cannot be looked at (missing, too long, a symlink loop, a file used as a directory,
    no permission) is one problem line with the system's reason, and the other paths still count."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        try:
            is_dir = stat.S_ISDIR(path.stat().st_mode)
            entries = sorted(path.iterdir()) if is_dir else [path]
        except OSError as err:
            problems.append(_cannot(path, err))
            continue
        if not is_dir:
            files.append(path)
            continue
        for entry in entries:
            try:
                if is_desired_name(entry.name) and not entry.is_dir():
                    files.append(entry)
            except OSError as err:  # e.g. EACCES: a directory readable but not searchable
                problems.append(_cannot(entry, err))
    return files, problems


def _conflicts(valid: dict[Path, Domain]) -> list[str]:
    """One line per file whose name or uuid another file also declares."""
    lines = []
    for key, label in ((lambda d: d.name, "name"), (lambda d: d.uuid, "uuid")):
        owners: dict[str, list[Path]] = {}
        for path, dom in valid.items():
            if (value := key(dom)) is not None:
                owners.setdefault(value, []).append(path)
        for value, files in owners.items():
            for path in files[1:]:
                lines.append(f"{path}: conflict: {label} {value!r} is also declared by {files[0]}")
    return lines


def _problems(path: Path, dom: Domain, security: SecurityPolicy | None) -> list[str]:
    """What the agent would refuse beyond parsing: the libxl config build (libxl's own limits, e.g.
    no floppy drives) and, unless turned off, the security policy."""
    try:
        config = build_config(dom)
    except ConfigError as err:
        return [str(err.located(str(path)))]
    if security is None:
        return []
    return [str(err) for err in policy_errors(dom, config, security, path, path.read_bytes())]


def validate(paths: list[Path], security: SecurityPolicy | None = None) -> Report:
    """Parse and build every file; with ``security``, also report what its policy refuses."""
    files, problems = collect(paths)
    valid: dict[Path, Domain] = {}
    for path in files:
        try:
            dom = load_domain_file(path)
            refused = _problems(path, dom, security)
        except ConfigError as err:
            refused = [str(err.located(str(path)))]
        except OSError as err:
            refused = [_cannot(path, err)]
        except Exception as err:  # noqa: BLE001 (a bug met in one file must not hide the others)
            refused = [f"{path}: {describe(err)}"]
        if refused:
            problems.extend(one_line(line) for line in refused)
        else:
            valid[path] = dom
    return Report(files, valid, problems + _conflicts(valid))


def summary(path: Path, dom: Domain) -> str:
    kind = "hvm" if dom.os.is_hvm else "pvh" if dom.os.is_pvh else "pv"
    devs = dom.devices
    return (f"{path}: ok: {dom.name} ({kind}), {dom.memory_kib // 1024} MiB, {dom.vcpu.count} vcpus, "
            f"{len(devs.disks)} disks, {len(devs.interfaces)} nics")


def run(args: argparse.Namespace) -> int:
    security = None
    if not args.no_policy:
        try:
            security = load_config(args.config).security()
        except AgentConfigError as err:
            print(f"xenreconcile validate: {err}", file=sys.stderr)
            return 2
    report = validate([Path(p) for p in args.paths], security)
    for line in report.problems:
        print(line)
    if args.verbose:
        for path, dom in report.valid.items():
            print(summary(path, dom))
        print(f"{len(report.files)} files checked, {len(report.valid)} parsed, "
              f"{len(report.problems)} problems", file=sys.stderr)
    return 1 if report.problems else 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("validate", help="check desired-state files (domain XML, xl.cfg)",
                            description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="a file, or a directory of *.xml/*.cfg")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print a line per valid guest")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="the agent's TOML settings whose security policy applies (default "
                             f"{DEFAULT_CONFIG_PATH} if it exists, else the strict defaults)")
    parser.add_argument("--no-policy", action="store_true",
                        help="only parse: skip the security policy checks")
    parser.set_defaults(func=run)
