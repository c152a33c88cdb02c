"""Issue 13 item 6, the domain-XML / converter side: each class of setting that used to be lost is
carried both ways where the formats allow, built the way libvirt's libxl driver builds it, and
reported (never silently dropped) where one side has no place for it."""

from __future__ import annotations

import pytest

from libxl.domain.formats.defaults import with_defaults
from libxl.domain.formats.domxml import format_domain_xml, parse_domain_xml
from libxl.domain.formats.xl import format_xl, parse_xl, read_xl
from libxl.domain.formats.xlcfg import parse_cfg
from libxl.domain.formats.xm import format_xm, read_xm
from libxl.errors import ConfigError
from libxl.frontends.libvirt import build_config

HVM = 'name = "h"\nmemory = 512\nvcpus = 4\nbuilder = "hvm"\nvnc = 1\n'


def settings(text: str) -> dict:
    return {key: s.value for key, s in parse_cfg(text).items()}


def xml_of(cfg: str) -> str:
    return format_domain_xml(with_defaults(parse_xl(cfg)))


def test_per_vcpu_cpus_list_pins_only_the_listed_vcpus() -> None:
    dom = parse_xl(HVM + 'cpus = [ "2", "3" ]\n')
    assert dom.vcpu.cpuset is None and [(p.vcpu, p.cpuset) for p in dom.vcpupin] == [(0, "2"), (1, "3")]
    xml = xml_of(HVM + 'cpus = [ "2", "3" ]\ncpu_weight = 512\n')
    assert "<cputune>\n    <shares>512</shares>\n    <vcpupin vcpu='0' cpuset='2'/>" in xml
    b_info = build_config(parse_domain_xml(xml))["b_info"]
    assert b_info["vcpu_hard_affinity"] == [[2], [3]] and "cpumap" not in b_info
    assert b_info["sched_params"] == {"weight": 512}
    back = settings(format_xl(parse_domain_xml(xml)))
    assert back["cpus"] == ["2", "3"] and back["cpu_weight"] == 512
    # one item pins vCPU 0 only; the string form pins every vCPU
    assert [p.vcpu for p in parse_xl(HVM + "cpus = [ '4-47' ]\n").vcpupin] == [0]
    assert parse_xl(HVM + 'cpus = "4-47"\n').vcpu.cpuset == "4-47"


def test_vcpupin_gaps_and_node_forms_are_refused_with_a_reason() -> None:
    xml = xml_of(HVM).replace("<os>", "<cputune><vcpupin vcpu='1' cpuset='3'/></cputune>\n  <os>")
    with pytest.raises(ConfigError, match=r"vCPUs 0\.\.N without gaps"):
        build_config(parse_domain_xml(xml))
    with pytest.raises(ConfigError, match=r"^g\.cfg:6: cpus: item 0 'node:1'"):
        parse_xl(HVM + 'cpus = [ "node:1" ]\n', "g.cfg")


@pytest.mark.parametrize("keys, model, vram, kind", [
    ('stdvga = 1\n', "vga", 16384, "std"),
    ('vga = "stdvga"\nvideoram = 32\n', "vga", 32768, "std"),
    ('vga = "qxl"\n', "qxl", 65536, "qxl"),
    ('stdvga = 0\nvideoram = 16\n', "cirrus", 16384, "cirrus"),
])
def test_vga_keys_are_the_video_card_both_ways(keys: str, model: str, vram: int, kind: str) -> None:
    dom = with_defaults(parse_xl(HVM + keys))
    assert (dom.devices.videos[0].model, dom.devices.videos[0].vram) == (model, vram)
    assert build_config(dom)["b_info"]["type.hvm"]["vga"] == {"kind": kind}
    again = with_defaults(parse_xl(format_xl(dom)))
    assert (again.devices.videos[0].model, again.devices.videos[0].vram) == (model, vram)


def test_xm_writes_stdvga_for_a_vga_card() -> None:
    dom = parse_domain_xml(xml_of(HVM + "stdvga = 1\n"))
    assert settings(format_xm(dom))["stdvga"] == 1
    assert read_xm(format_xm(dom))[0].devices.videos[0].model == "vga"


