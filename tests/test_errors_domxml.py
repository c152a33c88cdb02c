"""Every rejected domain XML says where (file:line, element) and what is wrong.

Each row is a distinct bad input and the exact located text the operator must see. The documents
come from one template so the line numbers in the expectations are easy to check by eye:
line 1 <domain>, 2 name, 3 memory, 4 os, 5 extra top-level elements, 6 <devices>, 7 the device.
"""

from __future__ import annotations

import pytest

from libxl.domain.formats.domxml import MAX_XML_BYTES, parse_domain_xml
from libxl.errors import ConfigError


def doc(*, root: str = "<domain type='xen'>", name: str = "<name>g</name>",
        memory: str = "<memory unit='MiB'>256</memory>", os: str = "<os><type>linux</type></os>",
        extra: str = "", devices: str = "") -> str:
    return (f"{root}\n  {name}\n  {memory}\n  {os}\n  {extra}\n  <devices>\n    {devices}\n"
            "  </devices>\n</domain>\n")


XXE = ("<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>\n"
       "<domain type='xen'><name>&xxe;</name></domain>")
LAUGHS = ("<?xml version='1.0'?>\n<!DOCTYPE lolz [\n <!ENTITY lol 'lol'>\n"
          " <!ENTITY lol2 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n"
          " <!ENTITY lol3 '&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;'>\n"
          "]>\n<domain type='xen'><name>&lol3;</name></domain>")
XEN = "xmlns:x='http://libvirt.org/schemas/domain/xen/1.0'"

