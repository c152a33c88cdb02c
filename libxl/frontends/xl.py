"""xl.cfg(5) -> ``libxl_domain_config`` JSON, the way ``xl create`` of Xen 4.17 reads the file.

Not through the domain model: each key lands in the libxl field xl puts it in, with xl's own
defaults (an HVM guest gets libxl's stdvga and VNC unless the file says otherwise, ``on_reboot``
restart, ``on_soft_reset`` soft-reset, the host's xl.conf under every guest), so a file gives the
guest ``xl create`` would give. The value grammars are shared with the converters:
``libxl.domain.formats.diskspec`` (xl-disk-configuration(5)), ``vifspec`` (xl-network-configuration(5),
``rate=``), ``pcispec`` (xl-pci-configuration(5)), ``cpulist`` (``cpus=``) and ``cpuid``.

Where xl is lenient the file is read the same way and a warning says what xl did (a number that
is not one, a list where a single value belongs, an unknown cpuid flag, a deprecated spelling);
where xl refuses, the file is refused; a few things xl's dry run takes are refused here with the
reason: what libxl 4.17 refuses at create anyway (``qemu-xen-traditional``, which Xen 4.17 packages
do not ship, and sound cards it does not know), what xl misreads (``rdm=``), what cannot be a stable
desired state (``ms_vm_genid="generate"``), stub-domain device models, cpuid fields wider than one
bit and NUMA node cpu lists. Keys xl does not read at all, or reads only for another guest type,
are warned about (xl ignores them silently).
The result leaves out the owner marker and any generated identity: a file without ``uuid`` has
none here (the agent keeps one per name), nics without ``mac`` get libxl's random one at create.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass, field
from typing import Any

from libxl.domain.formats import diskspec, vifspec
from libxl.domain.formats.cpuid import CpuidError, cpuid_from_legacy, cpuid_from_string
from libxl.domain.formats.cpulist import parse_xl_cpus
from libxl.domain.formats.pcispec import parse_pci_spec
from libxl.domain.formats.xencommon import Cfg
from libxl.domain.formats.xl import RUN_STRATEGY_KEY, read_run_strategy
from libxl.domain.formats.xlcfg import parse_cfg
from libxl.domain.model import NIL_UUID_REFUSAL, canonical_uuid, is_nil_uuid, too_many_vcpus
from libxl.errors import ConfigError
from libxl.frontends import xldevices
from libxl.frontends.hostsettings import HostSettings
from libxl.frontends.xldevices import disk_json, vfb_json
from libxl.frontends.xldevices import put as _put
from libxl.frontends.xldevices import tokens as _tokens
from libxl.frontends.xlvalues import XlValues

JSON = dict[str, Any]

#: libxl's action names by xl's spelling.
_ACTIONS = {"destroy": "destroy", "restart": "restart", "rename-restart": "restart_rename",
            "preserve": "preserve", "coredump-destroy": "coredump_destroy",
            "coredump-restart": "coredump_restart", "soft-reset": "soft_reset"}
_TSC_MODES = ("default", "always_emulate", "native", "native_paravirt")
_TIMER_MODES = ("delay_for_missed_ticks", "no_delay_for_missed_ticks", "no_missed_ticks_pending",
                "one_missed_tick_pending")
_ALTP2M = ("disabled", "mixed", "external", "limited")
_VGA = {"stdvga": "std", "cirrus": "cirrus", "none": "none", "qxl": "qxl"}
_VIRIDIAN = ("base", "freq", "time_ref_count", "reference_tsc", "hcall_remote_tlb_flush", "apic_assist",
             "crash_ctl", "synic", "stimer", "hcall_ipi", "ex_processor_masks", "no_vp_limit",
             "cpu_hotplug")
_BIOS = ("rombios", "seabios", "ovmf")
_PASSTHROUGH = ("default", "disabled", "enabled", "sync_pt", "share_pt")
#: xl's XENFIRMWAREDIR as Debian's xen-utils-4.17 is built (upstream's default is /usr/lib/xen/boot).
_XEN_FIRMWARE_DIR = "/usr/lib/xen-4.17/boot"
#: The sound cards libxl 4.17 starts qemu with (its libxl__qemu_soundhw); any other name, ``all``
#: and ``ich6`` included, makes libxl refuse the guest at create.
SOUNDHW_MODELS = ("ac97", "adlib", "cs4231a", "es1370", "gus", "hda", "pcspk", "sb16")
#: Xen 4.17 as Debian builds it has no qemu-traditional: libxl would refuse the guest at create.
_NO_TRADITIONAL = ("qemu-xen-traditional is not available with Xen 4.17 packages (Debian builds Xen without "
                   "it, so libxl would refuse the guest at create); use device_model_version=\"qemu-xen\"")

#: Every key ``xl create`` 4.17 reads (xl.cfg(5)); anything else is warned about.
XL_KEYS = frozenset("""
name uuid type builder hap oos pool seclabel init_seclabel device_model_stubdomain_seclabel
pvshim pvshim_path pvshim_cmdline pvshim_extra cpu_weight cap period slice latency extratime
memory maxmem vcpus maxvcpus vuart vnuma cpus cpus_soft max_grant_frames max_maptrack_frames
max_grant_version on_poweroff on_reboot on_watchdog on_crash on_soft_reset e820_host
pci_msitranslate pci_power_mgmt pci_permissive pci_seize rdm pci dtdev passthrough shadow_memory
nomigrate tsc_mode rtc_timeoffset vncviewer localtime videoram max_event_channels kernel ramdisk
device_tree cmdline root extra driver_domain acpi bootloader bootloader_args timer_mode nestedhvm
firmware_override bios_path_override bios pae acpi_s3 acpi_s4 acpi_laptop_slate nx hpet vpt_align
apic viridian mmio_hole altp2mhvm smbios_firmware acpi_firmware ms_vm_genid rdm_mem_boundary
mca_caps firmware altp2m vmtrace_buf_kb ioports irqs iomem disk p9 vtpm vdispl pvcalls vsnd
channel vif vif2 vfb usbctrl usbdev cpuid device_model device_model_override
device_model_version device_model_stubdomain_override device_model_user stubdomain_kernel
stubdomain_ramdisk stubdomain_memory stubdomain_cmdline device_model_args device_model_args_pv
device_model_args_hvm vnc vnclisten vncpasswd vncdisplay vncunused sdl opengl display xauthority
keymap dm_restrict vga stdvga hdtype spice spiceport spicetls_port spicehost
spicedisable_ticketing spicepasswd spiceagent_mouse spicevdagent spice_clipboard_sharing
spiceusbredirection spice_image_compression spice_streaming_video nographic gfx_passthru serial
boot usb usbversion usbdevice vkb_device soundhw xen_platform_pci vendor_device gic_version tee
vkb xend_suspend_evtchn_compat msr_relaxed vpmu
""".split())  # noqa: SIM905 (a word list reads better here)
#: Keys of the legacy xm format that xl.cfg(5) no longer reads, with what to use instead.
_XM_ONLY = {"extra_hvm": "device_model_args_hvm", "vif_script": "vif script=", "vscsi": "pci=",
            "on_xend_start": None, "on_xend_stop": None, "bootargs": "bootloader_args",
            "parallel": None, "monitor": None, "monitor_path": None, "interface": None,
            "vncconsole": "xl create -V", "ne2000": None, "blkif": None, "netif": None, "tpmif": None,
            "access_control": "seclabel", "security": "seclabel", "cpu": "cpus", "ioemu": None,
            "fda": None, "fdb": None, "serialdev": "serial", "timer": None, "vif_other_config": None}


@dataclass
class XlConfig:
    """What an xl.cfg builds: the libxl JSON (with the host's xl.conf laid under it), the warnings
    xl would (or should) print, the file's own config (without xl.conf: what the security policy
    judges) and the agent's own key ``xenreconcile_run_strategy``."""
    config: JSON
    warnings: list[ConfigError] = field(default_factory=list)
    own: JSON | None = None
    run_strategy: str | None = None

    @property
    def name(self) -> str:
        return str(self.config["c_info"]["name"])