def test_every_soundhw_model_of_xen_417_both_ways() -> None:
    dom, unused = read_xl(HVM + 'soundhw = "hda,ac97,sb16,es1370,pcspk,gus"\n', "g.cfg")
    assert [s.model for s in dom.devices.sounds] == ["ich6", "ac97", "sb16", "es1370", "pcspk"]
    assert [(u.key, u.detail) for u in unused] == [("soundhw", "gus")]  # no libvirt model: reported
    assert settings(format_xl(dom))["soundhw"] == "hda,ac97,sb16,es1370,pcspk"
    assert build_config(dom)["b_info"]["type.hvm"]["soundhw"] == "hda,ac97,sb16,es1370,pcspk"
    with pytest.raises(ConfigError, match="unknown sound card 'ich6'"):
        parse_xl(HVM + 'soundhw = "ich6"\n')
    ich9 = xml_of(HVM).replace("</devices>", "<sound model='ich9'/></devices>")
    with pytest.raises(ConfigError, match="sound model 'ich9' is not supported by libxl"):
        build_config(parse_domain_xml(ich9))


@pytest.mark.parametrize("value, mode", [(0, None), (1, "emulate"), (2, "native"), (3, "paravirt")])
def test_legacy_integer_tsc_mode(value: int, mode: str | None) -> None:
    timers = parse_xl(HVM + f"tsc_mode = {value}\n").clock.timers
    assert [t.mode for t in timers if t.name == "tsc"] == ([mode] if mode else [])


def test_usbdevice_host_bus_address_is_a_usb_hostdev() -> None:
    dom, unused = read_xl(HVM + 'usb = 1\nusbdevice = [ "host:3.7", "tablet", "host:046d:c52b" ]\n', "g")
    assert [(u.bus, u.device) for u in dom.devices.usb_hostdevs] == [(3, 7)]
    assert [i.type for i in dom.devices.inputs] == ["tablet"]
    assert [(u.key, u.detail) for u in unused] == [("usbdevice", "host:046d:c52b (by vendor:product)")]
    assert "<address bus='3' device='7'/>" in format_domain_xml(dom)


def test_ovmf_loader_path_is_bios_path_override() -> None:
    dom = parse_xl(HVM + 'bios = "ovmf"\nbios_path_override = "/opt/OVMF.fd"\n')
    assert (dom.os.loader.type, dom.os.loader.path) == ("pflash", "/opt/OVMF.fd")
    assert build_config(dom)["b_info"]["type.hvm"]["system_firmware"] == "/opt/OVMF.fd"
    out = settings(format_xl(dom))
    assert (out["bios"], out["bios_path_override"]) == ("ovmf", "/opt/OVMF.fd")
    assert "bios_path_override" not in settings(format_xl(parse_xl(HVM + 'bios = "ovmf"\n')))


def test_rbd_network_disk_both_ways_and_to_libxl() -> None:
    target = r"rbd:pool/img:auth_supported=none:mon_host=m1\:6789\;m2"
    dom = parse_xl(HVM + f'disk = [ "format=raw,vdev=xvda,access=rw,backendtype=qdisk,target={target}" ]\n')
    disk = dom.devices.disks[0]
    assert (disk.type, disk.source_protocol, disk.source_name) == ("network", "rbd", "pool/img")
    assert [(h.name, h.port) for h in disk.source_hosts] == [("m1", "6789"), ("m2", None)]
    assert settings(format_xl(dom))["disk"][0].endswith(f"target={target}")
    assert build_config(dom)["disks"][0]["pdev_path"] == target
    with pytest.raises(ConfigError, match="rbd option 'id=admin' is not supported"):
        parse_xl(HVM + 'disk = [ "vdev=xvda,backendtype=qdisk,target=rbd:p/i:id=admin" ]\n')


def test_pci_permissive_kept_other_options_reported() -> None:
    dom, unused = read_xl(HVM + 'pci = [ "01:00.0,permissive=1,seize=1", "02:00.0@3" ]\n', "g")
    assert [h.write_filtering for h in dom.devices.hostdevs] == [False, None]
    assert [u.detail for u in unused] == ["'01:00.0,permissive=1,seize=1': seize=1", "'02:00.0@3': @3"]
    assert build_config(dom)["pcidevs"][0]["permissive"] is True


@pytest.mark.parametrize("old, new, message", [
    ("<vcpu", "<maxMemory slots='2' unit='KiB'>2097152</maxMemory>\n  <vcpu", "memory hotplug"),
    ("<clock", "<cpu mode='custom'><model>Haswell</model></cpu>\n  <clock", "libxl has no CPU models"),
    ("basis='utc'/>", "basis='utc'><timer name='rtc' tickpolicy='catchup'/></clock>",
     "the tickpolicy of the rtc timer"),
])
def test_settings_libxl_cannot_honour_are_refused_by_name(old: str, new: str, message: str) -> None:
    xml = xml_of(HVM)
    assert old in xml
    with pytest.raises(ConfigError, match=message):
        build_config(parse_domain_xml(xml.replace(old, new, 1)))


