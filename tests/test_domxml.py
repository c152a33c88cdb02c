"""Domain XML parse/format semantics: what each construct becomes in the model, and back."""

from __future__ import annotations

from pathlib import Path

import pytest

from libxl.domain.formats.domxml import format_domain_xml, parse_domain_xml
from libxl.domain.model import XEN_NS, Domain

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "desired"

RICH = """<domain type='xen' xmlns:q='http://libvirt.org/schemas/domain/xen/1.0'>
  <title>Rich</title>
  <name>rich</name>
  <description>every &amp; each 'construct'</description>
  <uuid>C7A5FDB2CDAF9455926AD65C16DB1809</uuid>
  <metadata>
    <other:thing xmlns:other='urn:other'>ignored</other:thing>
    <xr:state xmlns:xr='https://xenreconcile.dev/schemas/domain/1.0'>paused</xr:state>
  </metadata>
  <maxMemory slots='16' unit='GiB'>4</maxMemory>
  <memory unit='GiB'>2</memory>
  <currentMemory unit='MiB'>1024</currentMemory>
  <vcpu placement='static' cpuset='0-3,^2' current='2'>4</vcpu>
  <cputune><shares>1500</shares></cputune>
  <os firmware='efi'>
    <type arch='x86_64' machine='xenfv'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/ovmf.bin</loader>
    <kernel>/k</kernel><initrd>/i</initrd><cmdline>  ro quiet </cmdline>
    <acpi><table type='slic'>/sys/SLIC</table></acpi>
    <boot dev='cdrom'/><boot dev='hd'/>
  </os>
  <features>
    <pae/><acpi/><apic/><hap state='off'/><viridian/><privnet/>
    <hyperv mode='custom'><relaxed state='on'/><spinlocks state='on' retries='8191'/></hyperv>
    <xen><e820_host state='on'/><passthrough state='on' mode='sync_pt'/></xen>
  </features>
  <cpu mode='custom' match='exact' check='partial'>
    <model>qemu64</model>
    <feature policy='forbid' name='vmx'/>
    <numa><cell id='0' cpus='0-3' memory='2' unit='GiB'>
      <distances><sibling id='0' value='10'/></distances></cell></numa>
  </cpu>
  <clock offset='timezone' timezone='Europe/Paris'>
    <timer name='rtc' present='yes' tickpolicy='catchup'/>
  </clock>
  <on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>coredump-restart</on_crash>
  <devices>
    <memballoon model='xen'/>
    <emulator>/usr/lib/xen/bin/qemu-system-i386</emulator>
    <disk type='network' device='disk'>
      <driver name='qemu' type='raw' cache='none' discard='unmap'/>
      <source protocol='rbd' name='pool/img'><host name='mon1' port='6789'/><host name='mon2'/></source>
      <backenddomain name='stordom'/>
      <target dev='xvda' bus='xen'/><shareable/><transient/>
    </disk>
    <disk type='block' device='cdrom'><target dev='hdc' bus='ide'/><readonly/></disk>
    <controller type='xenbus' index='0' maxGrantFrames='64' maxEventChannels='2047'/>
    <controller type='usb' index='0' model='qusb2' ports='4'/>
    <interface type='network'>
      <mac address='00:16:3E:0A:0B:0C'/>
      <source network='default' portgroup='web'/>
      <vlan trunk='yes'><tag id='42'/><tag id='43'/></vlan>
      <virtualport type='openvswitch'/>
      <bandwidth><outbound average='1024' peak='2048' burst='512'/></bandwidth>
      <ip address='10.0.0.2' family='ipv4' prefix='24'/>
      <script path='vif-openvswitch'/>
      <backenddomain name='netdom'/>
      <target dev='vif-rich'/>
      <model type='e1000'/>
    </interface>
    <interface type='hostdev' managed='yes'>
      <mac address='00:16:3e:2e:e7:fc'/>
      <source><address type='pci' domain='0x0000' bus='0x0a' slot='0x10' function='0x0'/></source>
    </interface>
    <serial type='udp'>
      <source mode='connect' host='127.0.0.1' service='9999'/>
      <source mode='bind' host='0.0.0.0' service='9998'/>
      <target port='0'/>
    </serial>
    <parallel type='tcp'><source mode='bind' host='h' service='7777'/><protocol type='telnet'/>
      <target port='0'/></parallel>
    <console type='pty' tty='/dev/pts/5'><target type='serial' port='0'/></console>
    <channel type='unix'><source mode='bind' path='/run/ga.sock'/>
      <target type='xen' name='org.qemu.guest_agent.0'/></channel>
    <input type='tablet' bus='usb'/>
    <graphics type='spice' port='5901' tlsPort='5902' autoport='no' listen='0.0.0.0' keymap='de'
              defaultMode='secure' passwd='s3cret'>
      <listen type='address' address='0.0.0.0'/>
      <mouse mode='client'/><clipboard copypaste='no'/>
    </graphics>
    <graphics type='sdl' display=':0.0' xauth='/root/.Xauthority' fullscreen='yes'/>
    <sound model='ac97'/>
    <video><model type='vga' vram='16384' heads='1' primary='yes'/></video>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source writeFiltering='no'><address domain='0x0001' bus='0x0c' slot='0x1b' function='0x2'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='usb' managed='yes'>
      <source><address bus='1' device='3'/></source>
    </hostdev>
  </devices>
  <q:commandline><q:arg value='-no-hpet'/><q:arg value="it's"/></q:commandline>
</domain>
"""


