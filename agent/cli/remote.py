"""Verbs against remote URIs: ``xen+ssh://`` (another host) and ``xen+unix://`` (the local agent).

``agent.cli.main`` hands every parsed command with a ``--uri`` here first. Local URIs return None and the
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
import json
import sys
from pathlib import Path
from typing import Any

from agent.cli.errors import one_line, report
from agent.cli.replies import domain_infos, status_document
from libxl.errors import ConfigError, XenReconcileError
from libxl.hosts.uri import ParsedURI, parse_uri

READ_ONLY_VERBS = ("list", "plan", "status")
SOCKET_VERBS = ("list", "status")
#: Options that describe the connection or local files, never forwarded as they are (the remote
#: agent's own settings file is the URI's ``?config=``).
_LOCAL_DESTS = frozenset({"uri", "dir", "json", "help", "config"})


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


def desired_files(directory: Path) -> tuple[dict[str, str], list[ConfigError]]:
    """Every readable desired file of ``directory`` (the loader's own listing, read as the loader
    reads: regular files only, bounded), base64 by name, and one error per file that cannot be read
    (a dangling symlink, no permission, a FIFO): like a local plan, one unreadable file does not
    stop the others being planned."""
    from libxl.domain.formats.load import read_desired_bytes
    from reconcilers.desired import desired_paths

    out, unreadable = {}, []
    for path in sorted(desired_paths(directory)):
        try:
            out[path.name] = base64.b64encode(read_desired_bytes(path)).decode()
        except ConfigError as err:
            unreadable.append(err.located(str(path)))
    return out, unreadable


def _print_domains(rows: Any, as_json: bool, source: str) -> None:
    from agent.cli.commands.hosts import format_json, format_table

    domains = domain_infos(rows, source)
    sys.stdout.write(format_json(domains) if as_json else format_table(domains))


def _print_status(doc: Any, as_json: bool, source: str) -> None:
    from agent.cli.commands.run import format_status

    doc = status_document(doc, source)
    if as_json:
        json.dump(doc, sys.stdout, indent=2, sort_keys=True)
        print()
        return
    for line in format_status(doc):
        print(line)
    if not doc.get("ready"):
        print("(agent not ready yet: first full reconcile not done)", file=sys.stderr)


def _via_ssh(parser: argparse.ArgumentParser, args: argparse.Namespace, target: ParsedURI) -> int:
    from libxl.hosts import ssh

    assert target.ssh is not None
    from agent.cli.main import verb_parser

    flags = forwarded_flags(verb_parser(parser, args.command), args)
    request: dict[str, Any] = {"verb": args.command, "uri": target.local_uri(), "config": target.ssh.config}
    if args.command == "plan":
        files, unreadable = desired_files(args.dir)
        request.update(argv=flags + (["--json"] if args.json else []), files=files, dir=str(args.dir))
        reply = ssh.call(target.ssh, request)
        sys.stdout.write(reply.stdout)
        sys.stderr.write(reply.stderr)
        for err in unreadable:  # never sent, so the plan above could not name them: an error (1)
            print(f"xenreconcile plan: {one_line(str(err))}", file=sys.stderr)
        return 1 if unreadable else reply.exit
    request["argv"] = [*flags, "--json"]
    reply = ssh.call(target.ssh, request)
    if reply.exit != 0:
        sys.stderr.write(reply.stderr)
        return reply.exit
    try:
        doc = json.loads(reply.stdout)
    except ValueError:
        raise XenReconcileError(f"the remote {args.command} did not print JSON") from None
    _print_reply(args, doc, f"the reply of {target.ssh.host}")
    return 0


def _print_reply(args: argparse.Namespace, doc: Any, source: str) -> None:
    if args.command == "list":
        _print_domains(doc, args.json, source)
    else:
        _print_status(doc, args.json, source)


def _via_socket(args: argparse.Namespace, target: ParsedURI) -> int:
    from agent.daemon.socket_api import query

    assert target.socket is not None
    _print_reply(args, query(target.socket, args.command), f"the reply of {target.socket}")
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
        return report(args.command, err)
