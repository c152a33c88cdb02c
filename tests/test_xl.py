"""xl.cfg -> Domain -> xl.cfg: every key libvirt's xl converter handles, with our own cases."""

from __future__ import annotations

import pytest

from libxl.domain.formats.xl import format_xl, parse_xl
from libxl.domain.formats.xlcfg import parse_cfg
from libxl.domain.model import CpuFeature, Timer
from libxl.errors import ConfigError

PV = """name = "pv1"
uuid = "c7a5fdb2-cdaf-9455-926a-d65c16db1809"
maxmem = 512
memory = 256
maxvcpus = 4
vcpus = 2
cpus = "0-3"
localtime = 1
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "coredump-restart"
kernel = "/boot/vmlinuz"
ramdisk = "/boot/initrd"
cmdline = "root=/dev/xvda1 console=hvc0"
e820_host = 1
passthrough = "enabled"
vfb = [ "type=vnc,vncunused=0,vncdisplay=3,vnclisten=0.0.0.0,vncpasswd=pw,keymap=de" ]
vif = [ "mac=00:16:3e:00:00:01,bridge=xenbr0.7,script=vif-openvswitch,rate=1MB/s" ]
disk = [ "format=qcow2,vdev=xvda,access=rw,backendtype=qdisk,target=/img/pv1.qcow2" ]
channel = [ "connection=socket,path=/run/ga.sock,name=org.qemu.guest_agent.0", "connection=pty,name=c2" ]
usbctrl = [ "type=qusb,version=1,ports=4" ]
usbdev = [ "hostbus=1,hostaddr=3" ]
max_event_channels = 2047
max_grant_frames = 64
"""

HVM = """name = "hvm1"
maxmem = 1024
memory = 1024
vcpus = 1
builder = "hvm"
pae = 1
acpi = 0
apic = 1
hap = 0
viridian = 1
tsc_mode = "always_emulate"
hpet = 0
rtc_timeoffset = 3600
localtime = 1
device_model_override = "/usr/lib/xen/bin/qemu-system-i386"
device_model_args = [ "-debugcon", "file:/tmp/d.log" ]
bios = "ovmf"
kernel = "/k"
ramdisk = "/i"
root = "/dev/sda1"
extra = "quiet"
acpi_firmware = "/sys/firmware/acpi/tables/SLIC"
boot = "dcn"
nestedhvm = 0
cpuid = "host,tm=0,sse3=1,page1gb=x,aes=k"
vnuma = [ [ "pnode=0", "size=512", "vcpus=0", "vdistances=10,20" ],
          [ "pnode=1", "size=512", "vcpus=1", "vdistances=20,10" ] ]
sdl = 1
display = ":0"
vnc = 1
vncunused = 1
vnclisten = "127.0.0.1"
serial = [ "pty", "tcp:1.2.3.4:99", "telnet:0.0.0.0:23,server,nowait", "udp:1.1.1.1:5@:6",
           "unix:/s,server", "/dev/ttyS0" ]
parallel = "file:/tmp/par"
soundhw = "sb16,es1370"
usb = 1
usbdevice = [ "tablet", "mouse" ]
pci = [ "0000:01:00.0", "02:1f.7,permissive=1" ]
spice = 1
spicehost = "10.0.0.1"
spiceport = 5901
spicetls_port = 5902
spicedisable_ticketing = 0
spicepasswd = "secret"
spiceagent_mouse = 1
spicevdagent = 1
spice_clipboard_sharing = 1
disk = [ "/dev/vg/hvm1,raw,hda,w,backendtype=phy", ",,hdc,devtype=cdrom" ]
vif = [ "mac=00:16:3e:00:00:02,bridge=br0,ip=10.0.0.2,model=e1000", "type=vif" ]
"""


def settings(text: str) -> dict:
    return {k: s.value for k, s in parse_cfg(text).items()}


