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
import sys
from dataclasses import dataclass
from pathlib import Path

from agent.config import DEFAULT_CONFIG_PATH, AgentConfigError, load_config
from libxl.config import build_config
from libxl.errors import ConfigError
from libxl.formats.load import is_desired_name, load_domain_file, located
from libxl.model import Domain
from reconcilers.security import SecurityPolicy, policy_errors


@dataclass
class Report:
    files: list[Path]
    valid: dict[Path, Domain]
    problems: list[str]


def collect(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files named on the command line, plus the desired-state files directly inside directories."""
    files: list[Path] = []
    problems: list[str] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if is_desired_name(p.name) and not p.is_dir()))
        elif path.exists():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or directory")
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
        return [str(located(err, path, path.read_bytes()))]
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
        except ConfigError as err:
            problems.append(str(err.located(str(path))))
            continue
        refused = _problems(path, dom, security)
        if refused:
            problems.extend(refused)
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
