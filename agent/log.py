"""structlog setup: JSON lines for journald and log shippers, a readable console on a terminal.

The renderer follows where stdout goes (``auto``) because the same binary runs under systemd (the
journal wants one JSON object per line) and in a newcomer's terminal (who wants colours and
columns). Lines about a domain carry ``domain``, ``file``, ``action`` and ``reconcile_id``:
``domain_logger`` binds all four so no call site can forget one.
"""

from __future__ import annotations

import logging
import sys
import uuid
from typing import Any, TextIO

import structlog

from libxl.errors import printable, redact

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}
#: The level ``configure`` set last (structlog filters below it by making the calls no-ops).
_level = logging.INFO


def choose_renderer(log_format: str, stream: TextIO) -> str:
    """``auto`` becomes ``console`` on a terminal and ``json`` everywhere else."""
    if log_format != "auto":
        return log_format
    isatty = getattr(stream, "isatty", None)
    return "console" if isatty is not None and isatty() else "json"


def configure(log_format: str = "auto", level: str = "info", stream: TextIO | None = None) -> str:
    """Configure structlog process-wide; returns the renderer actually chosen."""
    global _level
    _level = _LEVELS[level]
    out = stream if stream is not None else sys.stdout
    renderer_name = choose_renderer(log_format, out)
    renderer: Any
    scrub = _scrubber(escape=renderer_name != "json")  # JSON escapes control characters itself
    if renderer_name == "json":
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    return renderer_name


def _scrubber(escape: bool) -> Any:
    """A processor redacting secrets from every string field and, for a terminal, escaping control
    characters: guest and file names come from desired files, and an ESC sequence or a newline
    in one must not rewrite the operator's terminal or forge a log line."""
    def scrub(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
        for key, value in event.items():
            if isinstance(value, str):
                value = redact(value)
                event[key] = printable(value) if escape else value
        return event
    return scrub


def debug_enabled() -> bool:
    """Whether debug lines are written: a caller can skip building what only they would show."""
    return _level <= logging.DEBUG


def get_logger(**bound: Any) -> Any:
    return structlog.get_logger("xenreconcile").bind(**bound)


def new_reconcile_id() -> str:
    """Short random id tying together every line of one reconcile of one domain."""
    return uuid.uuid4().hex[:12]


def domain_logger(domain: str, file: str | None, action: str, reconcile_id: str | None = None) -> Any:
    """A logger for lines about one domain, with the four fields the issue requires."""
    return get_logger(domain=domain, file=file, action=action,
                      reconcile_id=reconcile_id or new_reconcile_id())
