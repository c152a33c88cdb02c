"""The xl.cfg(5) syntax shared by xl and the legacy xm format: tokenizer, parser and writer.

A config is a sequence of ``key = value`` (or ``key += value``) settings separated by newlines or
``;``. Values are numbers, strings (single, double or Python-style triple quotes, with C escapes)
and lists (``[ ... ]``, nestable, free to span lines, trailing comma allowed). ``#`` starts a comment.
The parser keeps each setting's line so the xl/xm readers can name it in their errors; both readers
sit on this module, which knows nothing of what the keys mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libxl.errors import ConfigError, is_secret_key, token

#: A parsed value: a number, a string, or a (possibly nested) list of values.
Value = int | str | list["Value"]
#: xl uses lists of lists at most (vnuma); the cap keeps hostile nesting from exhausting the stack.
MAX_LIST_DEPTH = 32


@dataclass
class Setting:
    key: str
    value: Value
    line: int


_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\f\v]+|\\\n)
    |(?P<comment>\#[^\n]*)
    |(?P<nl>\n)
    |(?P<str3>\"\"\"(?:[^\\]|\\.)*?\"\"\"|'''(?:[^\\]|\\.)*?''')
    |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
    |(?P<num>0[xX][0-9a-fA-F]+|[+-]?\d+(?:\.\d+)?)
    |(?P<id>[A-Za-z_][A-Za-z0-9_.-]*)
    |(?P<op>\+=|[=\[\],;])""",
    re.X | re.S,
)

_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", '"': '"', "'": "'", "\n": ""}
_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{1,2}|[0-7]{1,3}|.)", re.S)


class SettingsReader:
    """Reads of one file's parsed settings (``parse_cfg``) that remember every key asked for, so
    the reader can tell what it left behind; errors name the file, the key and its line. The xl
    and xm model readers (``xencommon.Cfg``) and the libxl one (``xlvalues.XlValues``) build on it."""
    settings: dict[str, Setting]
    file: str | None
    read: set[str]

    def line(self, key: str) -> int | None:
        setting = self.settings.get(key)
        return setting.line if setting else None

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line(key), element=key)

    def raw(self, key: str) -> Value | None:
        self.read.add(key)
        setting = self.settings.get(key)
        return None if setting is None else setting.value


def _unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        code = m.group(1)
        if code[0] == "x" and len(code) > 1:
            return chr(int(code[1:], 16))
        if code[0] in "01234567":
            return chr(int(code, 8))
        return _ESCAPES.get(code, "\\" + code)
    return _ESCAPE.sub(one, body)


@dataclass
class _Tok:
    kind: str  # str | num | id | op | nl | end
    text: str
    line: int
    value: Value | None = None


def _tokenize(text: str, file: str | None) -> list[_Tok]:
    toks: list[_Tok] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            # only the character no token can start with: the rest of the line may be a file the
            # agent was tricked into reading (a symlink to /etc/shadow)
            raise ConfigError(f"syntax error near {text[pos]!r}", file=file, line=line)
        kind, raw = m.lastgroup or "", m.group()
        if kind == "str3":
            toks.append(_Tok("str", raw, line, _unescape(raw[3:-3])))
        elif kind == "str":
            toks.append(_Tok("str", raw, line, _unescape(raw[1:-1])))
        elif kind == "num":
            try:
                toks.append(_Tok("num", raw, line, _number(raw)))
            except ValueError:  # over Python's 4300-digit int conversion limit
                raise ConfigError(f"number too long ({len(raw)} digits)", file=file, line=line) from None
        elif kind in ("id", "op", "nl"):
            toks.append(_Tok(kind, raw, line))
        line += raw.count("\n")
        pos = m.end()
    toks.append(_Tok("end", "end of file", line))
    return toks


def _number(raw: str) -> int | str:
    """Integers become ints; decimals and numbers with a leading zero stay text (xl reads decimals
    as strings, e.g. ``cpu_weight``, and ``010`` as octal: the xl front end reads the text itself)."""
    if raw.lower().startswith("0x"):
        return int(raw, 16)
    digits = raw.lstrip("+-")
    return raw if "." in raw or (len(digits) > 1 and digits[0] == "0") else int(raw)


