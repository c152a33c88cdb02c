"""``xenreconcile render [--no-policy] [--config FILE] FILE...``: the libxl config the agent would create.

This project's ``xl -N create``: each desired file read exactly as the agent reads it (an xl.cfg
through the xl front end, domain XML through the domain model and libvirt's libxl-driver choices),
the host's xl.conf laid under it, and the result printed as ``libxl_domain_config`` JSON without
the agent's owner marker. One file prints its JSON; several print one JSON object keyed by file.
Secrets (VNC/SPICE passwords, Ceph keys in rbd targets) print as ``***`` unless ``--security-info``
is given, as virsh's converters do: the output ends up in review diffs and CI logs.
Warnings (what ``xl create`` would also warn about, and keys xl ignores) go to stderr. Exit status
1, with the located one-line reason on stderr, for every file the agent would refuse (``--no-policy``
skips the security policy, as in ``validate``); 2 when the agent's settings cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import DEFAULT_CONFIG_PATH, AgentConfigError, load_config
from libxl.errors import REDACTED, ConfigError, redact

if TYPE_CHECKING:
    from libxl.frontends.hostsettings import HostSettings
    from reconcilers.desired import DesiredDomain
    from reconcilers.securitypolicy import SecurityPolicy


def render(path: Path, policy: SecurityPolicy | None, host: HostSettings) -> DesiredDomain | ConfigError:
    """One file as the agent would take it, or why it would refuse it."""
    from libxl.domain.formats.load import read_desired_bytes
    from reconcilers.desired import parse_desired_file

    try:  # as validate reads: a regular file only (never a FIFO or device), bounded
        data = read_desired_bytes(path)
    except ConfigError as err:
        return err.located(str(path))
    return parse_desired_file(path, data, "", policy, host)


def without_secrets(value: Any) -> Any:
    """A copy of a libxl config with every ``passwd`` (vnc, spice) and every secret inside a
    string (an rbd target's ``key=``) replaced by ``***``."""
    if isinstance(value, dict):
        return {k: REDACTED if k == "passwd" and v else without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return redact(value) if isinstance(value, str) else value


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_config(args.config)
        host = settings.host_settings()
    except AgentConfigError as err:
        print(f"xenreconcile render: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(f"xenreconcile render: host settings: {err}", file=sys.stderr)
        return 2
    policy = None if args.no_policy else settings.security()
    rendered: dict[str, object] = {}
    status = 0
    for name in args.files:
        result = render(Path(name), policy, host)
        if isinstance(result, ConfigError):
            print(result, file=sys.stderr)
            status = 1
            continue
        for warning in result.warnings:
            print(f"{warning} (warning)", file=sys.stderr)
        rendered[name] = result.config if args.security_info else without_secrets(result.config)
    if len(args.files) == 1:
        if rendered:
            print(json.dumps(rendered[args.files[0]], indent=4))
    elif rendered:
        print(json.dumps(rendered, indent=4))
    return status


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("render", help="print the libxl JSON the agent would create from desired files",
                            description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", metavar="FILE", help="a desired file (*.cfg or *.xml)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="the agent's TOML settings: security policy and host xl.conf (default "
                             f"{DEFAULT_CONFIG_PATH} if it exists, else the defaults)")
    parser.add_argument("--no-policy", action="store_true", help="skip the security policy checks")
    parser.add_argument("--security-info", action="store_true",
                        help="print passwords and keys instead of ***")
    parser.set_defaults(func=run)