CASES = [
    ("xxe", XXE, "guest.xml:2: entity declarations are not allowed"),
    ("billion-laughs", LAUGHS, "guest.xml:3: entity declarations are not allowed"),
    ("external-dtd", "<!DOCTYPE domain SYSTEM 'file:///etc/x.dtd'>\n<domain type='xen'/>",
     "guest.xml:1: external DTD references are not allowed"),
    ("oversized", doc(extra="<description>" + "x" * MAX_XML_BYTES + "</description>"),
     f"over the {MAX_XML_BYTES} byte limit"),
    ("not-xml", "name = 'g'\nmemory = 256\n", "guest.xml:1: not well-formed XML: Start tag expected"),
    ("unclosed", doc(name="<name>g"), "guest.xml:9: not well-formed XML: Opening and ending tag mismatch"),
    ("undefined-entity", doc(name="<name>&foo;</name>"), "guest.xml:2: not well-formed XML: Entity 'foo'"),
    ("wrong-root", "<vm type='xen'/>", "guest.xml:1: <vm type='xen'>: root element must be <domain>"),
    ("kvm", doc(root="<domain type='kvm'>"),
     "guest.xml:1: <domain type='kvm'>: domain type must be 'xen', not 'kvm'"),
    ("no-type", doc(root="<domain>"), "guest.xml:1: <domain>: missing type attribute (only type='xen'"),
    ("missing-name", doc(name=""), "guest.xml:1: <domain type='xen'>: missing <name>"),
    ("slash-in-name", doc(name="<name>a/b</name>"), "guest.xml:2: <name>: name must not contain '/'"),
    ("duplicate-name", doc(extra="<name>h</name>"), "guest.xml:5: <name>: duplicate <name>"),
    ("bad-uuid", doc(extra="<uuid>1234-not-a-uuid</uuid>"),
     "guest.xml:5: <uuid>: malformed uuid '1234-not-a-uuid'"),
    ("unknown-unit", doc(memory="<memory unit='XB'>12</memory>"),
     "guest.xml:3: <memory unit='XB'>: unknown unit 'XB'"),
    ("negative-memory", doc(memory="<memory>-5</memory>"), "guest.xml:3: <memory>: negative size: '-5'"),
    ("zero-memory", doc(memory="<memory>0</memory>"), "guest.xml:3: <memory>: memory must be positive"),
    ("missing-memory", doc(memory=""), "guest.xml:1: <domain type='xen'>: missing <memory>"),
    ("bad-current-memory", doc(extra="<currentMemory unit='KiB'>lots</currentMemory>"),
     "guest.xml:5: <currentMemory unit='KiB'>: not a whole number: 'lots'"),
    ("vcpu-not-number", doc(extra="<vcpu>two</vcpu>"),
     "guest.xml:5: <vcpu>: value must be an integer, not 'two'"),
    ("vcpu-zero", doc(extra="<vcpu>0</vcpu>"), "guest.xml:5: <vcpu>: value must be at least 1, not 0"),
    ("vcpu-current", doc(extra="<vcpu current='4'>2</vcpu>"),
     "guest.xml:5: <vcpu current='4'>: current 4 exceeds the vcpu count 2"),
    ("vcpu-cpuset", doc(extra="<vcpu cpuset='0-x'>2</vcpu>"),
     "guest.xml:5: <vcpu cpuset='0-x'>: malformed cpuset '0-x'"),
    ("bad-os-type", doc(os="<os><type>windows</type></os>"),
     "guest.xml:4: <type>: must be one of linux, xen, hvm, xenpvh, not 'windows'"),
    ("missing-os", doc(os=""), "guest.xml:1: <domain type='xen'>: missing <os><type>"),
    ("bad-boot-dev", doc(os="<os><type>hvm</type><boot dev='usb'/></os>"),
     "guest.xml:4: <boot dev='usb'>: dev must be one of hd, cdrom, fd, network, not 'usb'"),
    ("bad-lifecycle", doc(extra="<on_crash>explode</on_crash>"),
     "guest.xml:5: <on_crash>: must be one of destroy, restart"),
    ("bad-clock", doc(extra="<clock offset='mars'/>"),
     "guest.xml:5: <clock offset='mars'>: offset must be one of utc, localtime, variable, timezone"),
    ("bad-clock-sync", doc(extra="<clock sync='mars'/>"), "guest.xml:5: <clock sync='mars'>: sync must be"),
    ("bad-hap-state", doc(extra="<features><hap state='maybe'/></features>"),
     "guest.xml:5: <hap state='maybe'>: state must be one of on, off, not 'maybe'"),
    ("bad-cpu-policy", doc(extra="<cpu mode='host-passthrough'><feature policy='want' name='vmx'/></cpu>"),
     "guest.xml:5: <feature policy='want' name='vmx'>: policy must be one of force, require"),
    ("power-state", doc(extra="<metadata><s:state xmlns:s='https://xenreconcile.dev/schemas/domain/1.0'>"
                              "asleep</s:state></metadata>"),
     "guest.xml:5: <s:state>: must be one of running, paused, stopped, not 'asleep'"),
    ("disk-no-target", doc(devices="<disk type='file'><source file='/x.img'/></disk>"),
     "guest.xml:7: <disk type='file'>: disk has no <target dev=...>"),
    ("disk-no-source", doc(devices="<disk type='block'><target dev='xvda'/></disk>"),
     "guest.xml:7: <disk type='block'>: disk has no <source>"),
    ("bad-disk-device", doc(devices="<disk device='tape'><target dev='st0'/></disk>"),
     "guest.xml:7: <disk device='tape'>: device must be one of disk, cdrom, floppy, not 'tape'"),
    ("bad-disk-type", doc(devices="<disk type='volume'><target dev='xvda'/></disk>"),
     "guest.xml:7: <disk type='volume'>: type must be one of file, block, network, not 'volume'"),
    ("bad-disk-bus", doc(devices="<disk><source file='/x'/><target dev='sda' bus='floppybus'/></disk>"),
     "guest.xml:7: <target dev='sda' bus='floppybus'>: bus must be one of xen, ide"),
    ("bad-mac", doc(devices="<interface type='ethernet'><mac address='aa:bb:cc:dd:ee'/></interface>"),
     "guest.xml:7: <mac address='aa:bb:cc:dd:ee'>: malformed mac address 'aa:bb:cc:dd:ee'"),
    ("bad-interface-type", doc(devices="<interface type='direct'/>"),
     "guest.xml:7: <interface type='direct'>: type must be one of bridge, ethernet, network, hostdev"),
    ("bridge-without-source", doc(devices="<interface type='bridge'/>"),
     "guest.xml:7: <interface type='bridge'>: bridge interface needs <source bridge=...>"),
    ("bad-graphics-port", doc(devices="<graphics type='vnc' port='70000'/>"),
     "guest.xml:7: <graphics type='vnc' port='70000'>: port must be at most 65535, not 70000"),
    ("bad-graphics-type", doc(devices="<graphics type='rdp'/>"),
     "guest.xml:7: <graphics type='rdp'>: type must be one of vnc, sdl, spice, not 'rdp'"),
    ("bad-autoport", doc(devices="<graphics type='vnc' autoport='maybe'/>"),
     "guest.xml:7: <graphics type='vnc' autoport='maybe'>: autoport must be one of yes, no"),
    ("tcp-serial-no-service", doc(devices="<serial type='tcp'><source mode='bind' host='h'/></serial>"),
     "guest.xml:7: <serial type='tcp'>: tcp chardev needs <source service=...>"),
    ("bad-chardev-type", doc(devices="<console type='telepathy'/>"),
     "guest.xml:7: <console type='telepathy'>: type must be one of pty, file"),
    ("bad-pci-slot", doc(devices="<hostdev mode='subsystem' type='pci'><source>"
                                 "<address domain='0x0000' bus='0x01' slot='0x40' function='0x0'/>"
                                 "</source></hostdev>"),
     "guest.xml:7: <address domain='0x0000' bus='0x01' slot='0x40' function='0x0'>: "
     "slot must be at most 31, not 64"),
    ("bad-input", doc(devices="<input type='joystick' bus='usb'/>"),
     "guest.xml:7: <input type='joystick' bus='usb'>: type must be one of mouse, keyboard, tablet"),
    ("bad-xen-arg", doc(root=f"<domain type='xen' {XEN}>",
                        extra="<x:commandline><x:arg value='-no-hpet'/><x:arg/></x:commandline>"),
     "guest.xml:5: <x:arg>: missing value attribute"),
]


