"""The domain model: the Xen subset of libvirt's domain XML as typed dataclasses.

Every format (domain XML, xl.cfg, xm, sxpr) parses into this model and formats out of it, and the
libxl config builder reads only this model: it is the one contract between the floors above it.
Field names follow libvirt's XML so the mapping stays obvious. Memory is always held in KiB.
Optional fields are ``None`` when the input did not say, so formatters can tell "absent" from
"default" the way libvirt does.
"""

from __future__ import annotations

import re
import uuid as _uuid
from dataclasses import dataclass, field

from libxl.errors import ConfigError

#: The namespace of ``<xen:commandline>`` (device-model pass-through arguments).
XEN_NS = "http://libvirt.org/schemas/domain/xen/1.0"
#: The project's own ``<metadata>`` namespace (desired power state, ...).
XR_NS = "https://xenreconcile.dev/schemas/domain/1.0"

#: Multipliers to KiB for libvirt's memory units (``unit`` attribute; default KiB).
_UNIT_BYTES = {
    "b": 1, "bytes": 1,
    "k": 1024, "kib": 1024, "kb": 1000,
    "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3,
    "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
    "p": 1024**5, "pib": 1024**5, "pb": 1000**5,
    "e": 1024**6, "eib": 1024**6, "eb": 1000**6,
}

OS_TYPES = ("linux", "xen", "hvm", "xenpvh")
LIFECYCLE_ACTIONS = ("destroy", "restart", "preserve", "rename-restart", "coredump-destroy",
                     "coredump-restart")
POWER_STATES = ("running", "paused", "stopped")
#: KubeVirt's run strategies: when the agent (re)starts a guest that is not running (README
#: "Run strategy"). ``Always`` is the default: the desired file says the guest runs.
RUN_STRATEGIES = ("Always", "RerunOnFailure", "Manual", "Halted")
DEFAULT_RUN_STRATEGY = "Always"
#: libvirt's cpuset syntax (``0-3,^2,8``), which xl's ``cpus`` items share.
CPUSET = re.compile(r"\^?\d+(-\d+)?(,\^?\d+(-\d+)?)*")
#: libxl holds memory sizes as uint64 KiB; a larger value could not be passed on (or even printed:
#: Python refuses to convert ints of over 4300 digits to text).
MAX_KIB = 2**64 - 1


