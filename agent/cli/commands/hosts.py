"""``xenreconcile list --uri URI [--json]``: a host's domains, like ``xl list``.

The columns are xl's (Name, ID, Mem in MiB, VCPUs, the six-letter state, CPU time in seconds) plus
the owner marker, so an operator can see at a glance which domains this agent manages; ``--json``
prints every field of the backend's DomainInfo for scripts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from agent.cli.errors import report
from libxl.errors import BackendError, XenReconcileError
from libxl.hosts.backend import Backend, DomainInfo
from libxl.hosts.display import ports_in

#: xl's state letters, in xl's order: running, blocked, paused, shutdown, crashed, dying.
_STATE_LETTERS = "rbpscd"
_LIVE = ("running", "blocked", "paused")
_STATE_INDEX = {"running": 0, "blocked": 1, "paused": 2, "shutdown": 3, "crashed": 4, "dying": 5}


def state_flags(state: str) -> str:
    """``paused`` -> ``--p---`` (xl list's State column)."""
    index = _STATE_INDEX.get(state)
    return "".join(letter if i == index else "-" for i, letter in enumerate(_STATE_LETTERS))


def format_table(domains: list[DomainInfo]) -> str:
    lines = [f"{'Name':<40} {'ID':>5} {'Mem':>5} {'VCPUs':>5} {'State':<6} {'Time(s)':>9}  Owner"]
    for d in sorted(domains, key=lambda d: d.domid):
        lines.append(f"{d.name:<40} {d.domid:>5} {d.memory_kib // 1024:>5} {d.vcpus_online:>5} "
                     f"{state_flags(d.state):<6} {d.cpu_time_ns / 1e9:>9.1f}  {d.owner or '-'}")
    return "\n".join(lines) + "\n"


def domain_rows(domains: list[DomainInfo]) -> list[dict[str, object]]:
    """Every DomainInfo field, by domid: the JSON of ``list --json`` and of the agent's socket."""
    return [dataclasses.asdict(d) for d in sorted(domains, key=lambda d: d.domid)]


def format_json(domains: list[DomainInfo]) -> str:
    return json.dumps(domain_rows(domains), indent=2) + "\n"


def with_display_ports(backend: Backend, domains: list[DomainInfo]) -> list[DomainInfo]:
    """Rows completed with the display ports each live guest's config fixes, where the backend
    did not list them (the real libxl keeps them only in the config). A VNC display qemu may move
    (``findunused``, xl's default) stays unknown rather than guessed."""
    out = []
    for d in domains:
        if d.domid != 0 and d.vnc_port is None and d.spice_port is None and d.state in _LIVE:
            try:
                ports = ports_in(backend.domain_config(d.domid))
            except BackendError:
                ports = None  # gone meanwhile, or no stored config (not ours to explain here)
            if ports is not None:
                d = dataclasses.replace(d, vnc_port=ports.vnc, spice_port=ports.spice)
        out.append(d)
    return out


def open_backend(uri: str) -> Backend:
    """Imported late: ``xen:///system`` loads the native binding only when asked for. Read-only:
    listing a simulated host that was never created shows an empty host and creates nothing."""
    from libxl.hosts.uri import open_backend as open_uri

    return open_uri(uri, read_only=True)


def run(args: argparse.Namespace) -> int:
    """A bad URI, an unreachable or unreadable host: one line (agent.cli.errors), status 1."""
    from agent.log import configure as configure_logging

    # stdout is the table (or JSON): libxl's own warnings go to stderr, its chatter nowhere.
    configure_logging(level="warning", stream=sys.stderr)
    try:
        backend = open_backend(args.uri)
        try:
            domains = with_display_ports(backend, backend.list_domains())
        finally:
            backend.close()
    except XenReconcileError as err:
        return report("list", err)
    sys.stdout.write(format_json(domains) if args.json else format_table(domains))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("list", help="list the domains of a host, like `xl list`")
    parser.add_argument("--uri", default="xen:///system",
                        help="host to ask: xen:///system, test:///ABS/PATH.json, "
                             "xen+ssh://[user@]host/system or xen+unix:///system (the local agent)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(func=run)
