"""What errors, logs, status and converters may show (issue 14, findings 3, 6, 9, 11).

A desired file can be a symlink to any root-readable file, so an error quotes the offending token
only (bounded, escaped), never the rest of the line; secrets (VNC/SPICE passwords, Ceph keys) are
redacted wherever a line is shown; names from files are printed with control characters escaped;
a DOCTYPE with an internal subset is refused.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import structlog
from reconcile_fixtures import domain_xml

from agent import log as agentlog
from agent.cli.commands.run import format_status
from agent.cli.main import main
from libxl.domain.formats.domxml import parse_domain_xml
from libxl.errors import TOKEN_LIMIT, ConfigError, printable, redact, shown
from reconcilers.desired import load_desired

Capture = pytest.CaptureFixture[str]
HASH = "$y$j9T$Q8sXhunter2SECRETHASHabcdefghijklmnopq"
SHADOW = f"root:{HASH}:19700:0:99999:7:::\ndaemon:*:19700:0:99999:7:::\n"
ENVIRON = "PATH=/usr/bin\0AWS_SECRET_ACCESS_KEY=hunter2SECRET\0"
ESC_NAME = "w\x1b[2J\x1b[31mred\nforged: line"


def desired_with(tmp_path: Path, **files: str) -> Path:
    desired = tmp_path / "desired"
    desired.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (desired / name.replace("_", ".")).write_text(text)
    return desired


def only_error(result) -> str:
    assert len(result.invalid) == 1
    return str(next(iter(result.invalid.values())))


# ---- finding 3: no file content beyond the offending token ---------------------------------------

@pytest.mark.parametrize(("content", "near"), [(SHADOW, ":"), (ENVIRON, "/")], ids=["shadow", "environ"])
def test_a_symlink_to_a_root_only_file_leaks_nothing(tmp_path: Path, capsys: Capture, content: str,
                                                     near: str) -> None:
    """``ln -s /etc/shadow d/a.cfg``: root-owned, not writable by others, so strict_modes reads it;
    the syntax error names the one character no token starts with."""
    secret = tmp_path / "secret"
    secret.write_text(content)
    secret.chmod(0o640)
    desired = desired_with(tmp_path)
    (desired / "a.cfg").symlink_to(secret)
    line = f"{desired / 'a.cfg'}:1: syntax error near {near!r}"
    assert only_error(load_desired(desired)) == line
    assert main(["validate", str(desired)]) == 1
    out = capsys.readouterr().out
    assert out == line + "\n"
    assert main(["plan", "--uri", "test:///default", "--dir", str(desired),
                 "--state-dir", str(tmp_path / "state")]) == 1
    out = capsys.readouterr().out
    assert line in out and "SECRET" not in out and "hunter2" not in out


def test_quoted_tokens_are_bounded_and_escaped(tmp_path: Path) -> None:
    desired = desired_with(tmp_path, a_cfg=f'name = "a"\nmemory = 128 "{"x" * 5000}\x1b[2J"\n')
    error = only_error(load_desired(desired))
    assert error == f"{desired / 'a.cfg'}:2: syntax error near '\"{'x' * (TOKEN_LIMIT - 1)}...'"
    xml = desired_with(tmp_path / "x", b_xml=f"<{'n' * 5000}></b>")
    error = only_error(load_desired(xml))
    assert error.endswith(f"Opening and ending tag mismatch: {'n' * TOKEN_LIMIT}... line 1 and b")


def test_bounding_keeps_apostrophes_and_short_tokens_whole() -> None:
    text = "owned by uid 5, not by the agent's uid 0 or root; script '/x' is outside ['/etc/xen/scripts']"
    assert shown(text) == text
    assert shown(f"bad {'y' * 100!r}") == f"bad '{'y' * TOKEN_LIMIT}...'"


# ---- finding 6: secrets redacted everywhere -------------------------------------------------------

def test_display_passwords_are_redacted_from_errors(tmp_path: Path, capsys: Capture) -> None:
    desired = desired_with(
        tmp_path,
        c_xml="<domain type='xen'><name>v</name><memory>1024</memory><os><type>hvm</type></os><devices>"
              "<graphics type='vnc' passwd='SECRETPW' port='99999'/></devices></domain>",
        d_cfg='name="w"\nmemory=128\nkernel="/k"\nvncpasswd = SECRETPW\n')
    result = load_desired(desired)
    errors = sorted(str(e) for e in result.invalid.values())
    assert errors == [f"{desired / 'c.xml'}:1: <graphics type='vnc' passwd='***' port='99999'>: port must "
                      "be at most 65535, not 99999",
                      f"{desired / 'd.cfg'}:4: syntax error in the value of vncpasswd (not shown: a secret)"]
    assert main(["validate", str(desired)]) == 1
    assert "SECRETPW" not in capsys.readouterr().out
    assert main(["plan", "--uri", "test:///default", "--dir", str(desired),
                 "--state-dir", str(tmp_path / "state")]) == 1
    assert "SECRETPW" not in capsys.readouterr().out


@pytest.mark.parametrize(("text", "expected"), [
    ("rbd:pool/img:id=admin:key=AQBsecret==:auth_supported=cephx",
     "rbd:pool/img:id=admin:key=***:auth_supported=cephx"),
    ('{"passwd": "s", "keymap": "de"}', '{"passwd": "***", "keymap": "de"}'),
    ("spicepasswd = 'x' vnc_password=y", "spicepasswd = '***' vnc_password=***"),
    ("unknown key: 'x', keymap=de", "unknown key: 'x', keymap=de"),
])
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_status_and_the_log_redact_and_escape() -> None:
    doc = {"domains": {ESC_NAME: {"state": "running", "file": "/d/a.cfg", "last_error": "vncpasswd=SECRET"}},
           "invalid_files": {"/d/\x1bx.xml": "bad"}}
    lines = format_status(doc)
    assert all("\x1b" not in line and "\n" not in line and "SECRET" not in line for line in lines)
    assert any(line.startswith("w\\x1b[2J\\x1b[31mred\\nforged: line") for line in lines)
    for renderer in ("console", "json"):
        stream = io.StringIO()
        agentlog.configure(renderer, stream=stream)
        try:
            agentlog.domain_logger(ESC_NAME, "/d/a.cfg", "create").error("create failed",
                                                                        error="passwd='SECRET' bad")
        finally:
            structlog.reset_defaults()  # as tests/test_agent_log.py: no later test logs into this stream
        out = stream.getvalue()
        assert "SECRET" not in out and "\x1b" not in out and out.count("\n") == 1, out
    assert json.loads(out)["domain"] == ESC_NAME  # JSON escapes control characters itself


def test_converters_leave_passwords_out_unless_security_info(tmp_path: Path, capsys: Capture) -> None:
    cfg = tmp_path / "g.cfg"
    cfg.write_text('name="g"\nmemory=128\nkernel="/k"\nvfb=["type=vnc,vncpasswd=SECRETPW"]\n')
    assert main(["domxml-from-native", "xen-xl", str(cfg)]) == 0
    assert "SECRETPW" not in (xml := capsys.readouterr().out) and "<graphics type='vnc'" in xml
    assert main(["domxml-from-native", "xen-xl", "--security-info", str(cfg)]) == 0
    secure = capsys.readouterr().out
    assert "passwd='SECRETPW'" in secure
    path = tmp_path / "g.xml"
    path.write_text(secure)
    for fmt, needle in (("xen-xl", "vncpasswd=SECRETPW"), ("xen-xm", "vncpasswd=SECRETPW"),
                        ("libxl-json", '"passwd": "SECRETPW"')):
        assert main(["domxml-to-native", fmt, str(path)]) == 0
        assert "SECRETPW" not in capsys.readouterr().out
        assert main(["domxml-to-native", fmt, "--security-info", str(path)]) == 0
        assert needle in capsys.readouterr().out


# ---- finding 9: control characters in names ------------------------------------------------------

def test_names_with_control_characters_are_escaped_in_validate_and_plan(tmp_path: Path,
                                                                        capsys: Capture) -> None:
    name = ESC_NAME.replace("\x1b", "\\x1b").replace("\n", "\\n")
    desired = desired_with(tmp_path, e_cfg=f'name="{name}"\nmemory=128\nkernel="/k"\n')
    weird = desired / "\x1b[2Jx\n.xml"
    weird.write_text("<domain")
    assert main(["validate", "-v", str(desired)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and len(out.splitlines()) == 2
    assert "ok: w\\x1b[2J\\x1b[31mred\\nforged: line (pv)" in out
    assert f"{desired}/\\x1b[2Jx\\n.xml:1: not well-formed XML" in out
    main(["plan", "--uri", "test:///default", "--dir", str(desired), "--state-dir", str(tmp_path / "state")])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "+ w\\x1b[2J\\x1b[31mred\\nforged: line  create" in out


def test_printable_escapes_c0_c1_del_and_bidi_overrides() -> None:
    assert printable("a\x00\x07\t\x7f\x9b\u202eb") == "a\\x00\\x07\\t\\x7f\\x9b\\u202eb"
    assert printable("ünïcode ok") == "ünïcode ok"


# ---- finding 11: DOCTYPE with an internal subset -------------------------------------------------

@pytest.mark.parametrize("subset", [
    "<!ATTLIST source path CDATA '/etc/cron.d/x'>",
    "<!ELEMENT domain ANY>",
    " ",
])
def test_an_internal_dtd_subset_is_refused(tmp_path: Path, subset: str, capsys: Capture) -> None:
    xml = (f"<?xml version='1.0'?>\n<!DOCTYPE domain [{subset}]>\n<domain type='xen'><name>s</name>"
           "<memory>1024</memory><os><type>hvm</type></os><devices><serial type='file'><source/>"
           "<target port='0'/></serial></devices></domain>\n")
    with pytest.raises(ConfigError) as info:
        parse_domain_xml(xml, file="s.xml")
    assert str(info.value) == ("s.xml:2: a DOCTYPE with an internal subset ([...]) is not allowed: "
                               "declarations could add attributes a reviewer cannot see")
    desired = desired_with(tmp_path, s_xml=xml)
    assert main(["validate", str(desired)]) == 1
    assert capsys.readouterr().out.count("\n") == 1


def test_a_plain_doctype_is_still_read() -> None:
    dom = parse_domain_xml("<!DOCTYPE domain>\n" + domain_xml("plain"), file="p.xml")
    assert dom.name == "plain"


def test_errors_render_through_the_one_helper() -> None:
    err = ConfigError("bad \x1b[31m", file="/d/\nx.cfg", line=3, element="<graphics passwd='p'>")
    assert str(err) == "/d/\\nx.cfg:3: <graphics passwd='***'>: bad \\x1b[31m"
    assert os.linesep not in str(err)