@pytest.fixture(scope="module")
def rich() -> Domain:
    return parse_domain_xml(RICH, file="rich.xml")


def test_identity_and_metadata(rich: Domain) -> None:
    assert rich.name == "rich" and rich.title == "Rich"
    assert rich.description == "every & each 'construct'"
    assert rich.uuid == "c7a5fdb2-cdaf-9455-926a-d65c16db1809"  # 32 hex, upper case -> canonical
    assert rich.power_state == "paused"  # other metadata ignored


def test_memory_is_held_in_kib(rich: Domain) -> None:
    assert (rich.max_memory_kib, rich.max_memory_slots) == (4 * 1024**2, 16)
    assert rich.memory_kib == 2 * 1024**2 and rich.current_memory_kib == 1024**2


def test_vcpu_os_and_cputune(rich: Domain) -> None:
    assert (rich.vcpu.count, rich.vcpu.current, rich.vcpu.cpuset) == (4, 2, "0-3,^2")
    assert rich.cputune_shares == 1500
    os = rich.os
    assert os.is_hvm and (os.arch, os.machine, os.firmware) == ("x86_64", "xenfv", "efi")
    assert (os.loader.path, os.loader.type, os.loader.readonly) == ("/usr/share/ovmf.bin", "pflash", "yes")
    assert os.cmdline == "  ro quiet "  # kernel command lines keep their spaces, like libvirt
    assert os.boot == ["cdrom", "hd"] and os.acpi_tables[0].path == "/sys/SLIC"


def test_features_cpu_clock(rich: Domain) -> None:
    f = rich.features
    assert (f.pae, f.acpi, f.apic, f.hap, f.viridian, f.privnet) == (True, True, True, False, True, True)
    assert f.hyperv.mode == "custom" and f.hyperv.features == {"relaxed": "on", "spinlocks": "on"}
    assert f.hyperv.spinlock_retries == 8191
    assert (f.xen_e820_host, f.xen_passthrough, f.xen_passthrough_mode) == (True, "on", "sync_pt")
    assert rich.cpu.model == "qemu64" and rich.cpu.features[0].policy == "forbid"
    assert rich.cpu.numa[0].memory_kib == 2 * 1024**2 and rich.cpu.numa[0].distances == {0: 10}
    assert (rich.clock.offset, rich.clock.timezone) == ("timezone", "Europe/Paris")
    assert rich.clock.timers[0].tickpolicy == "catchup"
    assert rich.on_crash == "coredump-restart"


def test_devices(rich: Domain) -> None:
    d = rich.devices
    net = d.disks[0]
    assert (net.source_protocol, net.source_name, [h.name for h in net.source_hosts]) == \
        ("rbd", "pool/img", ["mon1", "mon2"])
    assert net.shareable and net.transient and net.discard == "unmap"
    assert net.backend_domain == "stordom"
    assert d.disks[1].source is None and d.disks[1].is_cdrom and d.disks[1].readonly
    assert d.controllers[0].max_grant_frames == 64 and d.controllers[1].ports == 4
    nic = d.interfaces[0]
    assert nic.mac == "00:16:3e:0a:0b:0c"  # canonical lower case
    assert (nic.vlan_tags, nic.vlan_trunk, nic.bandwidth_out_peak) == ([42, 43], True, 2048)
    assert nic.ips[0].prefix == 24 and nic.backend_domain == "netdom" and nic.target_dev == "vif-rich"
    assert d.interfaces[1].source_address["bus"] == "0x0a" and d.interfaces[1].managed == "yes"
    udp = d.serials[0]
    assert (udp.source_mode, udp.source_service, udp.connect_service) == ("bind", "9998", "9999")
    assert d.consoles[0].tty == "/dev/pts/5" and d.channels[0].target_name == "org.qemu.guest_agent.0"
    spice, sdl = d.graphics
    assert (spice.tls_port, spice.mouse_mode, spice.clipboard_copypaste) == (5902, "client", False)
    assert (sdl.display, sdl.fullscreen) == (":0.0", True)
    assert str(d.hostdevs[0].address) == "0001:0c:1b.2" and d.hostdevs[0].write_filtering is False
    assert (d.usb_hostdevs[0].bus, d.usb_hostdevs[0].device) == (1, 3)
    assert d.memballoon == "xen"


