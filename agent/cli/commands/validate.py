"""``xenreconcile validate PATH...``: check desired-state files before they reach a host.

Meant for GitOps CI: one line per problem (``FILE:LINE: element: problem``), exit status 1 when
anything is wrong. Besides each file on its own it checks what only the set can show: two files
declaring the same name or uuid, which the agent treats as a conflict and applies neither. Each
file is also held to the agent's security policy (README "Security": what makes dom0 run, open,
create or listen on something for a guest; the settings of ``--config``, else the strict defaults),
so CI refuses what the agent would; file modes are not checked (they belong to the deployed directory).
Every file is read as the agent reads it (``reconcilers.desired.parse_desired_file``: an xl.cfg
through the xl front end, domain XML through the domain model); an xl.cfg's warnings (what xl
reads leniently or ignores) go to stderr and do not fail the check.
"""

from __future__ import annotations

import argparse
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from agent.cli.errors import describe, one_line
from agent.config import DEFAULT_CONFIG_PATH, AgentConfigError, load_config
from libxl.errors import ConfigError, safe

if TYPE_CHECKING:
    from reconcilers.desired import DesiredDomain
    from reconcilers.securitypolicy import SecurityPolicy


@dataclass
class Report:
    files: list[Path]
    valid: dict[Path, DesiredDomain]
    problems: list[str]
    #: What valid files ask for with a caveat (xl.cfg keys xl ignores or reads leniently).
    warnings: list[str] = field(default_factory=list)


def _cannot(path: Path, err: OSError) -> str:
    return f"{path}: {(err.strerror or str(err)).lower()}"


def collect(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files named on the command line, plus the desired-state files directly inside directories.

    A path that cannot be looked at (missing, too long, a symlink loop, a file used as a directory,
    no permission) is one problem line with the system's reason, and the other paths still count."""
    from libxl.domain.formats.load import is_desired_name

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


def _conflicts(valid: dict[Path, DesiredDomain]) -> list[str]:
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


def validate(paths: list[Path], security: SecurityPolicy | None = None) -> Report:
    """Read every file as the agent reads it (parse, libxl config build, and with ``security`` its
    policy): a domain XML file through the domain model, an xl.cfg through the xl front end."""
    from libxl.domain.formats.load import read_desired_bytes
    from reconcilers.desired import parse_desired_file

    files, problems = collect(paths)
    valid: dict[Path, DesiredDomain] = {}
    warnings: list[str] = []
    for path in files:
        try:  # read once (a regular file only, bounded); parse and policy see the same bytes
            data = read_desired_bytes(path)
            result = parse_desired_file(path, data, "", None)
            if isinstance(result, ConfigError):
                refused = [str(result)]
            else:
                refused = _policy_lines(path, data, result, security) if security is not None else []
        except ConfigError as err:
            refused = [str(err.located(str(path)))]
        except OSError as err:
            refused = [_cannot(path, err)]
        except Exception as err:  # noqa: BLE001 (a bug met in one file must not hide the others)
            refused = [f"{path}: {describe(err)}"]
        if refused:
            problems.extend(one_line(line) for line in refused)
            continue
        valid[path] = result
        warnings.extend(f"{w} (warning)" for w in result.warnings)
    return Report(files, valid, problems + _conflicts(valid), warnings)


def _policy_lines(path: Path, data: bytes, parsed: DesiredDomain, security: SecurityPolicy) -> list[str]:
    """Every policy violation of a file that parses (the agent reports only the first); read
    without host settings, its config is the file's own."""
    from reconcilers.security import policy_errors

    return [str(e) for e in policy_errors(parsed.config, security, path, data)]


def summary(path: Path, desired: DesiredDomain) -> str:
    """name, kind, memory, vcpus, disks and nics, from the libxl config the agent would create."""
    config = desired.config
    b_info = config.get("b_info") or {}
    kind = (config.get("c_info") or {}).get("type", "pv")
    memory = b_info.get("max_memkb") or b_info.get("target_memkb") or 0
    vcpus = b_info.get("max_vcpus") or 1
    return (f"{path}: ok: {desired.name} ({kind}), {memory // 1024} MiB, {vcpus} vcpus, "
            f"{len(config.get('disks', []))} disks, {len(config.get('nics', []))} nics")


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
        print(safe(line))  # file and guest names come from the repository: no ESC, no newline
    for line in report.warnings:
        print(safe(line), file=sys.stderr)
    if args.verbose:
        for path, dom in report.valid.items():
            print(safe(summary(path, dom)))
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