def test_unbuildable_device_settings_are_refused() -> None:
    base = xml_of(HVM + 'disk = [ "/img,raw,hda,rw" ]\nserial = "pty"\n')
    for old, new, message in (
            ("<driver name='qemu' type='raw'/>", "<driver name='qemu' type='raw' cache='none'/>",
             "cache mode 'none'"),
            ("</devices>", "<parallel type='pty'/></devices>", "parallel ports"),
            ("heads='1'", "heads='2'", "one head")):
        assert old in base
        with pytest.raises(ConfigError, match=message):
            build_config(parse_domain_xml(base.replace(old, new, 1)))


def test_nbd_disk_as_xl_and_libvirt_each_read_it() -> None:
    """xl 4.17 reads ``target=nbd:...`` as the deprecated prefix of the block-nbd hotplug script
    (as real ``xl -N create`` shows, tests/test_xl_differential.py), so that is what it converts to;
    libvirt's nbd network disk goes to libxl as qemu's ``nbd:`` string, and has no xl form."""
    spec = "vdev=xvda,backendtype=qdisk,target=nbd:10.0.0.1:10809:exportname=vol"
    dom = parse_xl(HVM + f'disk = [ "{spec}" ]\n')
    (disk,) = dom.devices.disks
    assert (disk.type, disk.script, disk.source) == ("file", "block-nbd", "10.0.0.1:10809:exportname=vol")
    xml = ("<domain type='xen'><name>h</name><memory>524288</memory><os><type>hvm</type></os><devices>"
           "<disk type='network' device='disk'><driver name='qemu' type='raw'/>"
           "<source protocol='nbd' name='vol'><host name='10.0.0.1' port='10809'/></source>"
           "<target dev='xvda' bus='xen'/></disk></devices></domain>")
    network = parse_domain_xml(xml)
    assert build_config(network)["disks"][0]["pdev_path"] == "nbd:10.0.0.1:10809:exportname=vol"
    with pytest.raises(ConfigError, match="nbd network disk has no xl form"):
        format_xl(network)


def test_disk_script_is_carried_in_domain_xml() -> None:
    dom = parse_xl(HVM + 'disk = [ "vdev=xvda,script=block-drbd,target=r0" ]\n')
    xml = format_domain_xml(with_defaults(dom))
    assert "<script path='block-drbd'/>" in xml
    assert build_config(parse_domain_xml(xml))["disks"][0]["script"] == "block-drbd"
    assert "script=block-drbd" in settings(format_xl(parse_domain_xml(xml)))["disk"][0]


def test_seclabel_both_ways_and_to_libxl() -> None:
    dom = parse_xl(HVM + 'seclabel = "system_u:system_r:domU_t"\n')
    xml = format_domain_xml(with_defaults(dom))
    assert ("<seclabel type='static' model='xen' relabel='no'>\n    <label>system_u:system_r:domU_t</label>"
            in xml)
    again = parse_domain_xml(xml)
    assert build_config(again)["c_info"]["ssid_label"] == "system_u:system_r:domU_t"
    assert settings(format_xl(again))["seclabel"] == "system_u:system_r:domU_t"
    none = xml.replace(xml[xml.index("<seclabel"):xml.index("</seclabel>") + 11], "<seclabel type='none'/>")
    assert "ssid_label" not in build_config(parse_domain_xml(none))["c_info"]
    with pytest.raises(ConfigError, match="type must be one of static, none"):
        parse_domain_xml(none.replace("type='none'", "type='dynamic'"))


def test_device_model_version_qemu_xen_is_honoured_traditional_refused() -> None:
    _, unused = read_xl(HVM + 'device_model_version = "qemu-xen"\n')
    assert unused == []
    with pytest.raises(ConfigError, match=r"^g\.cfg:6: device_model_version: 'qemu-xen-traditional' is not "
                                          r"supported: Xen 4\.17 hosts run qemu-xen only"):
        parse_xl(HVM + 'device_model_version = "qemu-xen-traditional"\n', "g.cfg")


