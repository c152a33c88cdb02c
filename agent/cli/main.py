"""The ``xenreconcile`` command: one argparse tree, one module per verb group.

Each module in ``COMMANDS`` exposes ``register(subparsers)`` and sets ``func`` on its parsers; the
function returns the exit status. Keeping verbs in their own modules lets the CLI grow without one
file that knows every floor of the project.

Start-up is paid on every run, and ``host-shutdown`` runs at host power-off, where a slow (even
emulated) dom0 makes each import cost many times what it does here. So a run of one verb builds a
parser of that verb's module alone (``COMMANDS`` says which verbs each module registers; the whole
tree is built for ``--help`` and for anything that names no verb), and a verb module imports at
module level only what its ``register`` needs (argparse, the settings' defaults: ``agent.config``,
``reconcilers.policy``, ``reconcilers.state``) and the rest inside the command functions that use
it: lxml, the domain model and the front ends, the planner and executor, the daemon, structlog,
prometheus_client. On the e2e dom0 under TCG, ``host-shutdown`` has its modules loaded 1.2-1.6 s
after the interpreter starts (2.6 s with every verb module, 8.2 s before verb modules went lazy).
tests/test_cli_startup.py holds ``COMMANDS`` to what the modules register and checks that every
verb loads only what it uses. Types used only in annotations are imported under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from agent import VERSION
from agent.cli.errors import one_line, report

#: The verb modules (``agent.cli.commands.<module>``) in the order ``--help`` lists them, each with
#: the verbs it registers.
COMMANDS: dict[str, tuple[str, ...]] = {
    "validate": ("validate",),
    "render": ("render",),
    "hosts": ("list",),
    "convert": ("domxml-from-native", "domxml-to-native"),
    "reconcile": ("plan", "apply"),
    "run": ("run", "status"),
    "lifecycle": ("host-shutdown", "adopt", "clear"),
    "remote": ("_remote",),
}


#: Verbs whose usage errors cannot exit 2, because 2 means something else there: plan's 2 is
#: "changes pending" (terraform's -detailed-exitcode), so a typo in a CI job must read as an error.
_USAGE_STATUS = {"plan": 1}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``xenreconcile VERB: problem (see --help)``, status 2
    (or the verb's own, ``_USAGE_STATUS``). Subparsers are made of the same class."""

    def error(self, message: str) -> NoReturn:
        verb = self.prog.split()[-1]
        self.exit(_USAGE_STATUS.get(verb, 2), f"{self.prog}: {one_line(message)} (see {self.prog} --help)\n")


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The whole tree, or the one of the module that registers ``verb`` when ``verb`` is a verb."""
    parser = _Parser(
        prog="xenreconcile",
        description="Declarative reconciliation agent for Xen hosts (libxl).",
    )
    parser.add_argument("--version", action="version", version=f"xenreconcile {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in [m for m, verbs in COMMANDS.items() if verb in verbs] or COMMANDS:
        importlib.import_module(f"agent.cli.commands.{module}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Every failure it raises ends here as one line and an exit status (agent.cli.errors);
    usage errors are one line from ``_Parser`` (status 2, plan's 1)."""
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the verb's own parser, so plan's usage status applies
        verb_parser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "uri", None) is not None:  # xen+ssh:// and xen+unix:// run elsewhere
            from agent.cli.remote import dispatch

            code = dispatch(parser, args)
            if code is not None:
                return code
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `xenreconcile list | head`: the reader left, so nothing more to say
        _silence_stdout()
        return 0
    except Exception as err:  # noqa: BLE001 (the one error path: one line, never a traceback)
        return report(args.command, err)


def verb_parser(parser: argparse.ArgumentParser, verb: str) -> argparse.ArgumentParser:
    """The subparser of ``verb`` in the tree ``build_parser`` made."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[verb]
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into the closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (captured in-process): nothing to flush
        pass