class _Reader:
    """One pass over a file in xl's order; ``v`` holds the values, ``cfg`` the config built so far."""

    def __init__(self, v: XlValues, max_cpus: int, cpus_known: bool) -> None:
        self.v, self.max_cpus, self.cpus_known = v, max_cpus, cpus_known
        self.cfg: JSON = {"c_info": {}, "b_info": {}}
        self.c: JSON = self.cfg["c_info"]
        self.b: JSON = self.cfg["b_info"]
        self.kind = "pv"
        self.variant: JSON = {}

    # -- helpers ---------------------------------------------------------------------------------
    def refuse(self, key: str, message: str) -> ConfigError:
        return self.v.error(key, message)

    def enum(self, key: str, allowed: tuple[str, ...] | dict[str, str],
             what: str | None = None) -> str | None:
        text = self.v.string(key)
        if text is None:
            return None
        if text not in allowed:
            names = ", ".join(allowed)
            raise self.refuse(key, f"invalid {what or key} {text!r} (expected one of {names})")
        return allowed[text] if isinstance(allowed, dict) else text

    def numbered_enum(self, key: str, names: tuple[str, ...], deprecated: bool) -> str | None:
        """An enum xl takes by name or by its number (``tsc_mode = 1``); a number out of range is
        refused, a deprecated one taken with xl's warning."""
        if self.v.raw(key) is None:
            return None
        number = self.v.long(key, quiet=True)
        if number is None:
            return self.enum(key, names)
        if not 0 <= number < len(names):
            raise self.refuse(key, f"invalid value {number}")
        if deprecated:
            self.v.warn(key, f"an integer is deprecated (xl takes it): use {key}=\"{names[number]}\"")
        return names[number]

    def defbool(self, out: JSON, field_name: str, key: str) -> None:
        _put(out, field_name, self.v.defbool(key))

    def string(self, out: JSON, field_name: str, key: str) -> None:
        _put(out, field_name, self.v.string(key))

    def number(self, out: JSON, field_name: str, key: str, scale: int = 1) -> None:
        value = self.v.long(key)
        if value is not None:
            out[field_name] = value * scale

    def item_error(self, key: str, item: str, err: Exception) -> ConfigError:
        return self.refuse(key, f"{item!r}: {err}")

    # -- the file, in xl's order -------------------------------------------------------------------
    def read(self) -> JSON:
        self.identity()
        self.scheduling_and_memory()
        self.vcpus()
        self.actions()
        self.pci()
        self.platform()
        self.firmware_and_kernel()
        self.guest_kind_specific()
        self.resources()
        self.devices()
        self.cpuid()
        self.device_model()
        self.display()
        self.hvm_devices()
        self.tail()
        return self.cfg

    def identity(self) -> None:
        v, c, b = self.v, self.c, self.b
        init = v.string("init_seclabel")
        seclabel = v.string("seclabel")
        if init is not None:
            c["ssid_label"] = init
            _put(b, "exec_ssid_label", seclabel)
        else:
            _put(c, "ssid_label", seclabel)
        kind = v.string("type")
        if kind is not None:
            matches = [k for k in ("hvm", "pv", "pvh") if k.startswith(kind)]
            if not matches:
                raise self.refuse("type", f"invalid domain type {kind!r} (expected pv, pvh or hvm)")
            self.kind = matches[0]
        builder = v.string("builder")
        if builder is not None:
            if "hvm".startswith(builder):
                built = "hvm"
            elif "generic".startswith(builder):
                built = "pv"
            else:
                raise self.refuse("builder", f"invalid builder {builder!r} (expected hvm or generic)")
            if kind is not None and built != self.kind:
                raise self.refuse("builder", "contradicts \"type\"")
            self.kind = built
            v.warn("builder", f"deprecated since Xen 4.10: use type=\"{built}\"")
        c["type"] = self.kind
        self.defbool(c, "hap", "hap")
        name = v.string("name")
        if not name:
            raise ConfigError("domain name must be specified", file=v.file, element="name")
        c["name"] = name
        uuid = v.string("uuid")
        if uuid is not None:
            try:
                c["uuid"] = canonical_uuid(uuid)
            except ValueError:
                raise self.refuse("uuid", f"failed to parse UUID {uuid!r}") from None
            if is_nil_uuid(c["uuid"]):
                raise self.refuse("uuid", NIL_UUID_REFUSAL)
        c["run_hotplug_scripts"] = "True"  # xl's default; xl.conf may say otherwise (lay_host_under)
        self.defbool(c, "oos", "oos")
        self.string(c, "pool_name", "pool")
        self.variant = {}
        if self.kind == "pvh":
            self.defbool(self.variant, "pvshim", "pvshim")
            for key in ("pvshim_path", "pvshim_cmdline", "pvshim_extra"):
                self.string(self.variant, key, key)

    def scheduling_and_memory(self) -> None:
        sched: JSON = {}
        for key, name in (("cpu_weight", "weight"), ("cap", "cap"), ("period", "period"), ("slice", "slice"),
                          ("latency", "latency"), ("extratime", "extratime")):
            self.number(sched, name, key)
        self.b["sched_params"] = sched
        self.number(self.b, "target_memkb", "memory", 1024)
        self.number(self.b, "max_memkb", "maxmem", 1024)

    def vcpus(self) -> None:
        v, b = self.v, self.b
        vcpus = v.long("vcpus")
        maxvcpus = v.long("maxvcpus")
        for key, count in (("vcpus", vcpus), ("maxvcpus", maxvcpus)):
            too_many = too_many_vcpus(count or 0, self.kind)
            if too_many:  # before anything is sized by it (300000000 would take gigabytes)
                raise self.refuse(key, too_many)
        if vcpus is not None:
            b["avail_vcpus"] = list(range(max(vcpus, 0)))
        if maxvcpus is not None:
            b["max_vcpus"] = maxvcpus
        vuart = v.string("vuart")
        if vuart is not None:
            if vuart != "sbsa_uart":
                raise self.refuse("vuart", f"invalid value {vuart!r} (expected sbsa_uart)")
            self.b.setdefault("arch_arm", {})["vuart"] = vuart
        self.vnuma()
        if "max_memkb" not in b and "target_memkb" in b:
            b["max_memkb"] = b["target_memkb"]
        if not b.get("max_vcpus") and vcpus:
            b["max_vcpus"] = vcpus
        if vcpus is not None and b.get("max_vcpus", 0) < vcpus:
            raise self.refuse("maxvcpus", "maxvcpus < vcpus")
        for key, field_name in (("cpus", "vcpu_hard_affinity"), ("cpus_soft", "vcpu_soft_affinity")):
            self.affinity(key, field_name)
        for key in ("max_grant_frames", "max_maptrack_frames"):
            value = v.long(key)
            if value is not None and not 0 <= value <= 2**31 - 1:
                raise self.refuse(key, f"{value} is out of range (0 to {2**31 - 1})")
            _put(b, key, value)
        grant_version = v.long("max_grant_version")
        if grant_version is not None:
            b["max_grant_version"] = grant_version
        b["claim_mode"] = "True"  # xl's default; xl.conf may say otherwise (lay_host_under)

    def vnuma(self) -> None:
        raw = self.v.raw("vnuma")
        if raw is None:
            return
        if not isinstance(raw, list):
            self.v.warn("vnuma", "expected a list of lists: ignored (as xl does)")
            return
        if not raw:
            return
        nodes: list[JSON] = []
        total_vcpus, total_kib = 0, 0
        for index, spec in enumerate(raw):
            if not isinstance(spec, list):
                raise self.refuse("vnuma", f"node {index}: cannot get vnode config option list")
            node: JSON = {"memkb": 0, "distances": [0] * len(raw), "vcpus": []}
            for option in spec:
                if isinstance(option, list):
                    continue
                key, eq, value = (p.strip() for p in str(option).partition("="))
                if not eq or not key or not value:
                    raise self.refuse("vnuma", f"node {index}: failed to split {option!r} into a pair")
                try:
                    if key == "pnode":
                        node["pnode"] = int(value)  # libxl checks it against the host's nodes
                        self.b["numa_placement"] = "False"
                    elif key == "size":
                        node["memkb"] = int(value) << 10
                        total_kib += node["memkb"]
                    elif key == "vcpus":
                        for part in value.split(","):
                            first, _, last = part.partition("-")
                            span = range(int(first), int(last or first) + 1)
                            node["vcpus"] += list(span)
                            total_vcpus += len(span)
                    elif key == "vdistances":
                        for slot, distance in enumerate(value.split(",")):
                            if slot < len(node["distances"]):
                                node["distances"][slot] = int(distance)
                except ValueError:
                    raise self.refuse("vnuma", f"node {index}: {value!r} is not a number") from None
            nodes.append(node)
        b = self.b
        if b.get("max_vcpus"):
            if b["max_vcpus"] != total_vcpus:
                raise self.refuse("vnuma", "vnuma vcpus and maxvcpus= mismatch")
        else:
            if self.cpus_known and total_vcpus > self.max_cpus:
                raise self.refuse("vnuma", "vnuma specifies more vcpus than pcpus, use maxvcpus= to override "
                                           "this check")
            b["max_vcpus"] = total_vcpus
        if "max_memkb" in b and b["max_memkb"] != total_kib:
            raise self.refuse("vnuma", "maxmem and vnuma memory size mismatch")
        b["max_memkb"] = total_kib
        for node in nodes:
            node["vcpus"] = sorted({c for c in node["vcpus"] if c < b["max_vcpus"]})
        b["vnuma_nodes"] = nodes

    def affinity(self, key: str, field_name: str) -> None:
        raw = self.v.raw(key)
        if raw is None:
            return
        max_vcpus = self.b.get("max_vcpus", 0)
        try:
            if isinstance(raw, list):
                items = [str(i) for i in raw if not isinstance(i, list)][:max_vcpus]
                maps = [parse_xl_cpus(item, *self.cpu_limits()) for item in items]
                self.b["numa_placement"] = "False"
            else:
                maps = [parse_xl_cpus(str(raw), *self.cpu_limits())] * max_vcpus
                if key == "cpus_soft":
                    self.b["numa_placement"] = "False"
        except ValueError as err:
            raise self.refuse(key, str(err)) from None
        if not self.cpus_known and "all" in str(raw):
            self.v.warn(key, f"'all' is every cpu of the host; its count is not known here, so this "
                             f"machine's {self.max_cpus} are listed (set the host's cpus to match xl)")
        self.b[field_name] = maps

    def cpu_limits(self) -> tuple[int | None, int]:
        """(the cut for cpu lists, the count ``all`` stands for)."""
        return (self.max_cpus if self.cpus_known else None), self.max_cpus

    def actions(self) -> None:
        for event, default in (("on_poweroff", "destroy"), ("on_reboot", "restart"),
                               ("on_watchdog", "destroy"), ("on_crash", "destroy"),
                               ("on_soft_reset", "soft-reset")):
            text = self.v.string(event)
            action = default if text is None else text
            if action not in _ACTIONS:
                raise self.refuse(event, f"unknown action {action!r} (expected one of {', '.join(_ACTIONS)})")
            if _ACTIONS[action] != "destroy":
                self.cfg[event] = _ACTIONS[action]

    def pci(self) -> None:
        v = self.v
        if self.kind == "pv":
            self.defbool(self.variant, "e820_host", "e820_host")
        defaults = {opt: bool(v.long(f"pci_{opt}") or 0)
                    for opt in ("msitranslate", "power_mgmt", "permissive", "seize")}
        if v.string("rdm") is not None:
            raise self.refuse("rdm", "xl 4.17 misreads rdm= (it drops \"strategy=host,policy=...\" whole and "
                                     "leaves the policy undefined without one), so no config can say what xl "
                                     "would do; not supported by this agent")
        # xl copies the HVM rdm policy into every PCI device; libxl's HVM default is "unset", and a
        # PV/PVH guest's (not HVM) build info reads as 0 there, which is "strict".
        policy = None if self.kind == "hvm" else "strict"
        specs = v.items("pci")
        if specs is not None:
            devs = []
            for text in specs:
                try:
                    spec = parse_pci_spec(text)
                except ValueError as err:
                    raise self.item_error("pci", text, err) from None
                dev: JSON = {}
                for name, value in (("func", spec.func or 0), ("dev", spec.dev), ("bus", spec.bus),
                                    ("domain", spec.domain)):
                    if value:
                        dev[name] = value
                if spec.vslot is not None:
                    dev["vdevfn"] = spec.vslot << 3
                dev["vfunc_mask"] = 1 if spec.func is not None else 0xFFFFFFFF
                options = {**defaults, **spec.options}
                for name in ("msitranslate", "power_mgmt", "permissive", "seize"):
                    if options[name]:
                        dev[name] = True
                _put(dev, "rdm_policy", spec.rdm_policy or policy)
                _put(dev, "name", spec.name)
                devs.append(dev)
            if devs:
                self.cfg["pcidevs"] = devs
                if self.kind == "pv":
                    self.variant["e820_host"] = "True"
        dtdevs = v.items("dtdev")
        if dtdevs:
            self.cfg["dtdevs"] = [{"path": p} for p in dtdevs]
        passthrough = self.enum("passthrough", _PASSTHROUGH)
        _put(self.c, "passthrough", passthrough)

    def platform(self) -> None:
        v, b = self.v, self.b
        self.number(b, "shadow_memkb", "shadow_memory", 1024)
        self.defbool(b, "disable_migrate", "nomigrate")
        tsc = self.numbered_enum("tsc_mode", _TSC_MODES, deprecated=True)
        if tsc not in (None, "default"):
            b["tsc_mode"] = tsc
        self.number(b, "rtc_timeoffset", "rtc_timeoffset")
        if v.long("vncviewer") is not None:
            v.warn("vncviewer", "ignored, as xl ignores it (use xl create -V)")
        self.defbool(b, "localtime", "localtime")
        self.number(b, "video_memkb", "videoram", 1024)
        self.number(b, "event_channels", "max_event_channels")

    def firmware_and_kernel(self) -> None:
        v, b = self.v, self.b
        for key in ("kernel", "ramdisk", "device_tree"):
            self.string(b, key, key)
        cmdline, root, extra = v.string("cmdline"), v.string("root"), v.string("extra")
        if cmdline is not None:
            if root is not None or extra is not None:
                v.warn("cmdline", "root= and extra= are ignored in favour of cmdline= (as xl does)")
            b["cmdline"] = cmdline
        elif root is not None:
            b["cmdline"] = f"root={root}" + (f" {extra}" if extra is not None else "")
        elif extra is not None:
            b["cmdline"] = extra
        self.defbool(self.c, "driver_domain", "driver_domain")
        self.defbool(b, "acpi", "acpi")
        self.string(b, "bootloader", "bootloader")
        args, line = v.list_or_atom("bootloader_args")
        if line is not None:
            v.warn("bootloader_args", "a string is deprecated: use a list of arguments")
            args = line.split()
        _put(b, "bootloader_args", args)
        if v.has("timer_mode") and self.kind == "pv":
            raise self.refuse("timer_mode", "not supported for PV guests")
        _put(b, "timer_mode", self.numbered_enum("timer_mode", _TIMER_MODES, deprecated=True))
        self.defbool(b, "nested_hvm", "nestedhvm")

    def guest_kind_specific(self) -> None:
        v, b, hvm = self.v, self.b, self.variant
        if self.kind == "hvm":
            kernel = b.get("kernel")
            if kernel is not None and os.path.basename(kernel) == "hvmloader":
                v.warn("kernel", "ignored, as xl ignores it: the HVM firmware is not set with kernel= "
                                 "(use firmware_override if you really want another one)")
                del b["kernel"]
            self.string(hvm, "firmware", "firmware_override")
            self.string(hvm, "system_firmware", "bios_path_override")
            bios = self.enum("bios", _BIOS)
            if bios is not None:
                hvm["bios"] = bios
            elif "system_firmware" in hvm:
                v.warn("bios_path_override", "given without a bios name (as xl warns)")
            for key in ("pae", "acpi_s3", "acpi_s4", "acpi_laptop_slate", "nx", "hpet", "vpt_align"):
                self.defbool(hvm, key, key)
            self.defbool(b, "apic", "apic")
            self.viridian(hvm)
            hole = v.long("mmio_hole")
            if hole is not None:
                if not 256 <= hole <= 3840:
                    raise self.refuse("mmio_hole", f"invalid value {hole} (256 to 3840 MiB)")
                hvm["mmio_hole_memkb"] = hole * 1024
            if v.defbool("altp2mhvm") is not None:
                hvm["altp2m"] = v.defbool("altp2mhvm")
                v.warn("altp2mhvm", "deprecated: use altp2m")
            self.string(hvm, "smbios_firmware", "smbios_firmware")
            self.string(hvm, "acpi_firmware", "acpi_firmware")
            genid = v.string("ms_vm_genid")
            if genid == "generate":
                raise self.refuse("ms_vm_genid", "\"generate\" makes a new random id on every create, so "
                                                 "the desired config would never be stable; not supported by "
                                                 "this agent")
            if genid not in (None, "none"):
                raise self.refuse("ms_vm_genid", "must be \"generate\" or \"none\"")
            self.number(hvm, "rdm_mem_boundary_memkb", "rdm_mem_boundary", 1024)
            caps = v.items("mca_caps")
            if caps:
                for cap in caps:
                    if cap != "lmce":
                        raise self.refuse("mca_caps", f"unrecognized MCA capability {cap!r}")
                hvm["mca_caps"] = 1
            firmware = v.string("firmware")
            if firmware is not None and firmware not in _BIOS:
                if "uefi".startswith(firmware):
                    hvm["bios"] = "ovmf"
                elif not "bios".startswith(firmware):
                    hvm["firmware"] = firmware
            elif firmware is not None:
                hvm["bios"] = firmware
        else:
            firmware = v.string("firmware")
            if firmware is not None:
                if "kernel" in b:
                    raise self.refuse("firmware", "both kernel and firmware specified")
                if not ("pvgrub32".startswith(firmware) or "pvgrub64".startswith(firmware)):
                    raise self.refuse("firmware", "only pvgrub32 or pvgrub64 are supported as firmware")
                b["kernel"] = f"{_XEN_FIRMWARE_DIR}/{firmware}.bin"
            if "bootloader" not in b and "kernel" not in b:
                raise ConfigError("neither kernel nor bootloader specified", file=v.file, element="kernel")
        _put(b, "altp2m", self.numbered_enum("altp2m", _ALTP2M, deprecated=False))
        trace = v.long("vmtrace_buf_kb")
        if trace:
            b["vmtrace_buf_kb"] = trace

    def viridian(self, hvm: JSON) -> None:
        raw = self.v.raw("viridian")
        if raw is None:
            return
        if not isinstance(raw, list):
            self.defbool(hvm, "viridian", "viridian")
            return
        enable: set[int] = set()
        disable: set[int] = set()
        for item in (str(i) for i in raw if not isinstance(i, list)):
            if item == "all":
                enable = set(range(64))
            elif item == "defaults":
                hvm["viridian"] = "True"
            else:
                on, off = (disable, enable) if item.startswith("!") else (enable, disable)
                name = item.lstrip("!")
                if name not in _VIRIDIAN:
                    raise self.refuse("viridian", f"unknown viridian enlightenment {name!r}")
                on.add(_VIRIDIAN.index(name))
                off.discard(_VIRIDIAN.index(name))
        if raw:
            hvm["viridian_enable"] = sorted(enable)
            hvm["viridian_disable"] = sorted(disable)

    def resources(self) -> None:
        v, b = self.v, self.b
        ports = v.items("ioports")
        if ports is not None:
            out = []
            for text in ports:
                first, dash, last = text.partition("-")
                try:
                    start = int(first, 16)
                    end = int(last, 16) if dash else start
                except ValueError:
                    raise self.refuse("ioports", f"invalid argument parsing ioport: {text!r}") from None
                if end < start:
                    raise self.refuse("ioports", f"invalid argument parsing ioport: {text!r}")
                out.append({"first": start, "number": end - start + 1})
            b["ioports"] = out
        irqs = v.items("irqs")
        if irqs is not None:
            try:
                b["irqs"] = [int(i, 10) for i in irqs]
            except ValueError:
                raise self.refuse("irqs", f"invalid argument parsing irq in {irqs!r}") from None
        iomem = v.items("iomem")
        if iomem is not None:
            ranges = []
            for text in iomem:
                span, at, gfn = text.partition("@")
                start, comma, number = span.partition(",")
                try:
                    entry: JSON = {"start": int(start, 16), "number": int(number, 16)}
                    if at:
                        entry["gfn"] = int(gfn, 16)
                except ValueError:
                    raise self.refuse("iomem", f"invalid argument parsing iomem: {text!r}") from None
                if not comma:
                    raise self.refuse("iomem", f"invalid argument parsing iomem: {text!r}")
                ranges.append(entry)
            b["iomem"] = ranges

    def devices(self) -> None:
        v = self.v
        disks = v.items("disk")
        if disks is not None:
            built = []
            for text in disks:
                try:
                    built.append(disk_json(diskspec.parse_disk_spec(text)))
                except ValueError as err:
                    raise self.item_error("disk", text, err) from None
            _put(self.cfg, "disks", built or None)
        self.keyed_devices()
        self.channels()
        nics = v.items("vif")
        if nics is not None:
            self.cfg["nics"] = [self.nic(devid, text) for devid, text in enumerate(nics)]
            if not self.cfg["nics"]:
                del self.cfg["nics"]
        if v.has("vif2"):
            v.warn("vif2", "netchannel2 is not supported by xl: ignored (as xl does)")
        vfbs = v.items("vfb")
        if vfbs:
            self.cfg["vfbs"] = [vfb_json(devid, text) for devid, text in enumerate(vfbs)]
            self.cfg["vkbs"] = [{"devid": devid} for devid in range(len(vfbs))]
        for key, field_name, parse in (("usbctrl", "usbctrls", xldevices.usbctrl),
                                       ("usbdev", "usbdevs", xldevices.usbdev)):
            self.device_list(key, field_name, parse)

    def keyed_devices(self) -> None:
        """p9, vtpm, vdispl, pvcalls and vsnd: lists of ``key=value`` specs (``xldevices``)."""
        v = self.v
        for key, field_name, parse in (("p9", "p9s", xldevices.p9), ("vtpm", "vtpms", xldevices.vtpm),
                                       ("vdispl", "vdispls", xldevices.vdispl),
                                       ("pvcalls", "pvcallsifs", xldevices.pvcalls)):
            self.device_list(key, field_name, parse)
        cards = v.raw("vsnd")
        if isinstance(cards, list):
            out = []
            for devid, card in enumerate(cards):
                if not isinstance(card, list):
                    raise self.refuse("vsnd", f"card {devid}: expected a list of card, pcm and stream items")
                items = [str(i) for i in card if not isinstance(i, list)]
                out.append(self.pv_device("vsnd", items, xldevices.vsnd, devid))
            _put(self.cfg, "vsnds", out or None)
        elif cards is not None:
            v.warn("vsnd", "expected a list of cards: ignored (as xl does)")

    def device_list(self, key: str, field_name: str, parse: Any) -> None:
        specs = self.v.items(key)
        if specs is not None:
            _put(self.cfg, field_name, [self.pv_device(key, text, parse, devid)
                                        for devid, text in enumerate(specs)] or None)

    def pv_device(self, key: str, spec: Any, parse: Any, devid: int) -> JSON:
        try:
            return parse(devid, spec)
        except ValueError as err:
            raise self.refuse(key, str(err)) from None

    def channels(self) -> None:
        specs = self.v.items("channel")
        if specs is None:
            return
        out = []
        for devid, text in enumerate(specs):
            chan: JSON = {"devid": devid}
            path, connection = None, None
            for pair in (p for p in text.split(",") if p):
                key, eq, value = (p.strip() for p in pair.partition("="))
                if not eq or not key or not value:
                    raise self.refuse("channel", f"failed to parse channel configuration {pair!r}")
                if key == "backend":
                    chan["backend_domname"] = value
                elif key == "name":
                    chan["name"] = value
                elif key == "path":
                    path = value
                elif key == "connection":
                    if value not in ("pty", "socket"):
                        raise self.refuse("channel", f"unknown channel connection {value!r}")
                    connection = value
                else:
                    self.v.warn("channel", f"unknown channel parameter {key!r}: ignored (as xl does)")
            if connection is None:
                raise self.refuse("channel", f"{text!r}: channel has no connection=")
            if connection == "socket":
                if path is None:
                    raise self.refuse("channel", "channel connection 'socket' requires path=")
                chan["connection.socket"] = {"path": path}
            else:
                chan["connection.pty"] = {}
            out.append(chan)
        _put(self.cfg, "channels", out or None)

    def nic(self, devid: int, text: str) -> JSON:
        nic: JSON = {"devid": devid}
        fields = {"bridge": "bridge", "gatewaydev": "gatewaydev", "netdev": "gatewaydev", "ip": "ip",
                  "script": "script", "backend": "backend_domname", "vifname": "ifname", "model": "model",
                  "forwarddev": "coloft_forwarddev"}
        for token in _tokens(text):
            key, eq, value = token.partition("=")
            if not eq:
                self.v.warn("vif", f"unrecognized argument {token!r}: ignored (as xl does)")
            elif key == "type":
                if value not in ("vif", "ioemu"):
                    self.v.warn("vif", f"invalid type {value!r} (expected vif or ioemu): ignored, as xl does")
                else:
                    nic["nictype"] = "vif" if value == "vif" else "vif_ioemu"
            elif key == "mac":
                nic["mac"] = self.mac(value)
            elif key == "rate":
                try:
                    rate = vifspec.parse_vif_rate(value)
                except ValueError as err:
                    raise self.refuse("vif", str(err)) from None
                nic["rate_bytes_per_interval"] = rate.bytes_per_interval
                nic["rate_interval_usecs"] = rate.interval_usecs
            elif key in ("devid", "mtu"):
                try:
                    nic[key] = int(value, 10)
                except ValueError:
                    raise self.refuse("vif", f"failed to convert {value!r} to a number") from None
            elif key == "accel":
                self.v.warn("vif", "the accel parameter for vifs is not supported by xl: ignored")
            elif key in fields or key.startswith(("colo_",)):
                if key == "netdev":
                    self.v.warn("vif", "netdev is deprecated: use gatewaydev")
                nic[fields.get(key, key)] = value
            else:
                self.v.warn("vif", f"unrecognized argument {token!r}: ignored (as xl does)")
        return nic

    def mac(self, text: str) -> str:
        octets = text.split(":")
        try:
            values = [int(o, 16) for o in octets[:6]]
        except ValueError:
            values = []
        if len(values) != 6 or any(v > 255 for v in values):
            raise self.refuse("vif", f"invalid parameter `mac' {text!r}")
        return ":".join(f"{o:02x}" for o in values)

    def cpuid(self) -> None:
        raw = self.v.raw("cpuid")
        if raw is None:
            return
        try:
            if isinstance(raw, list):
                leaves, problems = cpuid_from_legacy([str(i) for i in raw if not isinstance(i, list)])
            else:
                leaves, problems = cpuid_from_string(str(raw))
        except CpuidError as err:
            raise self.refuse("cpuid", str(err)) from None
        for problem in problems:
            self.v.warn("cpuid", f"{problem}: ignored (as xl does)")
        if leaves:
            self.b["cpuid"] = leaves

    def device_model(self) -> None:
        v, b = self.v, self.b
        if v.string("device_model") is not None:
            v.warn("device_model", "ignored, as xl ignores it: use device_model_override")
        self.string(b, "device_model", "device_model_override")
        version = v.string("device_model_version")
        if version == "qemu-xen-traditional":
            raise self.refuse("device_model_version", _NO_TRADITIONAL)
        if version not in (None, "qemu-xen"):
            raise self.refuse("device_model_version", f"unknown device_model_version {version!r}")
        if version is not None:
            b["device_model_version"] = "qemu_xen"
        elif "device_model" in b:
            v.warn("device_model_override", "given without a device_model_version (as xl warns)")
        stub = v.defbool("device_model_stubdomain_override")
        if stub == "True":
            raise self.refuse("device_model_stubdomain_override",
                              "stub domains need qemu-traditional or a stubdomain image, which Xen 4.17 "
                              "packages do not ship; not supported by this agent")
        _put(b, "device_model_stubdomain", stub)
        self.string(b, "device_model_ssid_label", "device_model_stubdomain_seclabel")
        self.string(b, "device_model_user", "device_model_user")
        for key in ("stubdomain_kernel", "stubdomain_ramdisk", "stubdomain_cmdline"):
            self.string(b, key, key)
        self.number(b, "stubdomain_memkb", "stubdomain_memory", 1024)
        for key, field_name in (("device_model_args", "extra"), ("device_model_args_pv", "extra_pv"),
                                ("device_model_args_hvm", "extra_hvm")):
            raw = v.raw(key)
            if raw is None:
                continue
            if not isinstance(raw, list):
                raise self.refuse(key, "unable to parse: expected a list of arguments")
            _put(b, field_name, [str(a) for a in raw if not isinstance(a, list)] or None)

    def display(self) -> None:
        v = self.v
        if self.kind == "pv" and "vfbs" not in self.cfg:
            if v.long("vnc"):
                vfb: JSON = {"devid": 0, "vnc": read_fields(v, _VNC), "sdl": read_fields(v, _SDL)}
                self.string(vfb, "keymap", "keymap")
                self.cfg["vfbs"] = [vfb]
                self.cfg["vkbs"] = [{"devid": 0}]
            else:
                self.unused(("vnclisten", "vncpasswd", "vncdisplay", "vncunused", "sdl", "opengl", "display",
                             "xauthority", "keymap"), "only used with vnc=1 (or in a vfb= entry)")
        elif self.kind == "pv":
            self.unused(("vnc", "vnclisten", "vncpasswd", "vncdisplay", "vncunused", "sdl", "opengl",
                         "display", "xauthority", "keymap"), "ignored because vfb= is given (as xl does)")
        elif self.kind == "pvh":
            self.unused(("vnc", "vnclisten", "vncpasswd", "vncdisplay", "vncunused", "sdl", "opengl",
                         "display", "xauthority"), "PVH guests have no emulated display: use vfb=")
        else:
            self.variant["vnc"] = read_fields(v, _VNC)
            self.variant["sdl"] = read_fields(v, _SDL)
        self.defbool(self.b, "dm_restrict", "dm_restrict")

    def unused(self, keys: tuple[str, ...], why: str) -> None:
        for key in keys:
            if self.v.has(key):
                self.v.warn(key, why)

    def hvm_devices(self) -> None:
        v, hvm = self.v, self.variant
        hvm_only = ("vga", "stdvga", "hdtype", "spice", "spiceport", "spicetls_port", "spicehost",
                    "spicedisable_ticketing", "spicepasswd", "spiceagent_mouse", "spicevdagent",
                    "spice_clipboard_sharing", "spiceusbredirection", "spice_image_compression",
                    "spice_streaming_video", "nographic", "gfx_passthru", "serial", "boot", "usb",
                    "usbversion", "usbdevice", "vkb_device", "soundhw", "xen_platform_pci", "vendor_device")
        if self.kind != "hvm":
            self.unused(hvm_only, "only HVM guests have it: ignored (as xl does)")
            return
        vga = v.string("vga")
        if vga is not None:
            if vga not in _VGA:
                raise self.refuse("vga", f"unknown vga {vga!r} (expected stdvga, cirrus, none or qxl)")
            hvm["vga"] = {"kind": _VGA[vga]}
        elif (std := v.long("stdvga")) is not None:
            hvm["vga"] = {"kind": "std" if std else "cirrus"}
        else:
            hvm["vga"] = {}
        hdtype = self.enum("hdtype", ("ide", "ahci"))
        _put(hvm, "hdtype", hdtype)
        self.string(hvm, "keymap", "keymap")
        hvm["spice"] = read_fields(v, _SPICE)
        self.defbool(hvm, "nographic", "nographic")
        gfx = v.raw("gfx_passthru")
        if gfx is not None:
            number = v.long("gfx_passthru", quiet=True)
            if number is not None:
                hvm["gfx_passthru"] = "True" if number else "False"
            else:
                hvm["gfx_passthru_kind"] = self.enum("gfx_passthru", ("default", "igd"))
                hvm["gfx_passthru"] = "True"
        for key in ("serial", "usbdevice"):  # a list, or xl's fallback to one value
            many, one = v.list_or_atom(key)
            _put(hvm, f"{key}_list", many)
            _put(hvm, key, one)
        self.string(hvm, "boot", "boot")
        self.defbool(hvm, "usb", "usb")
        self.number(hvm, "usbversion", "usbversion")
        self.defbool(hvm, "vkb_device", "vkb_device")
        soundhw = v.string("soundhw")
        if soundhw is not None:
            if soundhw not in SOUNDHW_MODELS:
                raise self.refuse("soundhw", f"{soundhw!r} is not a sound card libxl 4.17 knows (expected "
                                             f"one of {', '.join(SOUNDHW_MODELS)}): xl passes it on and "
                                             "libxl refuses the guest at create")
            hvm["soundhw"] = soundhw
        self.defbool(hvm, "xen_platform_pci", "xen_platform_pci")
        vnc = hvm.get("vnc", {})
        if vnc.get("listen") and vnc.get("display") and ":" in vnc["listen"]:
            raise self.refuse("vnclisten", "display specified both in vnclisten and vncdisplay")
        vendor = self.enum("vendor_device", ("none", "xenserver"))
        _put(hvm, "vendor_device", vendor)
        hvm["rdm"] = {}

    def tail(self) -> None:
        v, b = self.v, self.b
        gic = self.enum("gic_version", ("default", "v2", "v3"))
        if gic is not None:
            b.setdefault("arch_arm", {})["gic_version"] = gic
        tee = self.enum("tee", ("none", "optee"))
        _put(b, "tee", tee)
        kbs = v.items("vkb")
        if kbs:
            vkbs = self.cfg.setdefault("vkbs", [])
            vkbs += [self.pv_device("vkb", text, xldevices.vkb, len(vkbs) + n) for n, text in enumerate(kbs)]
        self.defbool(self.c, "xend_suspend_evtchn_compat", "xend_suspend_evtchn_compat")
        relaxed = v.defbool("msr_relaxed")
        if relaxed is not None:
            b.setdefault("arch_x86", {})["msr_relaxed"] = relaxed
        vpmu = v.defbool("vpmu")
        _put(b, "vpmu", vpmu)
        b[f"type.{self.kind}"] = self.variant


