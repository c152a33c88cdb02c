"""Typed errors with a location, so every rejected input says where and what.

One exception type for all bad input (`ConfigError`) keeps the callers simple: the validator,
the desired-set loader and the CLI print ``str(err)`` and never need to know which parser failed.
"""

from __future__ import annotations

import re

#: How much of one offending token an error may quote: enough to find it, too little to leak a file
#: the agent was tricked into reading (a symlink to /etc/shadow must not print its hashes).
TOKEN_LIMIT = 40
#: Settings whose values are secrets: VNC/SPICE passwords (libvirt's ``passwd``, xl.cfg's
#: ``vncpasswd``/``spicepasswd``, vfb specs) and Ceph keys in rbd disk targets (``:key=``).
_SECRET = re.compile(r"""(?ix)
    \b((?:vnc_?|spice_?)?passw(?:or)?d|key)   # the setting: ``key`` is rbd's Ceph key
    (\s*=\s*|['"]\s*:\s*)                 # spec/attribute ``=``, or a JSON/dict ``": ``
    ('[^']*'|"[^"]*"|[^,\s'"\]:;>)]*)      # the value, quoted or up to a spec delimiter""")
#: A quoted token as ``repr`` writes one: the quote opens after no letter and closes before none
#: (so the apostrophe of "agent's" never pairs with a quote). Short runs match too, to stay aligned.
_QUOTED = re.compile(r"""(?<!\w)(?:'[^'\n]*'|"[^"\n]*")(?!\w)""")
#: C0 controls, DEL and C1 controls, plus the bidi overrides a terminal would act on.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
REDACTED = "***"


def is_secret_key(name: str) -> bool:
    """True for a setting whose value is a secret (``vncpasswd``, ``spicepasswd``, ``passwd``...)."""
    match = _SECRET.match(f"{name}=")
    return match is not None and match.group(1).lower() == name.lower()


def printable(text: str) -> str:
    """``text`` with every control character escaped (``\\x1b``, ``\\n``...): names from files
    (file names, guest names) are shown to people and written to logs, where an ESC sequence or a
    newline could rewrite the terminal or forge a log line."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def redact(text: str) -> str:
    """``text`` with the value of every secret setting replaced by ``***``."""
    def one(m: re.Match[str]) -> str:
        value = m.group(3)
        quote = value[:1] if value[:1] in "'\"" else ""
        return f"{m.group(1)}{m.group(2)}{quote}{REDACTED}{quote}" if value else m.group()
    return _SECRET.sub(one, text)


def safe(text: str) -> str:
    """A line for people and logs: secrets redacted, control characters escaped. Every
    presentation point (status, plan, validate, the console log) passes its lines through here."""
    return printable(redact(text))


def bound(text: str) -> str:
    """Every quoted token in ``text`` cut to ``TOKEN_LIMIT`` characters."""
    def one(m: re.Match[str]) -> str:
        quoted = m.group()
        return quoted if len(quoted) <= TOKEN_LIMIT + 2 else quoted[:TOKEN_LIMIT + 1] + "..." + quoted[0]
    return _QUOTED.sub(one, text)


def token(text: str) -> str:
    """One offending token for an error message: quoted, escaped and cut to ``TOKEN_LIMIT``."""
    return repr(text if len(text) <= TOKEN_LIMIT else text[:TOKEN_LIMIT] + "...")


def shown(text: str) -> str:
    """What an error message built from file content must pass through before a person or a log
    sees it: ``safe``, and each quoted token bounded (after redaction, so no cut leaves a prefix)."""
    return printable(bound(redact(text)))


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
        return shown(where + self.message)


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
