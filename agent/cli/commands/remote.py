"""``xenreconcile _remote``: the remote end of ``xen+ssh://`` (hidden; run by ssh, not by people).

It reads one JSON request on stdin (libxl.hosts.ssh), runs the asked verb here in-process with this
host's local URI, and prints one JSON envelope: the verb's exit status, stdout and stderr. Only the
read-only verbs are served. ``xen:///system`` means "the host this agent manages": the agent's own
TOML file (the request's ``config``, else the default path) supplies the URI, and for ``plan`` the
state directory, owner and policy, so a remote plan shows what this host's agent would do; flags the
caller set explicitly come after them and win. For ``plan`` the desired files travel inside the
request (the desired directory lives on the operator's side, e.g. a GitOps checkout): they are
written to a private temporary directory that is removed afterwards, and its path is replaced by the
caller's directory name in the output, so the plan names the files the operator knows.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

from agent.cli.errors import CommandError, describe, one_line
from agent.cli.main import build_parser
from agent.cli.replies import status_url
from agent.config import AgentConfig, AgentConfigError, load_config
from libxl.errors import ConfigError
from libxl.hosts.uri import REMOTE_VERB, parse_uri

#: Verbs a remote caller may run, and whether they open this host through ``--uri``.
SERVED_VERBS = {"list": True, "plan": True, "status": False}


class _Refused(Exception):
    """A request this side will not run; the message goes back in the envelope."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(REMOTE_VERB, description="Answer one xen+ssh:// request read on stdin (JSON).")
    parser.set_defaults(func=serve)


def _write_files(files: Any, directory: Path) -> None:
    """The desired files of a remote plan, by bare name (the desired set is flat)."""
    if not isinstance(files, dict):
        raise _Refused("files must be an object of name -> base64 content")
    for name, content in files.items():
        if not isinstance(name, str) or not name or "/" in name or name in (".", "..") or "\0" in name:
            raise _Refused(f"refusing desired file name {name!r}")
        try:
            data = base64.b64decode(str(content), validate=True)
        except (binascii.Error, ValueError):
            raise _Refused(f"desired file {name!r} is not base64") from None
        try:
            (directory / name).write_bytes(data)
        except OSError as err:  # ENAMETOOLONG, a name the filesystem refuses, a full disk
            raise _Refused(f"cannot take desired file {name!r}: {err.strerror or err}") from None


def _agent_settings(request: dict[str, Any]) -> AgentConfig:
    """This host's agent settings (its TOML file, or the default path when it exists)."""
    path = request.get("config")
    try:
        return load_config(Path(str(path)) if path else None)
    except AgentConfigError as err:
        raise _Refused(f"the agent settings here are unusable: {err}") from None


def _policy_flags(settings: AgentConfig) -> list[str]:
    """The agent's policy as plan flags: a remote plan shows what this host's agent would do."""
    flags = ["--state-dir", settings.state_dir, "--owner", settings.owner, "--prune", settings.prune,
             "--restart", settings.restart, "--shutdown-timeout", str(settings.shutdown_timeout)]
    return flags + ["--allow-empty"] * settings.allow_empty + ["--adopt"] * settings.adopt


def _argv(request: dict[str, Any], directory: Path) -> list[str]:
    verb = request.get("verb")
    if verb not in SERVED_VERBS:
        raise _Refused(f"verb {verb!r} is not served remotely (served: {', '.join(SERVED_VERBS)})")
    flags = request.get("argv", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise _Refused("argv must be a list of strings")
    argv = [verb]
    if SERVED_VERBS[verb]:
        settings = _agent_settings(request)
        uri = str(request.get("uri", "xen:///system"))
        try:
            parsed = parse_uri(uri)
            if parsed.driver == "xen" and not parsed.is_remote:  # "this host": what its agent manages
                uri, parsed = settings.uri, parse_uri(settings.uri)
        except ConfigError as err:
            raise _Refused(str(err)) from None
        if parsed.is_remote:
            raise _Refused(f"{uri!r} is not a local URI here (no second hop)")
        argv += ["--uri", uri]
        if verb == "plan":
            argv += _policy_flags(settings)  # the caller's own flags come later and win
            if request.get("config"):  # its security policy and host settings (xl.conf) too
                argv += ["--config", str(request["config"])]
    argv += flags
    if verb == "plan":
        _write_files(request.get("files", {}), directory)
        argv += ["--dir", str(directory)]
    _confine(argv, uri=argv[argv.index("--uri") + 1] if SERVED_VERBS[verb] else None,
             config=request.get("config") if verb == "plan" else None)
    return argv


def _confine(argv: list[str], *, uri: str | None, config: Any) -> None:
    """Refuse caller flags that would leave this host: ``_remote`` is a confinement boundary.

    The caller's flags are parsed as the verb will parse them (argparse accepts ``--ur=`` for
    ``--uri``, so no string match would do): the URI and the settings file must still be the ones
    chosen here (a ``--uri xen+ssh://`` would be a second hop, a ``--config`` a file of the
    caller's choosing), and ``status --url`` may only name this host's own agent on loopback over
    http (not ``file://``, not another host)."""
    with contextlib.redirect_stderr(io.StringIO()):
        try:
            parsed = build_parser(argv[0]).parse_args(argv)
        except SystemExit:
            return  # a flag argparse refuses: _run reports argparse's own words
    if getattr(parsed, "uri", None) != uri:
        raise _Refused(f"--uri {parsed.uri!r}: the URI travels in the request, never in argv "
                       "(no second hop)")
    chosen = getattr(parsed, "config", None)
    if (str(chosen) if chosen is not None else None) != (str(config) if config else None):
        raise _Refused("--config: the settings file travels in the request, never in argv")
    if parsed.command == "status":
        try:
            status_url(parsed.url, loopback_only=True)
        except CommandError as err:
            raise _Refused(str(err)) from None


def _run(argv: list[str]) -> tuple[int, str, str]:
    """Run a verb in-process, capturing what it prints (argparse errors included)."""
    from agent.cli.main import main  # late: agent.cli.main imports this module (its verb list)

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as stop:  # argparse refusing a flag
            code = stop.code if isinstance(stop.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def _refusal(problem: str) -> dict[str, Any]:
    from libxl.hosts.ssh import PROTOCOL

    return {"protocol": PROTOCOL, "exit": 1, "stdout": "",
            "stderr": f"xenreconcile {REMOTE_VERB}: {one_line(problem)}\n"}


def answer(request: Any) -> dict[str, Any]:
    """The reply envelope for one decoded request."""
    import tempfile

    from libxl.hosts.ssh import PROTOCOL

    if not isinstance(request, dict) or request.get("protocol") != PROTOCOL:
        got = request.get("protocol") if isinstance(request, dict) else None
        return _refusal(f"protocol {got!r} not spoken here (this side: {PROTOCOL})")
    with tempfile.TemporaryDirectory(prefix="xenreconcile-remote-") as tmp:
        try:
            argv = _argv(request, Path(tmp))
        except _Refused as err:
            return _refusal(str(err))
        except Exception as err:  # noqa: BLE001 (a request this side did not foresee: still one line)
            return _refusal(describe(err))
        code, out, err = _run(argv)
    label = str(request.get("dir") or "").rstrip("/")
    if label:
        out, err = out.replace(tmp, label), err.replace(tmp, label)
    return {"protocol": PROTOCOL, "exit": code, "stdout": out, "stderr": err}


def serve(args: argparse.Namespace) -> int:
    try:
        request = json.loads(sys.stdin.buffer.read())
    except ValueError:
        request = None
    json.dump(answer(request), sys.stdout)
    sys.stdout.write("\n")
    return 0