#: Top-level display keys -> (libxl field, how xl reads the value): libxl_vnc_info, libxl_sdl_info
#: and libxl_spice_info, each filled from its own keys.
_VNC = (("enable", "vnc", "bool"), ("listen", "vnclisten", "str"), ("passwd", "vncpasswd", "str"),
        ("display", "vncdisplay", "num"), ("findunused", "vncunused", "bool"))
_SDL = (("enable", "sdl", "bool"), ("opengl", "opengl", "bool"), ("display", "display", "str"),
        ("xauthority", "xauthority", "str"))
_SPICE = (("enable", "spice", "bool"), ("port", "spiceport", "num"), ("tls_port", "spicetls_port", "num"),
          ("host", "spicehost", "str"), ("disable_ticketing", "spicedisable_ticketing", "bool"),
          ("passwd", "spicepasswd", "str"), ("agent_mouse", "spiceagent_mouse", "bool"),
          ("vdagent", "spicevdagent", "bool"), ("clipboard_sharing", "spice_clipboard_sharing", "bool"),
          ("usbredirection", "spiceusbredirection", "num"),
          ("image_compression", "spice_image_compression", "str"),
          ("streaming_video", "spice_streaming_video", "str"))


def read_fields(v: XlValues, table: tuple[tuple[str, str, str], ...]) -> JSON:
    """One libxl struct from its xl keys, each read as a boolean, a number or a string."""
    read = {"bool": v.defbool, "num": v.long, "str": v.string}
    out: JSON = {}
    for field_name, key, kind in table:
        _put(out, field_name, read[kind](key))
    return out