@pytest.mark.reallibxl
def test_new_fields_survive_real_libxl() -> None:
    """vcpu_hard_affinity, sched weight, soundhw, std vga, nbd/rbd targets, ssid_label and PCI
    permissive as libxl's own JSON parser reads them back."""
    import realxl

    missing = realxl.libxl_missing()
    if missing:
        pytest.skip(missing)
    cfg = HVM + ('cpus = [ "2", "3" ]\ncpu_weight = 512\nsoundhw = "hda,ac97"\nstdvga = 1\nvideoram = 32\n'
                 'seclabel = "system_u:system_r:domU_t"\npci = [ "01:00.0,permissive=1" ]\n'
                 'disk = [ "vdev=xvda,backendtype=qdisk,target=nbd:10.0.0.1:10809:exportname=vol", '
                 r'"vdev=xvdb,backendtype=qdisk,target=rbd:p/i:auth_supported=none:mon_host=m1\:6789" ]' "\n")
    built = build_config(parse_domain_xml(format_domain_xml(with_defaults(parse_xl(cfg)))))
    [answer] = realxl.roundtrip([built])
    assert answer.get("error") is None and realxl.lost_fields(built, answer["json"]) == []


def test_hvm_vnc_keys_are_read_even_when_a_vfb_list_is_present() -> None:
    dom, unused = read_xl(HVM + 'vncpasswd = "s3cret"\nkeymap = "de"\nvfb = [ "type=vnc" ]\n', "g")
    [vnc] = dom.devices.graphics
    assert (vnc.passwd, vnc.keymap) == ("s3cret", "de")
    assert [u.key for u in unused] == ["vfb"]


def test_xend_dump_with_vnc_sdl_and_spice_keeps_every_display() -> None:
    from libxl.domain.formats.sxpr import parse_sxpr

    dump = ("(domain (name 'h')(memory 420)(image (hvm (kernel '/usr/lib/xen/boot/hvmloader')"
            "(vnc 1)(vncunused 1)(sdl 1)(display ':0')(spice 1)(spiceport 6000)(spicehost 0.0.0.0)"
            "(spicedisable_ticketing 1)))(device (vfb (type spice)(spiceport 6000))))")
    gfx = parse_sxpr(dump).devices.graphics
    assert [g.type for g in gfx] == ["vnc", "sdl", "spice"]
    assert (gfx[2].port, gfx[2].listen, gfx[2].passwd) == (6000, "0.0.0.0", None)
    two = ("(domain (name 'p')(memory 420)(image (linux (kernel '/k')))"
           "(device (vfb (type vnc)(vncunused 1)))(device (vfb (type sdl)(display ':0'))))")
    assert [g.type for g in parse_sxpr(two).devices.graphics] == ["vnc", "sdl"]


def test_builder_refusals_are_located_at_their_element(tmp_path) -> None:
    from pathlib import Path

    from libxl.domain.formats.load import located

    xml = xml_of(HVM + 'disk = [ "/img,raw,hda,rw" ]\n').replace(
        "<driver name='qemu' type='raw'/>", "<driver name='qemu' type='raw' cache='none'/>")
    path = Path(tmp_path) / "g.xml"
    with pytest.raises(ConfigError) as err:
        build_config(parse_domain_xml(xml))
    line = next(n for n, text in enumerate(xml.splitlines(), 1) if "<target dev='hda'" in text)
    assert str(located(err.value, path, xml.encode())) == \
        f"{path}:{line}: <disk><target dev='hda'>: disk cache mode 'none' is not supported by libxl"


def test_unknown_usb_controller_and_spice_modes_are_refused() -> None:
    base = xml_of(HVM)
    usb = base.replace("</devices>", "<controller type='usb' model='ich9-uhci1'/></devices>")
    with pytest.raises(ConfigError, match="USB controller model 'ich9-uhci1' is unknown to libxl"):
        build_config(parse_domain_xml(usb))
    spice = base.replace("</devices>", "<graphics type='spice' defaultMode='secure'/></devices>")
    with pytest.raises(ConfigError, match="no per-channel security modes"):
        build_config(parse_domain_xml(spice))


def test_hvmloader_as_hvm_kernel_is_ignored_like_xl_and_reported() -> None:
    dom, unused = read_xl(HVM + 'kernel = "/usr/lib/xen/boot/hvmloader"\n', "g.cfg")
    assert dom.os.kernel is None
    assert [(u.key, u.line, u.detail) for u in unused] == [
        ("kernel", 6, "hvmloader is HVM firmware, which xl ignores here")]