def test_xen_commandline_any_prefix(rich: Domain) -> None:
    assert rich.commandline == ["-no-hpet", "it's"]


def test_round_trip_is_stable(rich: Domain) -> None:
    text = format_domain_xml(rich)
    assert parse_domain_xml(text) == rich
    assert format_domain_xml(parse_domain_xml(text)) == text


def test_formatter_uses_libvirt_order_and_quoting(rich: Domain) -> None:
    text = format_domain_xml(rich)
    assert text.startswith(f"<domain type='xen' xmlns:xen='{XEN_NS}'>\n  <name>rich</name>\n")
    assert text.index("<backenddomain name='stordom'/>") < text.index("<target dev='xvda'")
    order = ["<name>", "<uuid>", "<title>", "<description>", "<metadata>", "<maxMemory", "<memory",
             "<currentMemory", "<vcpu", "<cputune>", "<os", "<features>", "<cpu ", "<clock",
             "<on_poweroff>", "<devices>", "<emulator>", "<disk", "<controller", "<interface", "<serial",
             "<parallel", "<console", "<channel", "<input", "<graphics", "<sound", "<video>", "<hostdev",
             "<memballoon", "<xen:commandline>"]
    positions = [text.index(tag) for tag in order]
    assert positions == sorted(positions)
    assert "<memory unit='KiB'>2097152</memory>" in text
    assert "<vcpu placement='static' cpuset='0-3,^2' current='2'>4</vcpu>" in text
    assert "<xen:arg value='it&apos;s'/>" in text
    assert "<description>every &amp; each &apos;construct&apos;</description>" in text
    assert "<xr:state xmlns:xr='https://xenreconcile.dev/schemas/domain/1.0'>paused</xr:state>" in text


def test_bootloader_precedes_os_like_libvirt() -> None:
    dom = parse_domain_xml("<domain type='xen'><name>b</name><memory>1024</memory>"
                           "<os><type>linux</type></os><bootloader>/usr/bin/pygrub</bootloader>"
                           "<bootloader_args>-q</bootloader_args></domain>")
    text = format_domain_xml(dom)
    assert text.index("<bootloader>") < text.index("<bootloader_args>") < text.index("<os>")


def test_xen_namespace_declared_only_when_used() -> None:
    dom = parse_domain_xml("<domain type='xen'><name>p</name><memory>1024</memory>"
                           "<os><type>xenpvh</type></os></domain>")
    assert dom.os.is_pvh
    assert format_domain_xml(dom).startswith("<domain type='xen'>\n")


def test_seed_legacy_clock_sync_is_localtime() -> None:
    dom = parse_domain_xml((EXAMPLES / "hvm-bios.xml").read_bytes())
    assert dom.clock.offset == "localtime"
    assert "<clock offset='localtime'/>" in format_domain_xml(dom)


@pytest.mark.parametrize(("value", "unit", "kib"), [
    ("131072", None, 131072), ("128", "MiB", 131072), ("128", "M", 131072), ("1", "GiB", 1048576),
    ("1000000", "KB", 976563), ("1024", "b", 1), ("1", "bytes", 1), ("1", "TiB", 1024**3),
])
def test_memory_units(value: str, unit: str | None, kib: int) -> None:
    unit_attr = f" unit='{unit}'" if unit else ""
    dom = parse_domain_xml(f"<domain type='xen'><name>m</name><memory{unit_attr}>{value}</memory>"
                           "<os><type>linux</type></os></domain>")
    assert dom.memory_kib == kib


def test_seed_console_without_type_is_a_pty_with_its_tty_kept() -> None:
    dom = parse_domain_xml((EXAMPLES / "pv-bootloader.xml").read_bytes())
    console = dom.devices.consoles[0]
    assert (console.type, console.tty) == ("pty", "/dev/pts/5")
    assert "<console type='pty' tty='/dev/pts/5'/>" in format_domain_xml(dom)


def test_str_and_bytes_inputs_agree() -> None:
    text = (EXAMPLES / "qemu-passthrough.xml").read_text()
    assert parse_domain_xml(text) == parse_domain_xml(text.encode())