def _check_last_line(text: str, file: str | None) -> None:
    """xl's lexer needs a newline after a comment: a file whose last line is (or ends in) a comment
    without one is a syntax error to ``xl create``, so it is one here too."""
    if text.endswith("\n"):
        return
    tail = text.rsplit("\n", 1)[-1]
    quote = None
    for ch in tail:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            raise ConfigError("syntax error near '#': xl needs a newline after the last comment",
                              file=file, line=text.count("\n") + 1)


def lay_host_under(config: JSON, host: HostSettings) -> JSON:
    """A copy of ``config`` with the host's xl.conf where the file left a gap, as ``xl create``
    fills them: each vif's default bridge, script, backend and gateway device; the temporary block
    device name; the grant table sizes; claim mode; whether libxl runs the hotplug scripts."""
    out = copy.deepcopy(config)
    for nic in out.get("nics", []):
        for key, value in (("bridge", host.vif_bridge), ("script", host.vif_script),
                           ("backend_domname", host.vif_backend), ("gatewaydev", host.vif_gatewaydev)):
            if value is not None and key not in nic:
                nic[key] = value
    b_info = out["b_info"]
    for key, value in (("blkdev_start", host.blkdev_start), ("max_grant_frames", host.max_grant_frames),
                       ("max_maptrack_frames", host.max_maptrack_frames)):
        if value is not None and key not in b_info:
            b_info[key] = value
    if host.claim_mode is not None:
        b_info["claim_mode"] = "True" if host.claim_mode else "False"
    if host.run_hotplug_scripts is not None:
        out["c_info"]["run_hotplug_scripts"] = "True" if host.run_hotplug_scripts else "False"
    return out


