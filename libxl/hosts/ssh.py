"""The ssh transport of ``xen+ssh://`` URIs: one JSON request in, one JSON reply out.

No daemon and no open port: the system's ``ssh`` client runs the project's own CLI on the remote
host (``xenreconcile _remote``), which reads the request on stdin and answers with one JSON envelope
on stdout. Using the ``ssh`` binary rather than a Python ssh library means ``~/.ssh/config``
(aliases, ``ProxyJump``, ``User``, ``IdentityFile``), the ssh-agent and ``known_hosts`` all work as
they do for the operator's own ``ssh HOST``. The URI's parameters map to ssh options the way
libvirt maps them: ``keyfile`` -> ``-i``, ``no_verify=1`` -> ``StrictHostKeyChecking=no``,
``known_hosts`` -> ``UserKnownHostsFile``. ``BatchMode`` is always on: the request travels on stdin,
so ssh could not ask for a password anyway, and a CI job must fail rather than hang.

Failures become one ``BackendUnavailable`` sentence: ssh itself failed (exit 255, with ssh's own
last line), the remote program is missing (127) or not executable (126), it is too old to know
``_remote``, or its reply is not the envelope (a login script printing on stdout, for instance).
"""

from __future__ import annotations

import json
import shlex
import subprocess
from dataclasses import dataclass
from typing import Any

from libxl.errors import BackendUnavailable
from libxl.hosts.uri import REMOTE_VERB, SSHOptions

#: Bumped when the request or reply shape changes; the remote side refuses other versions.
PROTOCOL = 1
#: ssh's own exit status for its failures (connection, authentication, host key).
_SSH_FAILED = 255


@dataclass(frozen=True)
class Reply:
    """What the remote verb printed and returned, as the envelope carries it."""
    exit: int
    stdout: str
    stderr: str


def ssh_argv(opts: SSHOptions, ssh_program: str = "ssh") -> list[str]:
    """The ``ssh`` command line for ``opts``: options first, then ``--``, the host and the command."""
    argv = [ssh_program, "-T", "-o", "BatchMode=yes"]
    if opts.port is not None:
        argv += ["-p", str(opts.port)]
    if opts.user is not None:
        argv += ["-l", opts.user]
    if opts.keyfile is not None:
        argv += ["-i", opts.keyfile]
    if opts.known_hosts is not None:
        argv += ["-o", f"UserKnownHostsFile={opts.known_hosts}"]
    if opts.no_verify:
        argv += ["-o", "StrictHostKeyChecking=no"]
    # The remote shell splits the command: quote it so a path with spaces stays one word.
    return [*argv, "--", opts.host, shlex.join([opts.command, REMOTE_VERB])]


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def _where(opts: SSHOptions) -> str:
    return f"{opts.user}@{opts.host}" if opts.user else opts.host


def _unavailable(opts: SSHOptions, returncode: int, stderr: str) -> BackendUnavailable | None:
    """The one sentence for a transport failure, or None when the remote verb itself answered."""
    host = _where(opts)
    if returncode == _SSH_FAILED:
        return BackendUnavailable(f"ssh to {host} failed: {_last_line(stderr)}")
    if returncode == 127:
        return BackendUnavailable(f"xenreconcile is not installed on {host}: the remote command "
                                  f"{opts.command!r} was not found (name its path with ?command=)")
    if returncode == 126:
        return BackendUnavailable(f"the remote command {opts.command!r} on {host} is not executable")
    if f"invalid choice: '{REMOTE_VERB}'" in stderr:
        return BackendUnavailable(f"the xenreconcile installed on {host} is too old to answer remote "
                                  f"requests (it has no {REMOTE_VERB} verb)")
    return None


def call(opts: SSHOptions, request: dict[str, Any], *, ssh_program: str = "ssh",
         timeout: float | None = None) -> Reply:
    """Send ``request`` to the remote ``xenreconcile _remote`` and return its reply.

    Raises ``BackendUnavailable`` with one sentence when the remote side could not be asked.
    """
    payload = json.dumps({"protocol": PROTOCOL, **request}).encode()
    argv = ssh_argv(opts, ssh_program)
    try:
        done = subprocess.run(argv, input=payload, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise BackendUnavailable(f"the ssh client {ssh_program!r} is not installed on this machine") from None
    except subprocess.TimeoutExpired:
        raise BackendUnavailable(f"ssh to {_where(opts)} did not answer within {timeout:g} s") from None
    stderr = done.stderr.decode(errors="replace")
    problem = _unavailable(opts, done.returncode, stderr)
    if problem is not None:
        raise problem
    return parse_reply(opts, done.returncode, done.stdout, stderr)


def parse_reply(opts: SSHOptions, returncode: int, stdout: bytes, stderr: str) -> Reply:
    """Decode the envelope; anything else on stdout is a remote side that is not ours."""
    try:
        doc = json.loads(stdout)
        if not isinstance(doc, dict) or doc.get("protocol") != PROTOCOL:
            raise ValueError("not a reply envelope")
        return Reply(int(doc["exit"]), str(doc["stdout"]), str(doc["stderr"]))
    except (ValueError, KeyError, TypeError):
        said = _last_line(stderr) if stderr.strip() else _last_line(stdout.decode(errors="replace"))
        raise BackendUnavailable(
            f"unexpected reply from {_where(opts)} (exit {returncode}): {said}") from None


__all__ = ["PROTOCOL", "Reply", "ssh_argv", "call", "parse_reply"]
