"""The ``xenreconcile`` command: one argparse tree, one module per verb group.

Each module in ``COMMANDS`` exposes ``register(subparsers)`` and sets ``func`` on its parsers; the
function returns the exit status. Keeping verbs in their own modules lets the CLI grow without one
file that knows every floor of the project.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from agent.errors import report

#: Verb modules under ``agent.commands``, in the order ``--help`` lists them.
COMMANDS = [
    "validate",
    "hosts",
    "convert",
    "reconcile",
    "run",
    "remote",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xenreconcile",
        description="Declarative reconciliation agent for Xen hosts (libxl).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"agent.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one verb. Every failure it raises ends here as one line and an exit status (agent.errors);
    argparse's own usage errors keep argparse's exit status 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if getattr(args, "uri", None) is not None:  # xen+ssh:// and xen+unix:// run elsewhere
            from agent.remote import dispatch

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


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush into the closed pipe is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (captured in-process): nothing to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