def read_xl_config(text: str, file: str | None = None, host: HostSettings | None = None,
                   max_cpus: int | None = None) -> XlConfig:
    """Build the libxl config of one xl.cfg; raises ``ConfigError`` (file, line, key, why) where
    the agent refuses the file. ``host`` is the host's xl.conf (None: xl's built-in defaults);
    ``max_cpus`` the host's cpu count that cpu lists are cut to (default: ``host.cpus``; unknown:
    nothing is cut)."""
    _check_last_line(text, file)
    values = XlValues(parse_cfg(text, file), file)
    known = max_cpus or (host.cpus if host else None)
    reader = _Reader(values, known or os.cpu_count() or 1, cpus_known=known is not None)
    own = reader.read()
    values.read.add(RUN_STRATEGY_KEY)
    strategy = read_run_strategy(Cfg(values.settings, file))
    for key, setting in values.settings.items():
        if key in values.read:
            continue
        if key in _XM_ONLY:
            instead = _XM_ONLY[key]
            hint = f": use {instead}" if instead else ""
            values.warnings.append(ConfigError(f"an xm key that xl does not read: ignored{hint}", file=file,
                                               line=setting.line, element=key))
        elif key not in XL_KEYS:
            values.warnings.append(ConfigError("unknown key: xl ignores it, so does the agent", file=file,
                                               line=setting.line, element=key))
        else:
            values.warnings.append(ConfigError(f"not used for a {reader.kind} guest: ignored (as xl does)",
                                               file=file, line=setting.line, element=key))
    config = lay_host_under(own, host) if host is not None else own
    return XlConfig(config, values.warnings, own, strategy)


__all__ = ["XlConfig", "XL_KEYS", "SOUNDHW_MODELS", "read_xl_config", "lay_host_under"]
