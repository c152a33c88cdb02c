"""Typed errors with a location, so every rejected input says where and what.

One exception type for all bad input (`ConfigError`) keeps the callers simple: the validator,
the desired-set loader and the CLI print ``str(err)`` and never need to know which parser failed.
"""

from __future__ import annotations


class XenReconcileError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(XenReconcileError):
    """A desired-state or native config input is invalid.

    Renders as ``FILE:LINE: <element>: problem`` with the parts that are known, e.g.
    ``guest.xml:12: <memory unit='XB'>: unknown unit``.
    """

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 element: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.element = element

    def located(self, file: str) -> ConfigError:
        """Attach the file name when the parser only saw text."""
        if self.file is None:
            self.file = file
        return self

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
            where += ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        if self.element:
            where += f"{self.element}: "
        return where + self.message


class BackendError(XenReconcileError):
    """A host operation failed (libxl returned an error, or the simulated host refused)."""

    def __init__(self, operation: str, message: str, *, domain: str | None = None,
                 transient: bool = True) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.message = message
        self.domain = domain
        #: False when retrying cannot help (e.g. the config is refused by libxl).
        self.transient = transient


class BackendUnavailable(XenReconcileError):
    """The host cannot be reached at all (no Xen here, no binding built, bad URI)."""
