"""Verbs against remote URIs: ``xen+ssh://`` (another host) and ``xen+unix://`` (the local agent).

``agent.cli`` hands every parsed command with a ``--uri`` here first. Local URIs return None and the
verb runs as usual. Remote ones are read-only: ``list``, ``plan`` and ``status`` run on the other
side and come back as JSON; ``apply``, ``run`` and anything else are refused with one sentence,
because changing a host is its own agent's job (one writer per host, with its inventory and
its xl.conf). Transport failures are one line on stderr and exit status 1.

Over ssh, ``list`` and ``status`` fetch JSON and print it here with the local formatters; ``plan``
sends the local desired files and relays the remote plan's output and exit status (0 nothing to do,
2 changes, 1 error), which is what a GitOps CI job checks before merging.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from libxl.backend import DomainInfo
from libxl.errors import ConfigError, XenReconcileError
from libxl.uri import ParsedURI, parse_uri

READ_ONLY_VERBS = ("list", "plan", "status")
SOCKET_VERBS = ("list", "status")
#: Options that describe the connection or local files, never forwarded as they are (the remote
#: agent's own settings file is the URI's ``?config=``).
_LOCAL_DESTS = frozenset({"uri", "dir", "json", "help", "config"})


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise LookupError(command)


def forwarded_flags(sub: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The options the user set (anything not at its default), as flags for the remote side."""
    out: list[str] = []
    for action in sub._actions:
        if not action.option_strings or action.dest in _LOCAL_DESTS:
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, argparse._StoreTrueAction):
            out.append(flag)
        elif isinstance(action, argparse.BooleanOptionalAction):
            out.append(flag if value else "--no-" + flag.removeprefix("--"))
        else:
            out += [flag, str(value)]
    return out


def desired_files(directory: Path) -> dict[str, str]:
    """Every desired file of ``directory`` (the loader's own listing, read as the loader reads:
    regular files only, bounded), base64 by name."""
    from libxl.formats.load import read_desired_bytes
    from reconcilers.desired import desired_paths

    return {path.name: base64.b64encode(read_desired_bytes(path)).decode()
            for path in sorted(desired_paths(directory))}


def _print_domains(rows: list[dict[str, Any]], as_json: bool) -> None:
    from agent.commands.hosts import format_json, format_table

    names = {f.name for f in dataclasses.fields(DomainInfo)}
    domains = [DomainInfo(**{k: v for k, v in row.items() if k in names}) for row in rows]
    sys.stdout.write(format_json(domains) if as_json else format_table(domains))


def _print_status(doc: dict[str, Any], as_json: bool) -> None:
    from agent.commands.run import format_status

    if as_json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
        return
    for line in format_status(doc):
        print(line)
    if not doc.get("ready"):
        print("(agent not ready yet: first full reconcile not done)", file=sys.stderr)


def _via_ssh(parser: argparse.ArgumentParser, args: argparse.Namespace, target: ParsedURI) -> int:
    from libxl import remote

    assert target.ssh is not None
    flags = forwarded_flags(_subparser(parser, args.command), args)
    request: dict[str, Any] = {"verb": args.command, "uri": target.local_uri(), "config": target.ssh.config}
    if args.command == "plan":
        request.update(argv=flags + (["--json"] if args.json else []), files=desired_files(args.dir),
                       dir=str(args.dir))
        reply = remote.call(target.ssh, request)
        sys.stdout.write(reply.stdout)
        sys.stderr.write(reply.stderr)
        return reply.exit
    request["argv"] = [*flags, "--json"]
    reply = remote.call(target.ssh, request)
    if reply.exit != 0:
        sys.stderr.write(reply.stderr)
        return reply.exit
    try:
        doc = json.loads(reply.stdout)
    except ValueError:
        raise XenReconcileError(f"the remote {args.command} did not print JSON") from None
    if args.command == "list":
        _print_domains(doc, args.json)
    else:
        _print_status(doc, args.json)
    return 0


def _via_socket(args: argparse.Namespace, target: ParsedURI) -> int:
    from agent.socket_api import query

    assert target.socket is not None
    doc = query(target.socket, args.command)
    if args.command == "list":
        _print_domains(doc, args.json)
    else:
        _print_status(doc, args.json)
    return 0


def dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int | None:
    """Run ``args`` against its remote URI and return the exit status; None for a local URI."""
    verb = f"xenreconcile {args.command}"
    try:
        target = parse_uri(args.uri)
    except ConfigError:
        return None  # the verb reports a bad URI in its own words
    if not target.is_remote:
        return None
    scheme = f"{target.driver}+{target.transport}://"
    served = READ_ONLY_VERBS if target.transport == "ssh" else SOCKET_VERBS
    if args.command not in served:
        why = ("applying stays the host agent's job" if args.command in ("apply", "run")
               else f"it serves {', '.join(served)} only")
        print(f"{verb}: {scheme} URIs are read-only ({', '.join(served)}): {why}.", file=sys.stderr)
        return 1
    try:
        if target.transport == "ssh":
            return _via_ssh(parser, args, target)
        return _via_socket(args, target)
    except XenReconcileError as err:
        print(f"{verb}: {err}", file=sys.stderr)
        return 1