def test_pv_keys() -> None:
    dom = parse_xl(PV)
    assert (dom.name, dom.uuid, dom.memory_kib, dom.current_memory_kib) == \
        ("pv1", "c7a5fdb2-cdaf-9455-926a-d65c16db1809", 512 * 1024, 256 * 1024)
    assert (dom.vcpu.count, dom.vcpu.current, dom.vcpu.cpuset) == (4, 2, "0-3")
    assert (dom.os.type, dom.os.kernel, dom.os.initrd, dom.os.cmdline) == \
        ("linux", "/boot/vmlinuz", "/boot/initrd", "root=/dev/xvda1 console=hvc0")
    assert (dom.clock.offset, dom.on_crash) == ("localtime", "coredump-restart")
    assert (dom.features.xen_e820_host, dom.features.xen_passthrough) == (True, "on")
    gfx = dom.devices.graphics[0]
    assert (gfx.type, gfx.port, gfx.autoport, gfx.listen, gfx.passwd, gfx.keymap) == \
        ("vnc", 5903, False, "0.0.0.0", "pw", "de")
    nic = dom.devices.interfaces[0]
    assert (nic.source_bridge, nic.vlan_tags, nic.bandwidth_out_average) == ("xenbr0", [7], 1024)
    assert dom.devices.disks[0].driver_type == "qcow2"
    ga, pty = dom.devices.channels
    assert (ga.type, ga.source_path, ga.target_name, pty.type) == ("unix", "/run/ga.sock",
                                                                  "org.qemu.guest_agent.0", "pty")
    xenbus, usb = dom.devices.controllers
    assert (xenbus.type, xenbus.max_event_channels, xenbus.max_grant_frames) == ("xenbus", 2047, 64)
    assert (usb.type, usb.model, usb.ports) == ("usb", "qusb1", 4)
    assert (dom.devices.usb_hostdevs[0].bus, dom.devices.usb_hostdevs[0].device) == (1, 3)


def test_hvm_keys() -> None:
    dom = parse_xl(HVM)
    f = dom.features
    assert (f.pae, f.acpi, f.apic, f.hap, f.viridian) == (True, False, True, False, True)
    assert dom.clock.timers == [Timer("tsc", "yes", "emulate"), Timer("hpet", "no")]
    assert (dom.clock.offset, dom.clock.adjustment, dom.clock.basis) == ("variable", "3600", "localtime")
    assert dom.devices.emulator == "/usr/lib/xen/bin/qemu-system-i386"
    assert dom.commandline == ["-debugcon", "file:/tmp/d.log"]
    assert (dom.os.loader.type, dom.os.loader.path) == ("pflash", "/usr/lib/xen/boot/ovmf.bin")
    assert dom.os.cmdline == "root=/dev/sda1 quiet"
    assert dom.os.acpi_tables[0].path == "/sys/firmware/acpi/tables/SLIC"
    assert dom.os.boot == ["cdrom", "hd", "network"]
    assert dom.cpu.mode == "host-passthrough"
    assert dom.cpu.features == [CpuFeature("tm", "disable"), CpuFeature("pni", "force"),
                                CpuFeature("pdpe1gb", "optional"), CpuFeature("aes", "require"),
                                CpuFeature("vmx", "disable")]
    assert [(c.id, c.cpus, c.memory_kib, c.distances) for c in dom.cpu.numa] == \
        [(0, "0", 524288, {0: 10, 1: 20}), (1, "1", 524288, {0: 20, 1: 10})]
    assert [g.type for g in dom.devices.graphics] == ["vnc", "sdl", "spice"]
    spice = dom.devices.graphics[2]
    assert (spice.port, spice.tls_port, spice.listen, spice.passwd, spice.mouse_mode,
            spice.clipboard_copypaste) == (5901, 5902, "10.0.0.1", "secret", "client", True)
    serials = dom.devices.serials
    assert [(s.type, s.target_port) for s in serials] == \
        [("pty", 0), ("tcp", 1), ("tcp", 2), ("udp", 3), ("unix", 4), ("dev", 5)]
    assert (serials[1].source_mode, serials[1].protocol, serials[2].protocol) == ("connect", "raw", "telnet")
    udp = serials[3]
    assert (udp.connect_host, udp.connect_service, udp.source_service) == ("1.1.1.1", "5", "6")
    assert dom.devices.parallels[0].source_path == "/tmp/par"
    assert [s.model for s in dom.devices.sounds] == ["sb16", "es1370"]
    assert [(i.type, i.bus) for i in dom.devices.inputs] == [("tablet", "usb"), ("mouse", "usb")]
    assert [str(h.address) for h in dom.devices.hostdevs] == ["0000:01:00.0", "0000:02:1f.7"]
    disk, cdrom = dom.devices.disks
    assert (disk.type, disk.driver_name, cdrom.device, cdrom.source) == ("block", "phy", "cdrom", None)
    assert dom.devices.interfaces[1].model == "netfront"


def test_type_key_and_builder() -> None:
    assert parse_xl('name="a"\nmemory=1\ntype="pvh"\n').os.type == "xenpvh"
    assert parse_xl('name="a"\nmemory=1\ntype="pv"\n').os.type == "linux"
    assert parse_xl('name="a"\nmemory=1\nbuilder="generic"\n').os.type == "linux"


def test_legacy_cpuid_list_is_kept() -> None:
    text = 'name="a"\nmemory=1\nbuilder="hvm"\ncpuid = [ "1:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1" ]\n'
    dom = parse_xl(text)
    assert dom.cpu.cpuid_legacy == ["1:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1"]
    assert settings(format_xl(dom))["cpuid"] == ["1:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1"]