class _Parser:
    def __init__(self, toks: list[_Tok], file: str | None) -> None:
        self.toks, self.i, self.file = toks, 0, file

    def error(self, tok: _Tok) -> ConfigError:
        near = token(tok.text) if tok.kind != "nl" else repr("end of line")
        return ConfigError(f"syntax error near {near}", file=self.file, line=tok.line)

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def skip_newlines(self) -> None:
        while self.peek().kind == "nl":
            self.i += 1

    def value(self, depth: int = 0) -> Value:
        tok = self.take()
        if tok.kind in ("str", "num"):
            assert tok.value is not None
            return tok.value
        if tok.kind == "op" and tok.text == "[":
            if depth >= MAX_LIST_DEPTH:
                raise ConfigError(f"lists nested deeper than {MAX_LIST_DEPTH}", file=self.file, line=tok.line)
            items: list[Value] = []
            while True:
                self.skip_newlines()
                if self.peek().kind == "op" and self.peek().text == "]":
                    self.take()
                    return items
                items.append(self.value(depth + 1))
                self.skip_newlines()
                sep = self.take()
                if sep.kind == "op" and sep.text == "]":
                    return items
                if not (sep.kind == "op" and sep.text == ","):
                    raise self.error(sep)
        raise self.error(tok)

    def settings(self) -> list[tuple[Setting, str]]:
        out: list[tuple[Setting, str]] = []
        while True:
            tok = self.take()
            if tok.kind == "end":
                return out
            if tok.kind == "nl" or (tok.kind == "op" and tok.text == ";"):
                continue
            if tok.kind != "id":
                raise self.error(tok)
            op = self.take()
            if not (op.kind == "op" and op.text in ("=", "+=")):
                raise self.error(op)
            try:
                value = self.value()
                end = self.peek()
                if not (end.kind in ("nl", "end") or (end.kind == "op" and end.text == ";")):
                    raise self.error(end)
            except ConfigError as err:
                if is_secret_key(tok.text):  # the token would be (part of) the password
                    raise ConfigError(f"syntax error in the value of {tok.text} (not shown: a secret)",
                                      file=self.file, line=err.line) from None
                raise
            out.append((Setting(tok.text, value, tok.line), op.text))


def config_text(data: bytes, file: str, limit: int) -> str:
    """The text of a config file read as bytes: at most ``limit`` bytes, UTF-8, else a located
    ``ConfigError`` (desired xl.cfg files and the host's xl.conf/libxl.conf read alike)."""
    if len(data) > limit:
        raise ConfigError(f"file is over the {limit} byte limit", file=file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"not UTF-8 text (byte {err.start})", file=file) from None


def parse_cfg(text: str, file: str | None = None) -> dict[str, Setting]:
    """Settings in file order; a repeated key replaces the earlier one, ``+=`` appends to it."""
    result: dict[str, Setting] = {}
    for setting, op in _Parser(_tokenize(text, file), file).settings():
        old = result.get(setting.key)
        if op == "+=" and old is not None:
            if isinstance(old.value, list) != isinstance(setting.value, list):
                raise ConfigError(f"{setting.key}: '+=' mixes a list and a single value",
                                  file=file, line=setting.line)
            if isinstance(old.value, list) and isinstance(setting.value, list):
                setting = Setting(setting.key, old.value + setting.value, old.line)
            else:
                setting = Setting(setting.key, f"{old.value}{setting.value}", old.line)
        result.pop(setting.key, None)
        result[setting.key] = setting
    return result


def quote(text: str) -> str:
    """The plainest quoting that reads back as ``text`` (triple quotes when both quotes occur)."""
    if "\\" not in text and "\n" not in text:
        if '"' not in text:
            return f'"{text}"'
        if "'" not in text:
            return f"'{text}'"
        if '"""' not in text and not text.endswith('"'):
            return f'"""{text}"""'
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    return "[ " + ", ".join(format_value(v) for v in value) + " ]" if value else "[ ]"


def format_cfg(settings: list[tuple[str, Value]]) -> str:
    """One ``key = value`` line per setting, in the given order."""
    return "".join(f"{key} = {format_value(value)}\n" for key, value in settings)
