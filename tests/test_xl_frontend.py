"""The xl front end (libxl/frontends/xl.py): each class of setting the domain-model path lost, read
the way ``xl create`` 4.17 reads it. The expected values are what real ``xl -N create`` prints for
the same lines (the last test checks every snippet here against it when xl is installed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from libxl.domain.formats.vifspec import parse_vif, parse_vif_rate
from libxl.errors import ConfigError
from libxl.frontends.hostsettings import HostSettings
from libxl.frontends.libvirt import build_config
from libxl.frontends.xl import SOUNDHW_MODELS, read_xl_config
from reconcilers.desired import DesiredDomain, parse_desired_file
from reconcilers.securitypolicy import DEFAULT_SECURITY

PV = 'name = "g"\nmemory = 128\nkernel = "/boot/vmlinuz"\n'
HVM = 'name = "g"\nmemory = 128\ntype = "hvm"\n'
#: The cpu count of the host the expectations were taken on (the tests' libxl shim).
CPUS = 16


def build(text: str, host: HostSettings | None = None) -> dict[str, Any]:
    return read_xl_config(text, "g.cfg", host, max_cpus=CPUS).config


def warnings(text: str) -> list[str]:
    return [str(w) for w in read_xl_config(text, "g.cfg", max_cpus=CPUS).warnings]


def refusal(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        read_xl_config(text, "g.cfg", max_cpus=CPUS)
    return str(info.value)


# ---- one grammar per value -------------------------------------------------------------------------

def test_rate_interval_is_the_one_written_on_both_paths() -> None:
    """rate=10MB/s@20ms: 200000 bytes every 20 ms, whether the file is read by the xl front end or
    converted to the domain model and built the libvirt way (it used to become a 50 ms interval)."""
    rate = parse_vif_rate("10MB/s@20ms")
    assert (rate.bytes_per_interval, rate.interval_usecs) == (200_000, 20_000)
    nic = build(PV + 'vif = [ "rate=10MB/s@20ms" ]\n')["nics"][0]
    assert (nic["rate_bytes_per_interval"], nic["rate_interval_usecs"]) == (200_000, 20_000)
    from libxl.domain.formats.xl import parse_xl
    built = build_config(parse_xl(PV + 'vif = [ "rate=10MB/s@20ms" ]\n'))["nics"][0]
    assert (built["rate_bytes_per_interval"], built["rate_interval_usecs"]) == (200_000, 20_000)
    assert parse_vif("rate=10MB/s@20ms").bandwidth_out_average == 10240  # libvirt's KB/s, unchanged


@pytest.mark.parametrize(("text", "per_interval", "usecs"), [
    ("10Mb/s", 62_500, 50_000), ("100KB/s@1s", 100_000, 1_000_000), ("10MB/s@20", 200_000_000, 20_000_000),
    ("5GB/s@10s", 50_000_000_000, 10_000_000)])
def test_rate_grammar_as_xl(text: str, per_interval: int, usecs: int) -> None:
    rate = parse_vif_rate(text)
    assert (rate.bytes_per_interval, rate.interval_usecs) == (per_interval, usecs)


@pytest.mark.parametrize("text", ["10kB/s", "1000", " 10MB/s", "10MB/s@20ms ", "0MB/s", "10MB/s@0ms"])
def test_rates_xl_refuses(text: str) -> None:
    assert refusal(PV + f'vif = [ "rate={text}" ]\n').startswith("g.cfg:4: vif: ")


# ---- cpus ------------------------------------------------------------------------------------------

def test_cpus_list_pins_only_the_listed_vcpus() -> None:
    b_info = build(PV + 'vcpus = 3\ncpus = [ "2", "3-5" ]\n')["b_info"]
    assert b_info["vcpu_hard_affinity"] == [[2], [3, 4, 5]]
    assert b_info["numa_placement"] == "False"
    b_info = build(PV + "vcpus = 2\ncpus = [ '4-47' ]\n")["b_info"]
    assert b_info["vcpu_hard_affinity"] == [list(range(4, CPUS))]  # vcpu 1 left free, cut to the host


def test_cpus_string_pins_every_vcpu_alike() -> None:
    b_info = build(PV + 'vcpus = 2\ncpus = "2-3,^3"\n')["b_info"]
    assert b_info["vcpu_hard_affinity"] == [[2], [2]]
    assert "numa_placement" not in b_info
    assert build(PV + 'vcpus = 2\ncpus = "all"\n')["b_info"]["vcpu_hard_affinity"] == [list(range(CPUS))] * 2


def test_cpus_soft_weight_and_cap() -> None:
    b_info = build(PV + 'vcpus = 2\nmaxvcpus = 4\ncpus_soft = "1"\ncpu_weight = 512\ncap = 50\n')["b_info"]
    assert b_info["vcpu_soft_affinity"] == [[1]] * 4
    assert b_info["numa_placement"] == "False"
    assert b_info["sched_params"] == {"weight": 512, "cap": 50}
    assert (b_info["max_vcpus"], b_info["avail_vcpus"]) == (4, [0, 1])


def test_numa_node_cpu_lists_are_refused_with_the_reason() -> None:
    assert "NUMA node lists need the host's topology" in refusal(PV + 'cpus = "nodes:0"\n')


# ---- display -----------------------------------------------------------------------------------------

def test_hvm_defaults_are_libxls_not_libvirts() -> None:
    """No cirrus, no vnc=0, no shadow memory, no removable disks: what xl leaves to libxl."""
    config = build(HVM + 'disk = [ "/img/a,raw,hda,rw" ]\n')
    hvm = config["b_info"]["type.hvm"]
    assert hvm["vga"] == {} and hvm["vnc"] == {}
    assert "shadow_memkb" not in config["b_info"]
    assert config["disks"] == [{"pdev_path": "/img/a", "vdev": "hda", "format": "raw", "readwrite": 1}]


def test_hvm_vnc_keys_apply_with_vfb_present() -> None:
    config = build(HVM + 'vfb = [ "vnc=1,vncpasswd=s" ]\nkeymap = "de"\nvnclisten = "1.2.3.4"\n'
                         'vncpasswd = "top"\n')
    hvm = config["b_info"]["type.hvm"]
    assert hvm["vnc"] == {"listen": "1.2.3.4", "passwd": "top"}
    assert hvm["keymap"] == "de"
    assert config["vfbs"] == [{"devid": 0, "vnc": {"enable": "True", "passwd": "s"}, "sdl": {}}]


def test_pv_vnc_becomes_a_vfb_with_its_password_and_keymap() -> None:
    config = build(PV + 'vnc = 1\nvncpasswd = "x"\nkeymap = "fr"\n')
    assert config["vfbs"] == [{"devid": 0, "vnc": {"enable": "True", "passwd": "x"}, "sdl": {},
                               "keymap": "fr"}]
    assert config["vkbs"] == [{"devid": 0}]


@pytest.mark.parametrize(("line", "vga"), [
    ("stdvga = 0", {"kind": "cirrus"}), ("stdvga = 1", {"kind": "std"}), ('vga = "qxl"', {"kind": "qxl"}),
    ('vga = "none"', {"kind": "none"})])
def test_vga_and_stdvga(line: str, vga: dict) -> None:
    config = build(HVM + line + "\nvideoram = 16\n")
    assert config["b_info"]["type.hvm"]["vga"] == vga
    assert config["b_info"]["video_memkb"] == 16384


@pytest.mark.parametrize("model", SOUNDHW_MODELS)
def test_every_soundhw_model_libxl_417_knows(model: str) -> None:
    assert build(HVM + f'soundhw = "{model}"\n')["b_info"]["type.hvm"]["soundhw"] == model


@pytest.mark.parametrize("model", ["ich6", "all", "sb16,es1370"])
def test_other_soundhw_refused_as_libxl_would_at_create(model: str) -> None:
    expected = f"g.cfg:4: soundhw: {model!r} is not a sound card"
    assert refusal(HVM + f'soundhw = "{model}"\n').startswith(expected)


# ---- disks and USB ----------------------------------------------------------------------------------

def test_nbd_and_script_disks() -> None:
    text = PV + 'disk = [ "nbd:host:1234,xvda,w", "script=block-foo,vdev=xvdb,target=iqn:x,y" ]\n'
    disks = build(text)["disks"]
    assert disks == [
        {"pdev_path": "host:1234", "vdev": "xvda", "format": "raw", "script": "block-nbd", "readwrite": 1},
        {"pdev_path": "iqn:x,y", "vdev": "xvdb", "format": "raw", "script": "block-foo", "readwrite": 1}]


def test_empty_cdrom_in_xm_form() -> None:
    assert build(HVM + 'disk = [ ",hdc:cdrom,r" ]\n')["disks"] == [
        {"pdev_path": "", "vdev": "hdc", "format": "empty", "removable": 1, "is_cdrom": 1}]


def test_usbdevice_host_is_passed_on_and_gated_by_the_policy(tmp_path: Path) -> None:
    text = HVM + "usb = 1\nusbdevice = [ 'host:1.2', 'tablet' ]\n"
    assert build(text)["b_info"]["type.hvm"]["usbdevice_list"] == ["host:1.2", "tablet"]
    path = tmp_path / "g.cfg"
    result = parse_desired_file(path, text.encode(), "", DEFAULT_SECURITY)
    assert isinstance(result, ConfigError)
    assert "USB passthrough is not allowed (allow_usb_passthrough = false)" in str(result)


# ---- firmware, device model, platform -----------------------------------------------------------------

def test_hvmloader_kernel_is_ignored_with_a_warning() -> None:
    text = HVM + 'kernel = "/usr/lib/xen/boot/hvmloader"\n'
    assert "kernel" not in build(text)["b_info"]
    assert any("g.cfg:4: kernel: ignored, as xl ignores it" in w for w in warnings(text))


def test_device_model_version() -> None:
    assert build(HVM + 'device_model_version = "qemu-xen"\n')["b_info"]["device_model_version"] == "qemu_xen"
    assert "qemu-xen-traditional is not available with Xen 4.17" in refusal(
        HVM + 'device_model_version = "qemu-xen-traditional"\n')
    assert refusal(HVM + 'device_model_version = "kvm"\n') == \
        "g.cfg:4: device_model_version: unknown device_model_version 'kvm'"


def test_seclabels() -> None:
    assert build(PV + 'seclabel = "system_u:system_r:domU_t"\n')["c_info"]["ssid_label"] == \
        "system_u:system_r:domU_t"
    config = build(PV + 'init_seclabel = "a:b:c"\nseclabel = "d:e:f"\n')
    assert (config["c_info"]["ssid_label"], config["b_info"]["exec_ssid_label"]) == ("a:b:c", "d:e:f")


def test_platform_keys_land_where_xl_puts_them() -> None:
    text = (HVM + 'vtpm = [ "backend=vtpmd,uuid=B4E0E5D8-0D61-4D2B-9B3F-1E63A8C52B1A" ]\n'
            'iomem = [ "fd010,1@fd000" ]\nioports = [ "3f8-3ff" ]\nirqs = [ 151 ]\n'
            'device_tree = "/x.dtb"\ndtdev = [ "/soc/gpu" ]\ntee = "optee"\non_watchdog = "restart"\n'
            'altp2m = "mixed"\nshadow_memory = 8\nbios = "seabios"\nbios_path_override = "/fw.bin"\n'
            'dm_restrict = 1\ndevice_model_user = "qemu"\n'
            'p9 = [ "tag=share,path=/srv,security_model=none,backend=dom0" ]\n')
    config = build(text)
    b_info = config["b_info"]
    assert config["vtpms"] == [{"devid": 0, "backend_domname": "vtpmd",
                                "uuid": "b4e0e5d8-0d61-4d2b-9b3f-1e63a8c52b1a"}]
    assert b_info["iomem"] == [{"start": 0xFD010, "number": 1, "gfn": 0xFD000}]
    assert b_info["ioports"] == [{"first": 0x3F8, "number": 8}]
    assert b_info["irqs"] == [151]
    assert (b_info["device_tree"], b_info["tee"]) == ("/x.dtb", "optee")
    assert config["dtdevs"] == [{"path": "/soc/gpu"}]
    assert config["on_watchdog"] == "restart"
    assert (b_info["altp2m"], b_info["shadow_memkb"]) == ("mixed", 8192)
    assert b_info["type.hvm"]["system_firmware"] == "/fw.bin"
    assert (b_info["dm_restrict"], b_info["device_model_user"]) == ("True", "qemu")
    assert config["p9s"] == [{"tag": "share", "path": "/srv", "security_model": "none",
                              "backend_domname": "dom0"}]


def test_pci_options_vslot_and_globals() -> None:
    text = (PV + 'pci_permissive = 1\npci = [ "01:02.3", "0000:03:00.0@5,permissive=1,msitranslate=1,'
            'seize=1,power_mgmt=1,rdm_policy=relaxed", "04:00.*" ]\n')
    config = build(text)
    assert config["pcidevs"] == [
        {"func": 3, "dev": 2, "bus": 1, "vfunc_mask": 1, "permissive": True, "rdm_policy": "strict"},
        {"bus": 3, "vdevfn": 40, "vfunc_mask": 1, "msitranslate": True, "power_mgmt": True,
         "permissive": True, "seize": True, "rdm_policy": "relaxed"},
        {"bus": 4, "vfunc_mask": 0xFFFFFFFF, "permissive": True, "rdm_policy": "strict"}]
    assert config["b_info"]["type.pv"] == {"e820_host": "True"}


def test_integer_tsc_mode_is_taken_with_a_warning() -> None:
    assert "tsc_mode" not in build(PV + "tsc_mode = 0\n")["b_info"]
    assert build(PV + "tsc_mode = 1\n")["b_info"]["tsc_mode"] == "always_emulate"
    assert warnings(PV + "tsc_mode = 0\n") == [
        'g.cfg:4: tsc_mode: an integer is deprecated (xl takes it): use tsc_mode="default"']
    assert refusal(PV + "tsc_mode = 7\n") == "g.cfg:4: tsc_mode: invalid value 7"


# ---- nothing silent ----------------------------------------------------------------------------------

def test_keys_xl_ignores_are_warned_about() -> None:
    found = warnings(PV + 'colour = "blue"\nvif_script = "x"\nmemory = "lots"\ndisk = "/a,raw,xvda,rw"\n')
    assert found == [
        "g.cfg:6: memory: expected a number, got 'lots': ignored (as xl does)",
        "g.cfg:7: disk: expected a list, got a single value: ignored (as xl does)",
        "g.cfg:4: colour: unknown key: xl ignores it, so does the agent",
        "g.cfg:5: vif_script: an xm key that xl does not read: ignored: use vif script="]


def test_refusals_name_file_line_key_and_why() -> None:
    assert refusal(PV + 'on_crash = "explode"\n').startswith("g.cfg:4: on_crash: unknown action 'explode'")
    assert refusal('memory = 128\nkernel = "/k"\n') == "g.cfg: name: domain name must be specified"
    assert refusal('name = "g"\nmemory = 128\n') == "g.cfg: kernel: neither kernel nor bootloader specified"
    assert refusal(PV + "# trailing comment") == \
        "g.cfg:4: syntax error near '#': xl needs a newline after the last comment"
    rdm = refusal(HVM + 'rdm = "strategy=host,policy=relaxed"\n')
    assert rdm.startswith("g.cfg:4: rdm: xl 4.17 misreads rdm=")


def test_octal_and_hex_numbers_as_libxlu_reads_them() -> None:
    assert build('name = "g"\nmemory = 010\nkernel = "/k"\n')["b_info"]["max_memkb"] == 8 * 1024
    assert build('name = "g"\nmemory = 0x10\nkernel = "/k"\n')["b_info"]["max_memkb"] == 16 * 1024


def test_host_xl_conf_is_laid_under() -> None:
    host = HostSettings(vif_bridge="xenbr9", vif_script="vif-openvswitch", blkdev_start="xvdb",
                        max_grant_frames=64, claim_mode=False)
    config = build(PV + 'vif = [ "mac=00:16:3e:00:00:01", "bridge=br1" ]\nmax_grant_frames = 32\n', host)
    assert [n.get("bridge") for n in config["nics"]] == ["xenbr9", "br1"]
    assert {n["script"] for n in config["nics"]} == {"vif-openvswitch"}
    b_info = config["b_info"]
    assert (b_info["blkdev_start"], b_info["max_grant_frames"], b_info["claim_mode"]) == ("xvdb", 32, "False")


def test_desired_cfg_has_no_model_and_keeps_warnings(tmp_path: Path) -> None:
    result = parse_desired_file(tmp_path / "g.cfg", (PV + "colour = 1\n").encode(), "h", None)
    assert isinstance(result, DesiredDomain)
    assert (result.name, result.domain, result.power_state, result.uuid) == ("g", None, "running", None)
    assert [w.element for w in result.warnings] == ["colour"]


# ---- the same snippets through real xl ---------------------------------------------------------------

SNIPPETS = [
    PV + 'vif = [ "rate=10MB/s@20ms" ]\n', PV + 'vcpus = 3\ncpus = [ "2", "3-5" ]\n',
    PV + "vcpus = 2\ncpus = [ '4-47' ]\n", PV + 'vcpus = 2\ncpus = "2-3,^3"\n',
    PV + 'vcpus = 2\nmaxvcpus = 4\ncpus_soft = "1"\ncpu_weight = 512\ncap = 50\n',
    HVM + 'vfb = [ "vnc=1,vncpasswd=s" ]\nkeymap = "de"\nvnclisten = "1.2.3.4"\nvncpasswd = "top"\n',
    PV + 'vnc = 1\nvncpasswd = "x"\nkeymap = "fr"\n', HVM + "stdvga = 0\nvideoram = 16\n",
    HVM + 'vga = "qxl"\n', HVM + 'soundhw = "hda"\n', HVM + 'disk = [ ",hdc:cdrom,r" ]\n',
    PV + 'disk = [ "nbd:host:1234,xvda,w", "script=block-foo,vdev=xvdb,target=iqn:x,y" ]\n',
    HVM + "usb = 1\nusbdevice = [ 'host:1.2', 'tablet' ]\n", HVM + 'kernel = "/usr/lib/xen/boot/hvmloader"\n',
    PV + 'init_seclabel = "a:b:c"\nseclabel = "d:e:f"\n', PV + "tsc_mode = 1\n",
    PV + 'pci_permissive = 1\npci = [ "01:02.3", "0000:03:00.0@5,permissive=1,rdm_policy=relaxed",'
         ' "04:00.*" ]\n',
    HVM + 'vtpm = [ "backend=vtpmd" ]\niomem = [ "fd010,1@fd000" ]\nioports = [ "3f8-3ff" ]\nirqs = [ 151 ]\n'
          'dtdev = [ "/soc/gpu" ]\ntee = "optee"\non_watchdog = "restart"\naltp2m = "mixed"\n'
          'shadow_memory = 8\n'
          'bios = "seabios"\nbios_path_override = "/fw.bin"\ndm_restrict = 1\ndevice_model_user = "qemu"\n'
          'p9 = [ "tag=share,path=/srv,security_model=none" ]\n',
]

#: Every other key class xl.cfg(5) documents, each compared with real xl below.
MORE_SNIPPETS = [
    PV + 'vif = [ "mtu=9000,devid=5,vifname=v1,ip=1.2.3.4,gatewaydev=eth0,model=e1000,type=ioemu" ]\n',
    PV + 'max_grant_version = 1\nvpmu = 1\nvuart = "sbsa_uart"\ngic_version = "v3"\n'
         'msr_relaxed = 1\n',
    PV + 'nomigrate = 1\ndriver_domain = 1\noos = 0\npool = "p"\nhap = 0\n',
    HVM + 'viridian = [ "defaults", "!freq", "stimer" ]\nhdtype = "ahci"\nnographic = 1\n',
    HVM + 'spice = 1\nspiceport = 6000\nspicehost = "0.0.0.0"\nspicedisable_ticketing = 1\n'
          'spiceagent_mouse = 1\nspicevdagent = 1\nspice_clipboard_sharing = 1\n'
          'spiceusbredirection = 4\n',
    HVM + 'gfx_passthru = "igd"\nserial = [ "pty", "file:/tmp/x" ]\nboot = "dc"\nusb = 1\n'
          'usbversion = 2\nvendor_device = "xenserver"\n',
    HVM + 'acpi_s3 = 0\nacpi_s4 = 0\nnx = 1\nhpet = 1\nvpt_align = 1\nmmio_hole = 1024\n'
          'timer_mode = "no_delay_for_missed_ticks"\n',
    HVM + 'firmware = "uefi"\nsmbios_firmware = "/s.bin"\nacpi_firmware = "/a.bin"\n'
          'xen_platform_pci = 0\nvkb_device = 0\n',
    HVM + 'serial = "pty"\nusbdevice = "tablet"\nviridian = 1\npae = 0\nacpi = 0\n'
          'apic = 0\n',
    'name = "g"\nmemory = 128\ntype = "pvh"\nkernel = "/k"\npvshim = 1\n'
    'pvshim_path = "/shim"\npvshim_cmdline = "x"\n',
    'name = "g"\nmemory = 128\nfirmware = "pvgrub64"\n',
    PV + 'channel = [ "connection=socket,path=/tmp/s,name=org.qemu", "connection=pty,name=c2" ]\n',
    'name = "g"\nmemory = 128\nbootloader = "pygrub"\n'
    'bootloader_args = "-q --entry=1"\n',
    PV + 'root = "/dev/xvda1 ro"\nextra = "console=hvc0"\non_poweroff = "preserve"\n'
         'on_crash = "coredump-restart"\non_soft_reset = "destroy"\n',
    HVM + 'localtime = 1\nrtc_timeoffset = 3600\nvideoram = 8\nmax_event_channels = 2048\n'
          'maxmem = 512\nmemory = 256\n',
    PV + 'vtpm = [ "backend=vt,uuid=B4E0E5D8-0D61-4D2B-9B3F-1E63A8C52B1A" ]\n'
         'device_model_args = [ "-a" ]\ndevice_model_args_pv = [ "-b" ]\n',
    HVM + 'device_model_override = "/usr/bin/qemu"\ndevice_model_version = "qemu-xen"\n'
          'device_model_args_hvm = [ "-c" ]\nstubdomain_memory = 64\n',
    HVM + 'vnc = 1\nvnclisten = "0.0.0.0"\nvncdisplay = 3\nvncunused = 0\nsdl = 1\n'
          'opengl = 1\ndisplay = ":0"\nxauthority = "/x"\nkeymap = "en-us"\n',
    PV + 'vfb = [ "type=vnc,vncunused=1,vnclisten=::1", "sdl=1,display=:1,opengl=0" ]\n',
    PV + 'vnuma = [ [ "pnode=0", "size=64", "vcpus=0", "vdistances=10,20" ],\n'
         '  [ "pnode=0", "size=64", "vcpus=1", "vdistances=20,10" ] ]\n',
    PV + 'disk = [ "format=qcow2,vdev=xvda,access=ro,target=/a",\n'
         '  "/b,raw,xvdb,w,devtype=disk,direct-io-safe", "vdev=xvdc,discard,target=/c",\n'
         '  "vdev=xvdd,backendtype=tap,target=/d,backend=dd" ]\n',
    PV + 'cpuid = "host,tm=0,sse3=k,page1gb=x,avx2=s,aes=1"\n',
    PV + 'cpuid = [ "0x1:ecx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx0",\n'
         '  "7,0:ebx=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1" ]\n',
    PV + 'ioports = [ "3f8", "2f8-2ff" ]\niomem = [ "fd010,1" ]\ndtdev = [ "/a", "/b" ]\n',
    PV + 'e820_host = 1\nshadow_memory = 4\nnestedhvm = 1\naltp2m = 2\n'
         'vmtrace_buf_kb = 64\n',
    PV + 'seclabel = "a:b:c"\ndevice_model_stubdomain_seclabel = "d:e:f"\n'
         'device_model_user = "qemu"\n',
]


@pytest.mark.reallibxl
def test_snippets_match_real_xl(tmp_path: Path) -> None:
    realxl = pytest.importorskip("realxl")
    missing = realxl.libxl_missing() or (None if realxl.XL.exists() else "xen-utils-4.17 (xl) missing")
    if missing:
        pytest.skip(missing)
    ours, theirs = [], []
    snippets = SNIPPETS + MORE_SNIPPETS
    for index, text in enumerate(snippets):
        path = tmp_path / f"s{index}.cfg"
        path.write_text(text)
        xl, why = realxl.xl_create_dry(path)
        assert xl is not None, f"xl refuses snippet {index}: {why}"
        theirs.append(xl)
        ours.append(build(text))
    normalised = realxl.roundtrip(ours + theirs)
    for index, text in enumerate(snippets):
        mine, xl = normalised[index]["json"], normalised[len(snippets) + index]["json"]
        mine["c_info"].pop("uuid", None)
        xl["c_info"].pop("uuid", None)
        assert json.dumps(mine, sort_keys=True) == json.dumps(xl, sort_keys=True), text


def test_keys_of_another_guest_type_are_warned_about() -> None:
    """xl reads apic/pae/hpet only for HVM and e820_host only for PV: elsewhere it drops them."""
    assert warnings(PV + "apic = 1\npae = 1\n") == [
        "g.cfg:4: apic: not used for a pv guest: ignored (as xl does)",
        "g.cfg:5: pae: not used for a pv guest: ignored (as xl does)"]
    config = build(HVM + "e820_host = 1\n")
    assert "e820_host" not in config["b_info"]["type.hvm"]
    assert warnings(HVM + "e820_host = 1\n") == [
        "g.cfg:4: e820_host: not used for a hvm guest: ignored (as xl does)"]


def test_xl_conf_spellings_xl_still_reads(tmp_path: Path) -> None:
    """defaultbridge/vifscript (deprecated) lose to vif.default.* wherever they stand;
    run_hotplug_scripts reaches every guest, as xl writes it."""
    from libxl.frontends.hostconf import load_host_settings

    conf = tmp_path / "xl.conf"
    conf.write_text('vif.default.bridge = "br-new"\ndefaultbridge = "br-old"\nvifscript = "vif-nat"\n'
                    "run_hotplug_scripts = 0\n")
    host = load_host_settings(conf, None)
    assert (host.vif_bridge, host.vif_script, host.run_hotplug_scripts) == ("br-new", "vif-nat", False)
    config = build(PV + 'vif = [ "" ]\n', host)
    assert config["nics"] == [{"devid": 0, "bridge": "br-new", "script": "vif-nat"}]
    assert config["c_info"]["run_hotplug_scripts"] == "False"


def test_the_hosts_cpu_count_is_asked_once_and_a_failure_leaves_it_unknown() -> None:
    from libxl.frontends.hostconf import with_host_cpus

    assert with_host_cpus(HostSettings(), lambda: 8).cpus == 8
    assert with_host_cpus(HostSettings(cpus=4), lambda: 8).cpus == 4

    def unreachable() -> int:
        raise OSError("no host")

    assert with_host_cpus(HostSettings(), unreachable).cpus is None
    cut = read_xl_config(PV + "vcpus = 1\ncpus = [ '4-47' ]\n", "g.cfg", HostSettings(cpus=8)).config
    assert cut["b_info"]["vcpu_hard_affinity"] == [[4, 5, 6, 7]]
    uncut = read_xl_config(PV + "vcpus = 1\ncpus = [ '4-47' ]\n", "g.cfg", HostSettings()).config
    assert uncut["b_info"]["vcpu_hard_affinity"] == [list(range(4, 48))]


def test_the_agents_run_strategy_key_is_read_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "g.cfg"
    halted = parse_desired_file(path, (PV + 'xenreconcile_run_strategy = "Halted"\n').encode(), "", None)
    assert isinstance(halted, DesiredDomain)
    assert (halted.run_strategy, halted.power_state, halted.warnings) == ("Halted", "stopped", ())
    assert "xenreconcile_run_strategy" not in json.dumps(halted.config)
    bad = parse_desired_file(path, (PV + 'xenreconcile_run_strategy = "Often"\n').encode(), "", None)
    assert isinstance(bad, ConfigError) and str(bad).startswith(f"{path}:4: xenreconcile_run_strategy")


def test_the_policy_judges_the_files_own_config_not_the_hosts_xl_conf(tmp_path: Path) -> None:
    """A vif script from xl.conf is the host's choice; the same script in the file is refused."""
    host = HostSettings(vif_script="/opt/odd/vif-script")
    path = tmp_path / "g.cfg"
    plain = parse_desired_file(path, (PV + 'vif = [ "" ]\n').encode(), "", DEFAULT_SECURITY, host)
    assert isinstance(plain, DesiredDomain) and plain.config["nics"][0]["script"] == "/opt/odd/vif-script"
    text = PV + 'vif = [ "script=/opt/odd/vif-script" ]\n'
    own = parse_desired_file(path, text.encode(), "", DEFAULT_SECURITY, host)
    assert isinstance(own, ConfigError) and "hotplug script '/opt/odd/vif-script'" in str(own)
