"""The shapes of what another process answers: an agent's ``/status`` document and ``list`` rows.

``status`` (over HTTP, ssh or the agent's socket) and ``list`` (over ssh or the socket) print what a
process they do not control sent back. Checking the shape once, here, makes a wrong reply (another
service on the port, an older or newer agent, a proxy's error page in JSON) one sentence naming the
field instead of an AttributeError in the formatter. ``status --url`` is held to http(s), and a
remote caller's to this host's loopback (agent.cli.commands.remote): urllib would otherwise read
``file://`` and ``ftp://`` too.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from agent.cli.errors import CommandError
from libxl.errors import XenReconcileError
from libxl.hosts.backend import DomainInfo

#: Hosts a ``status --url`` may name when the caller came in over ssh (agent.cli.commands.remote).
LOOPBACK_NAMES = ("localhost",)
_DOMAIN_TEXT_FIELDS = ("state", "last_action", "file", "last_error")


class ReplyError(XenReconcileError):
    """A reply that is not the document it should be."""


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def status_document(doc: Any, source: str) -> dict[str, Any]:
    """``doc`` if it is an agent's status document (the fields ``status`` prints), else ReplyError."""
    def bad(problem: str) -> ReplyError:
        return ReplyError(f"{source} is not an agent's status document: {problem}")

    if not isinstance(doc, dict):
        raise bad("expected a JSON object")
    domains, invalid = doc.get("domains", {}), doc.get("invalid_files", {})
    if not isinstance(domains, dict) or not all(isinstance(s, dict) for s in domains.values()):
        raise bad("domains must be an object of name -> object")
    for name, entry in domains.items():
        for key in _DOMAIN_TEXT_FIELDS:
            if not _text_or_none(entry.get(key)):
                raise bad(f"domains[{name!r}].{key} must be a string or null")
    if not isinstance(invalid, dict) or not all(isinstance(e, str) for e in invalid.values()):
        raise bad("invalid_files must be an object of file -> error")
    return doc


def domain_infos(rows: Any, source: str) -> list[DomainInfo]:
    """``list --json`` rows as DomainInfo, each field of the type the table prints, else ReplyError."""
    if not isinstance(rows, list):
        raise ReplyError(f"{source} is not a list of domains: expected a JSON array")
    fields = {f.name: f for f in dataclasses.fields(DomainInfo)}
    out = []
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ReplyError(f"{source}: domain {index} is not an object")
        values = {k: v for k, v in row.items() if k in fields}
        try:
            info = DomainInfo(**values)
        except TypeError as err:
            raise ReplyError(f"{source}: domain {index}: {err}") from None
        for name, kind in (("name", str), ("state", str), ("domid", int), ("memory_kib", int),
                           ("vcpus_online", int)):
            if not isinstance(getattr(info, name), kind):
                raise ReplyError(f"{source}: domain {index}: {name} has the wrong type")
        if not isinstance(info.cpu_time_ns, int | float) or not _text_or_none(info.owner):
            raise ReplyError(f"{source}: domain {index}: cpu_time_ns or owner has the wrong type")
        out.append(info)
    return out


def status_url(url: str, *, loopback_only: bool = False) -> str:
    """``url`` checked as an agent's HTTP address; raises CommandError (status 1) naming the problem."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number)
    except ValueError as err:
        raise CommandError(f"--url {url!r}: not a URL ({err})") from None
    if parts.scheme not in ("http", "https") or not host:
        raise CommandError(f"--url {url!r}: expected http://HOST:PORT (the agent's metrics_listen)")
    if loopback_only and not is_loopback(host):
        raise CommandError(f"--url {url!r}: a remote caller may only ask this host's own agent "
                           "(http://127.0.0.1, localhost or [::1])")
    return url


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


__all__ = ["ReplyError", "domain_infos", "is_loopback", "status_document", "status_url"]