def scale_to_kib(value: str | int, unit: str | None) -> int:
    """Convert a libvirt ``<memory unit=...>`` value to KiB, rounding up like libvirt."""
    key = (unit or "KiB").lower()
    if key not in _UNIT_BYTES:
        raise ValueError(f"unknown unit {unit!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"not a whole number: {value!r}") from None
    if number < 0:
        raise ValueError(f"negative size: {value!r}")
    total = number * _UNIT_BYTES[key]
    if total > MAX_KIB * 1024:
        raise ValueError(f"size is over libxl's limit of {MAX_KIB} KiB")
    return (total + 1023) // 1024


def canonical_uuid(text: str) -> str:
    """Accept dashed or 32-hex UUIDs (the seed's HVM guest is written without dashes)."""
    raw = text.strip().replace("-", "")
    if not re.fullmatch(r"[0-9a-fA-F]{32}", raw):
        raise ValueError(f"malformed uuid {text!r}")
    return str(_uuid.UUID(raw))


#: Xen's limits on one domain's vcpus, checked before anything is sized by them (both front ends):
#: HVM_MAX_VCPUS (public/hvm/hvm_info_table.h) for HVM and PVH guests, x86's MAX_VIRT_CPUS for PV.
HVM_MAX_VCPUS = 128
PV_MAX_VCPUS = 8192
#: Xen's NR_CPUS is at most 4095 on x86 (its Kconfig range): no physical cpu has a higher id.
MAX_CPU_ID = 4094


def too_many_vcpus(count: int, kind: str) -> str | None:
    """Why ``count`` vcpus are refused for a guest of libxl type ``kind`` (pv, pvh, hvm), or None."""
    limit = PV_MAX_VCPUS if kind == "pv" else HVM_MAX_VCPUS
    return f"{count} vcpus: Xen allows at most {limit} for {kind.upper()} guests" if count > limit else None


def cpu_beyond_xen(cpu: int) -> str | None:
    """Why a cpu list naming ``cpu`` is refused before its range is expanded, or None."""
    if cpu <= MAX_CPU_ID:
        return None
    return f"cpu {cpu} does not exist: Xen has at most {MAX_CPU_ID + 1} cpus (NR_CPUS)"


#: libxl reads the nil uuid as "none" and makes up a random one: the guest would come back with a
#: new uuid on every create, and the agent would re-create it on every restart.
NIL_UUID_REFUSAL = ("the all-zero uuid means 'no uuid' to libxl, which would give the guest a new random "
                    "one on every create: set a real uuid or leave it out")


def is_nil_uuid(uuid: str) -> bool:
    return uuid.strip("0-") == ""


def canonical_mac(text: str) -> str:
    parts = text.strip().split(":")
    if len(parts) != 6 or not all(re.fullmatch(r"[0-9a-fA-F]{1,2}", p) for p in parts):
        raise ValueError(f"malformed mac address {text!r}")
    return ":".join(p.lower().zfill(2) for p in parts)


@dataclass
class Loader:
    path: str | None = None
    type: str | None = None  # rom | pflash
    readonly: str | None = None  # yes | no


@dataclass
class AcpiTable:
    type: str
    path: str


@dataclass
class OS:
    type: str = "linux"  # linux | xen (PV), hvm, xenpvh
    arch: str | None = None
    machine: str | None = None  # xenpv | xenfv | xenpvh
    loader: Loader | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    root: str | None = None  # xm/xl `root=`; kept apart until formatted into cmdline
    boot: list[str] = field(default_factory=list)  # hd, cdrom, fd, network
    acpi_tables: list[AcpiTable] = field(default_factory=list)
    firmware: str | None = None  # <os firmware='efi'>

    @property
    def is_hvm(self) -> bool:
        return self.type == "hvm"

    @property
    def is_pvh(self) -> bool:
        return self.type == "xenpvh"

    @property
    def is_pv(self) -> bool:
        return self.type in ("linux", "xen")


@dataclass
class VCpu:
    count: int = 1
    current: int | None = None
    placement: str | None = None  # static | auto
    cpuset: str | None = None


@dataclass
class VcpuPin:
    """``<cputune><vcpupin vcpu='N' cpuset='...'>``: xl's per-vCPU ``cpus = [ ... ]`` list item."""
    vcpu: int
    cpuset: str


@dataclass
class Hyperv:
    mode: str | None = None  # custom | passthrough
    #: Feature name -> state ('on'/'off'), in document order (relaxed, vapic, spinlocks...).
    features: dict[str, str] = field(default_factory=dict)
    spinlock_retries: int | None = None


@dataclass
class Features:
    pae: bool = False
    acpi: bool = False
    apic: bool = False
    #: ``<hap/>`` tri-state: None absent, True on, False ``state='off'``.
    hap: bool | None = None
    viridian: bool = False
    hpet: bool | None = None  # legacy xm hpet (libvirt maps to a timer; kept for xm round trips)
    hyperv: Hyperv | None = None
    xen_e820_host: bool | None = None
    xen_passthrough: str | None = None  # state: on | off
    xen_passthrough_mode: str | None = None  # sync_pt | share_pt
    privnet: bool = False

    def any(self) -> bool:
        return any((self.pae, self.acpi, self.apic, self.hap is not None, self.viridian,
                    self.hyperv is not None, self.xen_e820_host is not None,
                    self.xen_passthrough is not None, self.privnet))


@dataclass
class CpuFeature:
    name: str
    policy: str = "require"  # force | require | optional | disable | forbid


@dataclass
class NumaCell:
    id: int
    cpus: str
    memory_kib: int
    distances: dict[int, int] = field(default_factory=dict)


@dataclass
class CPU:
    mode: str | None = None  # host-passthrough | host-model | custom
    match: str | None = None
    check: str | None = None
    model: str | None = None
    features: list[CpuFeature] = field(default_factory=list)
    numa: list[NumaCell] = field(default_factory=list)
    #: xl's legacy ``cpuid = [ "leaf:reg=bits,..." ]`` list, kept verbatim (no domain XML form).
    cpuid_legacy: list[str] = field(default_factory=list)


@dataclass
class Timer:
    name: str
    present: str | None = None  # yes | no
    mode: str | None = None
    tickpolicy: str | None = None


@dataclass
class Clock:
    offset: str = "utc"  # utc | localtime | variable | timezone
    adjustment: str | None = None
    basis: str | None = None
    timezone: str | None = None
    timers: list[Timer] = field(default_factory=list)


@dataclass
class DiskHost:
    name: str
    port: str | None = None
    transport: str | None = None


@dataclass
class Disk:
    type: str = "file"  # file | block | network | volume
    device: str = "disk"  # disk | cdrom | floppy
    driver_name: str | None = None  # phy, file, tap, tap2, qemu
    driver_type: str | None = None  # raw, qcow, qcow2, vhd, aio, qed
    driver_cache: str | None = None
    source: str | None = None  # file path or block device; None: empty cdrom
    source_protocol: str | None = None  # network disks (rbd, nbd, iscsi...)
    source_name: str | None = None
    source_hosts: list[DiskHost] = field(default_factory=list)
    target_dev: str = ""
    target_bus: str | None = None  # xen | ide | scsi | fdc | usb | sata
    readonly: bool = False
    shareable: bool = False
    transient: bool = False
    script: str | None = None  # xl disk script=
    discard: str | None = None
    address: dict[str, str] | None = None  # <address type='drive' .../>
    backend_domain: str | None = None  # xl disk backend= (<backenddomain name=.../>)

    @property
    def is_cdrom(self) -> bool:
        return self.device == "cdrom"


@dataclass
class IPAddress:
    address: str
    family: str | None = None
    prefix: int | None = None


@dataclass
class Interface:
    type: str = "bridge"  # bridge | ethernet | network | hostdev
    mac: str | None = None
    source_bridge: str | None = None
    source_network: str | None = None
    source_portgroup: str | None = None
    source_address: dict[str, str] | None = None  # hostdev interfaces
    script: str | None = None
    model: str | None = None
    ips: list[IPAddress] = field(default_factory=list)
    target_dev: str | None = None  # vifname
    bandwidth_out_average: int | None = None  # KB/s, libvirt's unit
    bandwidth_out_peak: int | None = None
    bandwidth_out_burst: int | None = None
    vlan_tags: list[int] = field(default_factory=list)
    vlan_trunk: bool = False
    virtualport: str | None = None  # openvswitch
    managed: str | None = None
    backend_domain: str | None = None
    rate: str | None = None  # raw xl rate spec when it does not map to bandwidth


@dataclass
class CharDev:
    """serial, parallel, console and channel share libvirt's character-device shape."""
    type: str = "pty"  # pty | file | null | pipe | tcp | udp | unix | dev | stdio | vc
    source_path: str | None = None
    source_mode: str | None = None
    source_host: str | None = None
    source_service: str | None = None
    #: udp has a second (connect) source.
    connect_host: str | None = None
    connect_service: str | None = None
    protocol: str | None = None  # raw | telnet
    target_type: str | None = None  # console: xen | serial; channel: xen
    target_port: int | None = None
    target_name: str | None = None  # channel
    tty: str | None = None  # libvirt's ignored `tty` attribute, tolerated and kept


@dataclass
class Input:
    type: str  # mouse | keyboard | tablet
    bus: str | None = None  # ps2 | usb | xen


@dataclass
class Listen:
    type: str = "address"
    address: str | None = None


@dataclass
class Graphics:
    type: str = "vnc"  # vnc | sdl | spice
    port: int | None = None
    autoport: bool | None = None
    tls_port: int | None = None
    listen: str | None = None
    listens: list[Listen] = field(default_factory=list)
    passwd: str | None = None
    keymap: str | None = None
    display: str | None = None  # sdl
    xauth: str | None = None  # sdl
    fullscreen: bool | None = None  # sdl
    mouse_mode: str | None = None  # spice
    clipboard_copypaste: bool | None = None  # spice
    defaultMode: str | None = None  # noqa: N815 (libvirt's attribute name)


@dataclass
class Sound:
    model: str


@dataclass
class Video:
    model: str = "cirrus"
    vram: int | None = None
    heads: int | None = None
    primary: bool = False


@dataclass
class PCIAddress:
    domain: int = 0
    bus: int = 0
    slot: int = 0
    function: int = 0

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"


@dataclass
class Hostdev:
    mode: str = "subsystem"
    type: str = "pci"
    managed: bool = False
    address: PCIAddress = field(default_factory=PCIAddress)
    write_filtering: bool | None = None  # False: xl's ``permissive=1``
    driver_name: str | None = None  # ``<driver name='xen'/>``: the backend libvirt's libxl driver sets


@dataclass
class Controller:
    type: str  # xenbus | ide | usb | pci | scsi
    index: int = 0
    model: str | None = None
    ports: int | None = None
    max_event_channels: int | None = None
    max_grant_frames: int | None = None


@dataclass
class USBDevice:
    """A host USB device passed through (`usbdev=` / `<hostdev type='usb'>`)."""
    bus: int
    device: int
    managed: bool = False


@dataclass
class Devices:
    emulator: str | None = None
    disks: list[Disk] = field(default_factory=list)
    controllers: list[Controller] = field(default_factory=list)
    interfaces: list[Interface] = field(default_factory=list)
    serials: list[CharDev] = field(default_factory=list)
    parallels: list[CharDev] = field(default_factory=list)
    consoles: list[CharDev] = field(default_factory=list)
    channels: list[CharDev] = field(default_factory=list)
    inputs: list[Input] = field(default_factory=list)
    graphics: list[Graphics] = field(default_factory=list)
    sounds: list[Sound] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    hostdevs: list[Hostdev] = field(default_factory=list)
    usb_hostdevs: list[USBDevice] = field(default_factory=list)
    memballoon: str | None = None  # model: xen | none


@dataclass
class Seclabel:
    """``<seclabel>``: a static label is xl's ``seclabel=`` (the XSM/FLASK context); ``none`` asks
    for nothing."""
    type: str = "static"  # static | none (dynamic labels need a security driver libxl lacks)
    model: str | None = None  # xen
    relabel: str | None = None  # yes | no
    label: str | None = None


@dataclass
class Domain:
    name: str
    type: str = "xen"
    id: int | None = None
    uuid: str | None = None
    title: str | None = None
    description: str | None = None
    memory_kib: int = 0  # <memory>: the maximum (libxl max_memkb)
    current_memory_kib: int | None = None  # <currentMemory>: the balloon target
    max_memory_kib: int | None = None  # <maxMemory> (hotplug ceiling)
    max_memory_slots: int | None = None
    vcpu: VCpu = field(default_factory=VCpu)
    cputune_shares: int | None = None  # xl's cpu_weight (credit scheduler weight)
    vcpupin: list[VcpuPin] = field(default_factory=list)
    os: OS = field(default_factory=OS)
    bootloader: str | None = None
    bootloader_args: str | None = None
    features: Features = field(default_factory=Features)
    cpu: CPU | None = None
    clock: Clock = field(default_factory=Clock)
    on_poweroff: str | None = None
    on_reboot: str | None = None
    on_crash: str | None = None
    devices: Devices = field(default_factory=Devices)
    seclabel: Seclabel | None = None
    #: ``<xen:commandline><xen:arg value=.../>``: extra device-model arguments.
    commandline: list[str] = field(default_factory=list)
    #: Desired power state from the project's ``<metadata>`` (running | paused | stopped).
    power_state: str | None = None
    #: ``<xr:runStrategy>`` / ``xenreconcile_run_strategy``: one of RUN_STRATEGIES, None for the default.
    run_strategy: str | None = None

    @property
    def target_memory_kib(self) -> int:
        """The balloon target: currentMemory when given, else the maximum."""
        return self.current_memory_kib if self.current_memory_kib is not None else self.memory_kib

    @property
    def online_vcpus(self) -> int:
        return self.vcpu.current if self.vcpu.current is not None else self.vcpu.count


__all__ = [
    "XEN_NS", "XR_NS", "CPUSET", "OS_TYPES", "LIFECYCLE_ACTIONS", "POWER_STATES", "RUN_STRATEGIES",
    "DEFAULT_RUN_STRATEGY", "MAX_KIB", "NIL_UUID_REFUSAL", "is_nil_uuid", "HVM_MAX_VCPUS", "PV_MAX_VCPUS",
    "MAX_CPU_ID", "cpu_beyond_xen", "too_many_vcpus", "ConfigError",
    "scale_to_kib", "canonical_uuid", "canonical_mac", "Loader", "AcpiTable", "OS", "VCpu", "VcpuPin",
    "Hyperv", "Features", "CpuFeature", "NumaCell", "CPU", "Timer", "Clock", "DiskHost", "Disk",
    "IPAddress", "Interface", "CharDev", "Input", "Listen", "Graphics", "Sound", "Video",
    "PCIAddress", "Hostdev", "Controller", "USBDevice", "Devices", "Seclabel", "Domain",
]
