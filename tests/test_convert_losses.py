"""Nothing silent in conversions: each dropped key or element is one located stderr line, and
``--strict`` makes any loss exit 1; domain XML the parser cannot carry is refused with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli.main import main
from libxl.domain.formats.domxml import parse_domain_xml
from libxl.domain.formats.xl import read_xl
from libxl.domain.formats.xm import read_xm
from libxl.errors import ConfigError

PV_CFG = ('name = "g"\nmemory = 128\nkernel = "/k"\ncmdline = "root=/dev/xvda1"\n'
          'extra = "ignored by xl"\nfrobnicate = 3\n')

HVM_XML = """<domain type='xen'>
  <name>h</name>
  <memory>1048576</memory>
  <vcpu>2</vcpu>
  <os><type>hvm</type></os>
  <clock offset='utc'/>
  <devices>
    <serial type='pty'>
      <log file='/var/log/h.log'/>
    </serial>
    <interface type='bridge'><source bridge='br0'/><model type='e1000'/></interface>
  </devices>
</domain>
"""


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("strict, status", [([], 0), (["--strict"], 1)])
def test_from_native_reports_each_unused_key_with_its_line(tmp_path: Path, capsys, strict, status) -> None:
    cfg = tmp_path / "g.cfg"
    cfg.write_text(PV_CFG)
    code, out, err = run(["domxml-from-native", *strict, "xen-xl", str(cfg)], capsys)
    assert code == status
    assert "<name>g</name>" in out  # the output is still printed: lossy, not refused
    assert err.splitlines() == [f"{cfg}:5: extra: no domain XML equivalent, dropped",
                                f"{cfg}:6: frobnicate: no domain XML equivalent, dropped"]


def test_readers_list_only_the_keys_they_did_not_read() -> None:
    _, unused = read_xl(PV_CFG, "g.cfg")
    assert [(s.key, s.line) for s in unused] == [("extra", 5), ("frobnicate", 6)]
    # xm reads `extra` (its PV kernel arguments) when no cmdline is given.
    _, unused = read_xm('name = "g"\nmemory = 128\nkernel = "/k"\nextra = "quiet"\n', "g.cfg")
    assert unused == []


def test_spice_clipboard_needs_the_vdagent_as_in_xl() -> None:
    base = 'name = "s"\nmemory = 128\nbuilder = "hvm"\nspice = 1\nspice_clipboard_sharing = 1\n'
    dom, unused = read_xl(base, "s.cfg")
    assert not dom.devices.graphics[0].clipboard_copypaste
    assert [s.key for s in unused] == ["spice_clipboard_sharing"]
    dom, unused = read_xl(base + "spicevdagent = 1\n", "s.cfg")
    assert dom.devices.graphics[0].clipboard_copypaste and unused == []


def test_parser_refuses_what_it_cannot_carry_with_its_line() -> None:
    with pytest.raises(ConfigError) as err:
        parse_domain_xml(HVM_XML, "h.xml")
    assert str(err.value) == "h.xml:9: <log file='/var/log/h.log'>: not supported by this agent"
    usb = HVM_XML.replace("<log file='/var/log/h.log'/>", "").replace(
        "</devices>", "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/>"
                      "<address bus='1' device='2'/></source></hostdev></devices>")
    with pytest.raises(ConfigError, match=r"^h\.xml:12: <vendor id='0x1234'>: not supported"):
        parse_domain_xml(usb, "h.xml")
    attr = HVM_XML.replace("<log file='/var/log/h.log'/>", "").replace("<serial type='pty'>",
                                                                       "<serial type='pty' bogus='1'>")
    with pytest.raises(ConfigError, match=r"^h\.xml:8: <serial type='pty' bogus='1'>: bogus='1': not supp"):
        parse_domain_xml(attr, "h.xml")


def test_metadata_and_legacy_clock_sync_are_not_refused() -> None:
    xml = HVM_XML.replace("<log file='/var/log/h.log'/>", "").replace(
        "<clock offset='utc'/>", "<clock sync='localtime'/><metadata><app:x xmlns:app='urn:a'>1</app:x>"
                                 "</metadata>")
    assert parse_domain_xml(xml, "h.xml").clock.offset == "localtime"


@pytest.mark.parametrize("fmt", ["xen-xl", "xen-xm", "libxl-json"])
def test_to_native_reports_parser_and_writer_losses(tmp_path: Path, capsys, fmt: str) -> None:
    path = tmp_path / "h.xml"
    path.write_text(HVM_XML)
    code, out, err = run(["domxml-to-native", fmt, str(path)], capsys)
    assert code == 0 and out
    assert f"{path}:9: <log file='/var/log/h.log'>: no {fmt} equivalent, dropped" in err
    code, _, _ = run(["domxml-to-native", "--strict", fmt, str(path)], capsys)
    assert code == 1


def test_writer_loss_located_at_its_element(tmp_path: Path, capsys) -> None:
    xml = HVM_XML.replace("<log file='/var/log/h.log'/>", "").replace(
        "<serial type='pty'>", "<serial type='pty'>\n<target port='0'/>").replace(
        "<vcpu>2</vcpu>", "<vcpu>2</vcpu>\n  <title>kept nowhere</title>")
    path = tmp_path / "h.xml"
    path.write_text(xml)
    code, _, err = run(["domxml-to-native", "xen-xl", str(path)], capsys)
    assert code == 0
    assert err.splitlines() == [f"{path}:5: <title>: no xen-xl equivalent, dropped"]


def test_lossless_conversion_is_quiet(tmp_path: Path, capsys) -> None:
    xml = HVM_XML.replace("<log file='/var/log/h.log'/>", "")
    path = tmp_path / "h.xml"
    path.write_text(xml)
    code, cfg, err = run(["domxml-to-native", "--strict", "xen-xl", str(path)], capsys)
    assert (code, err) == (0, "")
    back = tmp_path / "h.cfg"
    back.write_text(cfg)
    code, _, err = run(["domxml-from-native", "--strict", "xen-xl", str(back)], capsys)
    assert (code, err) == (0, "")


def test_corpus_conversions_lose_nothing_but_what_libvirt_ignores(shared_corpus: Path, capsys) -> None:
    """libvirt's own round-trip cases: the only loss is the `extra` libvirt's test calls bogus."""
    reports = []
    for suite, fmt in (("xlconfigdata", "xen-xl"), ("xmconfigdata", "xen-xm")):
        for xml in sorted((shared_corpus / suite).glob("*.xml")):
            run(["domxml-to-native", fmt, str(xml)], capsys)
            reports += [line for line in capsys.readouterr().err.splitlines() if line]
        for cfg in sorted((shared_corpus / suite).glob("*.cfg")):
            code, _, err = run(["domxml-from-native", fmt, str(cfg)], capsys)
            reports += err.splitlines()
    assert len(reports) == 1 and reports[0].endswith(
        "test-fullvirt-direct-kernel-boot-bogus-extra.cfg:28: extra: no domain XML equivalent, dropped")


def test_sxpr_reports_unread_fields_but_not_xends_runtime_state(tmp_path: Path, capsys) -> None:
    from libxl.domain.formats.sxpr import read_sxpr

    dump = ("(domain (domid 6)(state -b----)(cpu_time 1.5)(name 'p')(memory 420)(cpu_cap 50)"
            "(image (linux (kernel '/k')(frob 1)))(device (vbd (dev 'xvda')(uname 'file:/i')(mode 'w')"
            "(bootable 1))))")
    _, unread = read_sxpr(dump)
    assert [u.key for u in unread] == ["cpu_cap", "image.linux.frob", "device.vbd.bootable"]
    path = tmp_path / "p.sxpr"
    path.write_text(dump)
    code, out, err = run(["domxml-from-native", "--strict", "xen-sxpr", str(path)], capsys)
    assert code == 1 and "<name>p</name>" in out
    assert err.splitlines()[0] == f"{path}: cpu_cap: no domain XML equivalent, dropped"