@pytest.mark.parametrize(("xml", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_with_a_located_message(xml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_domain_xml(xml, file="guest.xml")
    assert expected in str(info.value)
    assert info.value.file == "guest.xml"


def test_cases_are_distinct() -> None:
    assert len(CASES) >= 25
    assert len({c[0] for c in CASES}) == len({c[1] for c in CASES}) == len(CASES)


def test_template_itself_is_valid() -> None:
    """Otherwise a case could pass because of an unrelated error in the template."""
    dom = parse_domain_xml(doc(devices="<disk><source file='/x'/><target dev='xvda'/></disk>"))
    assert dom.memory_kib == 256 * 1024 and dom.devices.disks[0].target_dev == "xvda"


def test_error_carries_its_parts() -> None:
    with pytest.raises(ConfigError) as info:
        parse_domain_xml(doc(memory="<memory unit='XB'>12</memory>"), file="guest.xml")
    err = info.value
    assert (err.file, err.line, err.element) == ("guest.xml", 3, "<memory unit='XB'>")
    assert str(err) == "guest.xml:3: <memory unit='XB'>: unknown unit 'XB'"


def test_xxe_never_reads_the_file(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("TOPSECRET")
    xml = (f"<!DOCTYPE d [<!ENTITY s SYSTEM '{secret.as_uri()}'>]>\n"
           "<domain type='xen'><name>&s;</name></domain>")
    with pytest.raises(ConfigError) as info:
        parse_domain_xml(xml)
    assert "TOPSECRET" not in str(info.value)
