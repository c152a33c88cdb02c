"""One error path for every verb: a failure is one line, ``xenreconcile VERB: problem``, and an exit status.

Verbs raise instead of printing: ``CommandError`` carries the status a verb documents for a usage
problem (``run``: 2 for a bad setting; ``plan``: 1, since its 2 means "changes"), every other
``XenReconcileError`` and every ``OSError`` (ENAMETOOLONG, EROFS, EACCES, ENOTDIR, ELOOP, ...) is
status 1, and ``agent.cli.main`` turns them into the one line. Anything else is a bug: it is still one
line (``internal error``, the exception's type and message) and status 1, never a traceback, unless
``XENRECONCILE_DEBUG=1`` asks for one. Lines are bounded and control characters escaped, so a hostile
file name or reply can neither forge further lines nor drive the terminal.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from libxl.errors import XenReconcileError, printable

EXIT_ERROR = 1
#: The longest problem text printed; a longer one is cut with an ellipsis.
MAX_LINE = 1000
#: Set to 1 to get the traceback of an internal error as well (for a bug report).
DEBUG_ENV = "XENRECONCILE_DEBUG"


class CommandError(XenReconcileError):
    """An expected failure of a verb, with the exit status that verb documents for it."""

    def __init__(self, message: str, status: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.status = status


def one_line(text: str, limit: int = MAX_LINE) -> str:
    """``text`` on one line: control characters escaped (``libxl.errors.printable``; backslashes
    are left alone, so text that was escaped at its source is not escaped twice), at most ``limit``
    characters."""
    out = printable(text)
    return out if len(out) <= limit else out[:limit - 1] + "…"


def describe(err: BaseException) -> str:
    """The problem sentence of an exception: located for an OSError, the message for ours."""
    if isinstance(err, OSError) and err.strerror:
        names = [str(n) for n in (err.filename, err.filename2) if n is not None]
        return ": ".join([*names, err.strerror])
    if isinstance(err, XenReconcileError | OSError):
        return str(err)
    return f"internal error ({type(err).__name__}: {err}); set {DEBUG_ENV}=1 for the traceback"


def status_of(err: BaseException) -> int:
    return err.status if isinstance(err, CommandError) else EXIT_ERROR


def report(verb: str, err: BaseException, stream: TextIO | None = None) -> int:
    """Print the one line for ``err`` and return the exit status it stands for."""
    out = stream if stream is not None else sys.stderr
    if not isinstance(err, XenReconcileError | OSError) and os.environ.get(DEBUG_ENV) == "1":
        import traceback  # only for a bug report: every verb imports this module at start-up

        traceback.print_exception(err, file=out)
    print(f"xenreconcile {verb}: {one_line(describe(err))}", file=out)
    return status_of(err)


__all__ = ["CommandError", "DEBUG_ENV", "EXIT_ERROR", "describe", "one_line", "report", "status_of"]