@pytest.mark.parametrize("text", [PV, HVM])
def test_round_trip_keeps_every_key(text: str) -> None:
    """xl.cfg -> Domain -> xl.cfg -> Domain is a fixed point, and keys keep their meaning."""
    dom = parse_xl(text)
    again = parse_xl(format_xl(dom))
    assert again == dom
    assert format_xl(again) == format_xl(dom)


def test_written_values_keep_their_meaning() -> None:
    out = settings(format_xl(parse_xl(HVM)))
    assert out["cpuid"] == "host,tm=0,sse3=1,page1gb=x,aes=k" and out["nestedhvm"] == 0
    assert out["boot"] == "dcn" and out["bios"] == "ovmf" and out["cmdline"] == "root=/dev/sda1 quiet"
    assert out["vnuma"][1] == ["pnode=1", "size=512", "vcpus=1", "vdistances=20,10"]
    assert out["serial"][2] == "telnet:0.0.0.0:23,server,nowait"
    assert out["pci"] == ["0000:01:00.0", "0000:02:1f.7,permissive=1"]  # issue 13: permissive kept
    pv = settings(format_xl(parse_xl(PV)))
    assert pv["vfb"] == ["type=vnc,vncunused=0,vncdisplay=3,vnclisten=0.0.0.0,vncpasswd=pw,keymap=de"]
    assert pv["passthrough"] == "enabled" and pv["e820_host"] == 1 and pv["maxvcpus"] == 4


@pytest.mark.parametrize(("text", "message"), [
    ('memory = 1\n', "bad.cfg: name: missing 'name'"),
    ('name = "a"\n', "bad.cfg: memory: missing 'memory'"),
    ('name = "a"\nmemory = "lots"\n', "bad.cfg:2: memory: expected a whole number, got 'lots'"),
    ('name = "a"\nmemory = 2\nmaxmem = 1\n', "bad.cfg:3: maxmem: maxmem (1 MiB) is below memory (2 MiB)"),
    ('name = "a"\nmemory = 1\nuuid = "xyz"\n', "bad.cfg:3: uuid: malformed uuid 'xyz'"),
    ('name = "a"\nmemory = 1\ntype = "vm"\n',
     "bad.cfg:3: type: unknown guest type 'vm' (expected pv, pvh or hvm)"),
    ('name = "a"\nmemory = 1\non_crash = "explode"\n', "bad.cfg:3: on_crash: unknown action 'explode'"),
    ('name = "a"\nmemory = 1\nvcpus = 4\nmaxvcpus = 2\n', "bad.cfg:3: vcpus: vcpus (4) exceeds maxvcpus (2)"),
    ('name = "a"\nmemory = 1\n\ndisk = [ "/x,raw" ]\n', "bad.cfg:4: disk: '/x,raw': no vdev"),
    ('name = "a"\nmemory = 1\nvif = [ "rate=fast" ]\n', "bad.cfg:3: vif: 'rate=fast': malformed rate 'fast'"),
    ('name = "a"\nmemory = 1\nbuilder = "hvm"\nboot = "z"\n',
     "bad.cfg:4: boot: unknown boot device 'z' (expected a, c, d or n)"),
    ('name = "a"\nmemory = 1\nbuilder = "hvm"\nserial = "bogus"\n',
     "bad.cfg:4: serial: 'bogus': unknown character device 'bogus'"),
    ('name = "a"\nmemory = 1\npci = [ "1:2:3" ]\n',
     "bad.cfg:3: pci: '1:2:3': malformed PCI address (expected [DDDD:]BB:SS.F)"),
    ('name = "a"\nmemory = 1\nbuilder = "hvm"\ncpuid = "host,tm=2"\n',
     "bad.cfg:4: cpuid: 'host,tm=2': malformed cpuid item 'tm=2' (expected NAME=0|1|x|k|s)"),
    ('name = "a"\nmemory = 1\nvnuma = [ [ "pnode=0" ] ]\n',
     "bad.cfg:3: vnuma: node 0: missing or malformed 'vcpus'"),
    ('name = "a"\nmemory = 1\nchannel = [ "connection=tcp" ]\n',
     "bad.cfg:3: channel: 'connection=tcp': unknown channel connection 'tcp' (expected socket or pty)"),
    ('name = "a"\nmemory = 1\npassthrough = "maybe"\n',
     "bad.cfg:3: passthrough: unknown passthrough 'maybe'"),
])
def test_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_xl(text, file="bad.cfg")
    assert str(info.value) == message
