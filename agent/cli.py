"""The ``xenreconcile`` command: one argparse tree, one module per verb group.

Each module in ``COMMANDS`` exposes ``register(subparsers)`` and sets ``func`` on its parsers; the
function returns the exit status. Keeping verbs in their own modules lets the CLI grow without one
file that knows every floor of the project.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: Verb modules under ``agent.commands``, in the order ``--help`` lists them.
COMMANDS = [
    "validate",
    "render",
    "hosts",
    "convert",
    "reconcile",
    "run",
    "lifecycle",
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
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
