"""libvirt domain XML (the Xen subset) <-> the domain model.

Desired-state files come from operators' repositories, so the parser is hardened the way untrusted
XML must be: no entity expansion, no DTD loading, no network, a size cap, and any document that
declares entities (XXE, billion laughs) is refused outright rather than parsed "safely".

The parser reflects the document: fields the XML leaves out stay ``None`` in the model, and the
formatter (``domxml_format``, re-exported here) writes exactly what the model holds, in libvirt's
element and attribute order, so ``parse -> format -> parse`` is the identity and output produced
from libvirt's own files compares equal to them. Filling in libvirt's driver defaults (xenbus
controller, implicit inputs, ...) is the job of the converters, not of this module.

Every rejection is a ``ConfigError`` naming file, line and element, e.g.
``guest.xml:12: <memory unit='XB'>: unknown unit 'XB'``.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import NoReturn

from lxml import etree

from libxl.domain.formats.domxml_format import domain_node, format_domain_xml
from libxl.domain.formats.xmlshape import Lost, describe, element_line, lost, node_shape
from libxl.domain.model import (
    CPU,
    CPUSET,
    LIFECYCLE_ACTIONS,
    OS,
    OS_TYPES,
    POWER_STATES,
    RUN_STRATEGIES,
    XEN_NS,
    XR_NS,
    AcpiTable,
    CharDev,
    Clock,
    Controller,
    CpuFeature,
    Devices,
    Disk,
    DiskHost,
    Domain,
    Features,
    Graphics,
    Hostdev,
    Hyperv,
    Input,
    Interface,
    IPAddress,
    Listen,
    Loader,
    NumaCell,
    PCIAddress,
    Seclabel,
    Sound,
    Timer,
    USBDevice,
    VCpu,
    VcpuPin,
    Video,
    canonical_mac,
    canonical_uuid,
    scale_to_kib,
)
from libxl.errors import TOKEN_LIMIT, ConfigError

#: Largest accepted document. Real domain XML is a few KiB; the cap bounds parser work and memory.
MAX_XML_BYTES = 1024 * 1024

DISK_TYPES = ("file", "block", "network")
DISK_DEVICES = ("disk", "cdrom", "floppy")
DISK_BUSES = ("xen", "ide", "scsi", "fdc", "usb", "sata", "virtio")
INTERFACE_TYPES = ("bridge", "ethernet", "network", "hostdev")
CHARDEV_TYPES = ("pty", "file", "null", "pipe", "tcp", "udp", "unix", "dev", "stdio", "vc", "spicevmc")
GRAPHICS_TYPES = ("vnc", "sdl", "spice")
INPUT_TYPES = ("mouse", "keyboard", "tablet")
INPUT_BUSES = ("ps2", "usb", "xen", "virtio")
BOOT_DEVS = ("hd", "cdrom", "fd", "network")
CONTROLLER_TYPES = ("xenbus", "ide", "fdc", "scsi", "sata", "usb", "pci", "virtio-serial", "ccid", "isa")
SOUND_MODELS = ("sb16", "es1370", "pcspk", "ac97", "ich6", "ich7", "ich9", "usb", "ich")
VIDEO_MODELS = ("vga", "cirrus", "vmvga", "xen", "vbox", "qxl", "virtio", "gop", "bochs", "ramfb", "none")
MEMBALLOON_MODELS = ("xen", "virtio", "none")
CLOCK_OFFSETS = ("utc", "localtime", "variable", "timezone")
TIMER_NAMES = ("platform", "pit", "rtc", "hpet", "tsc", "kvmclock", "hypervclock", "armvtimer")
CPU_MODES = ("custom", "host-model", "host-passthrough", "maximum")
CPU_FEATURE_POLICIES = ("force", "require", "optional", "disable", "forbid")
ON_OFF = ("on", "off")


# ---- reading ---------------------------------------------------------------------------------

_LONG_WORD = re.compile(rf"\S{{{TOKEN_LIMIT + 1},}}")
_INTERNAL_SUBSET = re.compile(r"<!DOCTYPE\b[^>\[]*\[")


def _harden(data: str | bytes, file: str | None) -> etree._Element:
    """Parse with every dangerous libxml2 feature off; refuse entity declarations and any other
    internal DTD subset."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > MAX_XML_BYTES:
        raise ConfigError(f"document is {len(raw)} bytes, over the {MAX_XML_BYTES} byte limit", file=file)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                             dtd_validation=False, remove_comments=True, remove_pis=True)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as err:
        reason = re.sub(r", line \d+, column \d+$", "", err.msg)
        # libxml2 quotes names from the document: each is cut like any offending token
        reason = _LONG_WORD.sub(lambda m: m.group()[:TOKEN_LIMIT] + "...", reason)
        raise ConfigError(f"not well-formed XML: {reason}", file=file, line=err.lineno) from None
    docinfo = root.getroottree().docinfo
    dtd = docinfo.internalDTD
    if dtd is not None and any(True for _ in dtd.iterentities()):
        at = raw.find(b"<!ENTITY")
        raise ConfigError("entity declarations are not allowed (XXE / entity expansion)", file=file,
                          line=raw[:at].count(b"\n") + 1 if at >= 0 else None)
    if docinfo.system_url or docinfo.public_id:
        raise ConfigError("external DTD references are not allowed", file=file, line=1)
    text = raw.decode(docinfo.encoding or "utf-8", "replace") if docinfo.doctype else ""
    if (subset := _INTERNAL_SUBSET.search(text)) is not None:
        # ``<!ATTLIST>`` defaults would add attributes nobody reviewing the file can see
        raise ConfigError("a DOCTYPE with an internal subset ([...]) is not allowed: declarations could "
                          "add attributes a reviewer cannot see", file=file,
                          line=text.count("\n", 0, subset.start()) + 1)
    return root


class _Reader:
    """Element accessors that turn every bad value into a located ConfigError."""

    def __init__(self, file: str | None) -> None:
        self.file = file

    def error(self, el: etree._Element, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=el.sourceline, element=describe(el))

    def children(self, el: etree._Element, tag: str) -> Iterator[etree._Element]:
        children: Iterator[etree._Element] = el.iterchildren(tag)
        return children

    def one(self, el: etree._Element, tag: str) -> etree._Element | None:
        """The single child ``tag``; a second one is an error rather than silently ignored."""
        found = list(el.iterchildren(tag))
        if len(found) > 1:
            raise self.error(found[1], f"duplicate <{etree.QName(tag).localname}>")
        return found[0] if found else None

    def text(self, el: etree._Element | None, *, strip: bool = True) -> str | None:
        if el is None:
            return None
        value = el.text or ""
        return value.strip() if strip else value

    def child_text(self, el: etree._Element, tag: str, *, strip: bool = True) -> str | None:
        return self.text(self.one(el, tag), strip=strip)

    def enum(self, el: etree._Element, attr: str, allowed: tuple[str, ...],
             default: str | None = None) -> str | None:
        value = el.get(attr)
        if value is None:
            return default
        if value not in allowed:
            raise self.error(el, f"{attr} must be one of {', '.join(allowed)}, not {value!r}")
        return str(value)

    def text_enum(self, el: etree._Element, allowed: tuple[str, ...]) -> str:
        value = self.text(el) or ""
        if value not in allowed:
            raise self.error(el, f"must be one of {', '.join(allowed)}, not {value!r}")
        return value

    def yesno(self, el: etree._Element, attr: str) -> bool | None:
        value = self.enum(el, attr, ("yes", "no"))
        return None if value is None else value == "yes"

    def onoff(self, el: etree._Element, attr: str = "state") -> str | None:
        return self.enum(el, attr, ON_OFF)

    def to_int(self, el: etree._Element, value: str, what: str, minimum: int | None,
               maximum: int | None) -> int:
        text = value.strip()
        try:
            number = int(text, 16) if text.lower().startswith("0x") else int(text, 10)
        except ValueError:
            raise self.error(el, f"{what} must be an integer, not {value!r}") from None
        if minimum is not None and number < minimum:
            raise self.error(el, f"{what} must be at least {minimum}, not {number}")
        if maximum is not None and number > maximum:
            raise self.error(el, f"{what} must be at most {maximum}, not {number}")
        return number

    def int_attr(self, el: etree._Element, attr: str, minimum: int | None = 0,
                 maximum: int | None = None) -> int | None:
        value = el.get(attr)
        return None if value is None else self.to_int(el, value, attr, minimum, maximum)

    def req_attr(self, el: etree._Element, attr: str) -> str:
        value = el.get(attr)
        if value is None or not value.strip():
            raise self.error(el, f"missing {attr} attribute")
        return str(value)

    def req_int(self, el: etree._Element, attr: str, minimum: int | None = 0,
                maximum: int | None = None) -> int:
        return self.to_int(el, self.req_attr(el, attr), attr, minimum, maximum)

    def missing(self, el: etree._Element, attr: str) -> NoReturn:
        raise self.error(el, f"missing {attr} attribute")

    def int_text(self, el: etree._Element, minimum: int | None = 1) -> int:
        return self.to_int(el, el.text or "", "value", minimum, None)

    def kib(self, el: etree._Element, value: str | None, unit_attr: str = "unit") -> int:
        unit = el.get(unit_attr)
        try:
            return scale_to_kib(value if value is not None else "", unit)
        except ValueError as err:
            raise self.error(el, str(err)) from None


def xml_tree(data: str | bytes, file: str | None = None) -> etree._Element:
    """The hardened parse of ``data`` alone (lines kept), for pointing at its elements."""
    return _harden(data, file)


def locate_error(err: ConfigError, data: str | bytes, file: str) -> ConfigError:
    """``err`` (from the libxl builder, which knows the model, not the document) with ``file`` and
    the line of the element it names in ``data``, so every refusal is one located line."""
    err.located(file)
    if err.line is None and err.element:
        with contextlib.suppress(ConfigError):  # unparsable data: its own error comes first
            err.line = element_line(_harden(data, file), err.element)
    return err


#: Why an element or attribute the parser does not carry into the model is refused.
NOT_SUPPORTED = "not supported by this agent"


def parse_domain_xml(data: str | bytes, file: str | None = None, *,
                     unsupported: list[Lost] | None = None) -> Domain:
    """Parse libvirt domain XML into a Domain; raises ConfigError with file/line on bad input.

    Nothing is dropped silently: an element or attribute the model has no place for (a serial
    ``<log>``, a USB ``<vendor>``...) is refused with its line, or, when the caller passes an
    ``unsupported`` list (the converters, which report losses instead), appended to it.
    """
    root = _harden(data, file)
    dom = _DomainParser(file).domain(root)
    problems = lost(root, node_shape(domain_node(dom)), values=False)
    if unsupported is not None:
        unsupported.extend(problems)
    elif problems:
        raise problems[0].error(file, NOT_SUPPORTED)
    return dom


class _DomainParser(_Reader):
    def domain(self, root: etree._Element) -> Domain:
        if root.tag != "domain":
            raise self.error(root, "root element must be <domain>")
        if root.get("type") is None:
            raise self.error(root, "missing type attribute (only type='xen' domains are managed)")
        if root.get("type") != "xen":
            raise self.error(root, f"domain type must be 'xen', not {root.get('type')!r}")
        name = self.child_text(root, "name")
        if not name:
            raise self.error(root, "missing <name>")
        if "/" in name:
            raise self.error(self.one(root, "name"), f"name must not contain '/': {name!r}")
        dom = Domain(name=name, id=self.int_attr(root, "id", minimum=-1))
        uuid_el = self.one(root, "uuid")
        if uuid_el is not None:
            try:
                dom.uuid = canonical_uuid(self.text(uuid_el) or "")
            except ValueError as err:
                raise self.error(uuid_el, str(err)) from None
        dom.title = self.child_text(root, "title", strip=False)
        dom.description = self.child_text(root, "description", strip=False)
        dom.power_state, dom.run_strategy = self._lifecycle(root)
        self._memory(root, dom)
        self._vcpu(root, dom)
        if (tune := self.one(root, "cputune")) is not None:
            if (el := self.one(tune, "shares")) is not None:
                dom.cputune_shares = self.int_text(el, minimum=0)
            for pin in self.children(tune, "vcpupin"):
                cpuset = self.req_attr(pin, "cpuset")
                if not CPUSET.fullmatch(cpuset):
                    raise self.error(pin, f"malformed cpuset {cpuset!r}")
                dom.vcpupin.append(VcpuPin(vcpu=self.req_int(pin, "vcpu"), cpuset=cpuset))
        dom.bootloader = self.child_text(root, "bootloader")
        dom.bootloader_args = self.child_text(root, "bootloader_args", strip=False)
        dom.os = self._os(root)
        if (el := self.one(root, "features")) is not None:
            dom.features = self._features(el)
        if (el := self.one(root, "cpu")) is not None:
            dom.cpu = self._cpu(el)
        if (el := self.one(root, "clock")) is not None:
            dom.clock = self._clock(el)
        for event in ("on_poweroff", "on_reboot", "on_crash"):
            if (el := self.one(root, event)) is not None:
                setattr(dom, event, self.text_enum(el, LIFECYCLE_ACTIONS))
        if (el := self.one(root, "devices")) is not None:
            dom.devices = self._devices(el)
        if (sec := self.one(root, "seclabel")) is not None:
            dom.seclabel = Seclabel(type=self.enum(sec, "type", ("static", "none")) or "static",
                                    model=sec.get("model"), relabel=self.enum(sec, "relabel", ("yes", "no")),
                                    label=self.child_text(sec, "label"))
            if dom.seclabel.type == "static" and not dom.seclabel.label:
                raise self.error(sec, "a static seclabel needs a <label>")
        dom.commandline = self._commandline(root)
        return dom

    def _lifecycle(self, root: etree._Element) -> tuple[str | None, str | None]:
        """The project's ``<metadata>``: ``xr:state`` (desired power state) and ``xr:runStrategy``."""
        meta = self.one(root, "metadata")
        if meta is None:
            return None, None
        state_el = self.one(meta, f"{{{XR_NS}}}state")
        strategy_el = self.one(meta, f"{{{XR_NS}}}runStrategy")
        state = None if state_el is None else self.text_enum(state_el, POWER_STATES)
        strategy = None if strategy_el is None else self.text_enum(strategy_el, RUN_STRATEGIES)
        if strategy == "Halted" and state not in (None, "stopped"):
            assert strategy_el is not None
            raise self.error(strategy_el, "runStrategy Halted keeps the guest stopped; "
                                          f"xr:state says {state!r}")
        return state, strategy

    def _memory(self, root: etree._Element, dom: Domain) -> None:
        mem = self.one(root, "memory")
        if mem is None:
            raise self.error(root, "missing <memory>")
        dom.memory_kib = self.kib(mem, mem.text)
        if dom.memory_kib <= 0:
            raise self.error(mem, "memory must be positive")
        if (cur := self.one(root, "currentMemory")) is not None:
            dom.current_memory_kib = self.kib(cur, cur.text)
        if (top := self.one(root, "maxMemory")) is not None:
            dom.max_memory_kib = self.kib(top, top.text)
            dom.max_memory_slots = self.int_attr(top, "slots")

    def _vcpu(self, root: etree._Element, dom: Domain) -> None:
        el = self.one(root, "vcpu")
        if el is None:
            return
        vcpu = VCpu(count=self.int_text(el), current=self.int_attr(el, "current", minimum=1),
                    placement=self.enum(el, "placement", ("static", "auto")), cpuset=el.get("cpuset"))
        if vcpu.current is not None and vcpu.current > vcpu.count:
            raise self.error(el, f"current {vcpu.current} exceeds the vcpu count {vcpu.count}")
        if vcpu.cpuset is not None and not CPUSET.fullmatch(vcpu.cpuset):
            raise self.error(el, f"malformed cpuset {vcpu.cpuset!r}")
        dom.vcpu = vcpu

    def _os(self, root: etree._Element) -> OS:
        os_el = self.one(root, "os")
        type_el = None if os_el is None else self.one(os_el, "type")
        if os_el is None or type_el is None:
            raise self.error(root if os_el is None else os_el, "missing <os><type>")
        os = OS(type=self.text_enum(type_el, OS_TYPES), arch=type_el.get("arch"),
                machine=type_el.get("machine"), firmware=self.enum(os_el, "firmware", ("bios", "efi")))
        if (el := self.one(os_el, "loader")) is not None:
            os.loader = Loader(path=self.text(el) or None, type=self.enum(el, "type", ("rom", "pflash")),
                               readonly=self.enum(el, "readonly", ("yes", "no")))
        os.kernel = self.child_text(os_el, "kernel")
        os.initrd = self.child_text(os_el, "initrd")
        os.cmdline = self.child_text(os_el, "cmdline", strip=False)
        os.root = self.child_text(os_el, "root")
        if (acpi := self.one(os_el, "acpi")) is not None:
            os.acpi_tables = [AcpiTable(type=self.enum(t, "type", ("slic", "msdm", "raw"), "raw") or "raw",
                                        path=self.text(t) or "") for t in self.children(acpi, "table")]
        os.boot = [self.enum(b, "dev", BOOT_DEVS) or self.missing(b, "dev")
                   for b in self.children(os_el, "boot")]
        return os

    def _features(self, el: etree._Element) -> Features:
        feats = Features()
        for child in el.iterchildren(tag=etree.Element):
            tag = child.tag
            if tag in ("pae", "acpi", "apic", "viridian", "privnet"):
                setattr(feats, tag, self.onoff(child) != "off")
            elif tag == "hap":
                feats.hap = self.onoff(child) != "off"
            elif tag == "hyperv":
                feats.hyperv = self._hyperv(child)
            elif tag == "xen":
                self._xen_features(child, feats)
        return feats

    def _hyperv(self, el: etree._Element) -> Hyperv:
        hv = Hyperv(mode=self.enum(el, "mode", ("custom", "passthrough")))
        for child in el.iterchildren(tag=etree.Element):
            hv.features[child.tag] = self.onoff(child) or "on"
            if child.tag == "spinlocks":
                hv.spinlock_retries = self.int_attr(child, "retries", minimum=4095)
        return hv

    def _xen_features(self, el: etree._Element, feats: Features) -> None:
        if (e820 := self.one(el, "e820_host")) is not None:
            feats.xen_e820_host = self.onoff(e820) != "off"
        if (pt := self.one(el, "passthrough")) is not None:
            feats.xen_passthrough = self.onoff(pt) or "on"
            feats.xen_passthrough_mode = self.enum(pt, "mode", ("sync_pt", "share_pt"))

    def _cpu(self, el: etree._Element) -> CPU:
        cpu = CPU(mode=self.enum(el, "mode", CPU_MODES),
                  match=self.enum(el, "match", ("minimum", "exact", "strict")),
                  check=self.enum(el, "check", ("none", "partial", "full")),
                  model=self.child_text(el, "model"))
        for feat in self.children(el, "feature"):
            cpu.features.append(CpuFeature(name=self.req_attr(feat, "name"),
                                           policy=self.enum(feat, "policy", CPU_FEATURE_POLICIES, "require")
                                           or "require"))
        if (numa := self.one(el, "numa")) is not None:
            for cell in self.children(numa, "cell"):
                node = NumaCell(id=self.req_int(cell, "id"), cpus=self.req_attr(cell, "cpus"),
                                memory_kib=self.kib(cell, self.req_attr(cell, "memory")))
                if (dist := self.one(cell, "distances")) is not None:
                    for sib in self.children(dist, "sibling"):
                        node.distances[self.req_int(sib, "id")] = self.req_int(sib, "value", 10, 255)
                cpu.numa.append(node)
        return cpu

    def _clock(self, el: etree._Element) -> Clock:
        # Legacy documents (the seed's HVM guest) say <clock sync='localtime'/>: libvirt reads it
        # as the offset, so must we, or the guest's clock silently moves to UTC.
        offset_attr = "offset" if el.get("offset") is not None or el.get("sync") is None else "sync"
        clock = Clock(offset=self.enum(el, offset_attr, CLOCK_OFFSETS, "utc") or "utc",
                      basis=self.enum(el, "basis", ("utc", "localtime")), timezone=el.get("timezone"))
        adjustment = el.get("adjustment")
        if adjustment is not None and adjustment != "reset":
            self.to_int(el, adjustment, "adjustment", None, None)
        clock.adjustment = adjustment
        if clock.offset == "timezone" and not clock.timezone:
            raise self.error(el, "offset 'timezone' needs a timezone attribute")
        for timer in self.children(el, "timer"):
            clock.timers.append(Timer(
                name=self.enum(timer, "name", TIMER_NAMES) or self.missing(timer, "name"),
                present=self.enum(timer, "present", ("yes", "no")),
                mode=self.enum(timer, "mode", ("auto", "native", "emulate", "paravirt", "smpsafe")),
                tickpolicy=self.enum(timer, "tickpolicy", ("delay", "catchup", "merge", "discard"))))
        return clock

    # ---- devices -----------------------------------------------------------------------------

    def _devices(self, el: etree._Element) -> Devices:
        devs = Devices(emulator=self.child_text(el, "emulator"))
        devs.disks = [self._disk(d) for d in self.children(el, "disk")]
        devs.controllers = [self._controller(c) for c in self.children(el, "controller")]
        devs.interfaces = [self._interface(i) for i in self.children(el, "interface")]
        for tag, attr in (("serial", "serials"), ("parallel", "parallels"), ("console", "consoles"),
                          ("channel", "channels")):
            setattr(devs, attr, [self._chardev(c) for c in self.children(el, tag)])
        devs.inputs = [Input(type=self.enum(i, "type", INPUT_TYPES) or self.missing(i, "type"),
                             bus=self.enum(i, "bus", INPUT_BUSES)) for i in self.children(el, "input")]
        devs.graphics = [self._graphics(g) for g in self.children(el, "graphics")]
        devs.sounds = [Sound(model=self.enum(s, "model", SOUND_MODELS) or self.missing(s, "model"))
                       for s in self.children(el, "sound")]
        devs.videos = [self._video(v) for v in self.children(el, "video")]
        for hostdev in self.children(el, "hostdev"):
            dev = self._hostdev(hostdev)
            if isinstance(dev, USBDevice):
                devs.usb_hostdevs.append(dev)
            else:
                devs.hostdevs.append(dev)
        if (balloon := self.one(el, "memballoon")) is not None:
            devs.memballoon = self.enum(balloon, "model", MEMBALLOON_MODELS) or self.missing(balloon, "model")
        return devs

    def _disk(self, el: etree._Element) -> Disk:
        disk = Disk(type=self.enum(el, "type", DISK_TYPES, "file") or "file",
                    device=self.enum(el, "device", DISK_DEVICES, "disk") or "disk")
        if (drv := self.one(el, "driver")) is not None:
            disk.driver_name, disk.driver_type = drv.get("name"), drv.get("type")
            disk.driver_cache, disk.discard = drv.get("cache"), drv.get("discard")
        if (src := self.one(el, "source")) is not None:
            if disk.type == "network":
                disk.source_protocol = self.req_attr(src, "protocol")
                disk.source_name = src.get("name")
                disk.source_hosts = [DiskHost(name=self.req_attr(h, "name"), port=h.get("port"),
                                              transport=h.get("transport"))
                                     for h in self.children(src, "host")]
            else:
                disk.source = src.get("file" if disk.type == "file" else "dev")
        elif disk.device == "disk":
            raise self.error(el, "disk has no <source>")
        disk.backend_domain = self._attr_of(el, "backenddomain", "name")
        # The disk's hotplug script (xl's disk script=): Qubes' libvirt writes <script path>.
        disk.script = self._attr_of(el, "script", "path")
        target = self.one(el, "target")
        if target is None or not target.get("dev"):
            raise self.error(el if target is None else target, "disk has no <target dev=...>")
        disk.target_dev = target.get("dev", "")
        disk.target_bus = self.enum(target, "bus", DISK_BUSES)
        disk.readonly = self.one(el, "readonly") is not None
        disk.shareable = self.one(el, "shareable") is not None
        disk.transient = self.one(el, "transient") is not None
        if (addr := self.one(el, "address")) is not None:
            disk.address = dict(addr.attrib)
        return disk

    def _controller(self, el: etree._Element) -> Controller:
        return Controller(type=self.enum(el, "type", CONTROLLER_TYPES) or self.missing(el, "type"),
                          index=self.int_attr(el, "index") or 0, model=el.get("model"),
                          ports=self.int_attr(el, "ports", minimum=1),
                          max_event_channels=self.int_attr(el, "maxEventChannels", minimum=1),
                          max_grant_frames=self.int_attr(el, "maxGrantFrames", minimum=1))

    def _interface(self, el: etree._Element) -> Interface:
        nic = Interface(type=self.enum(el, "type", INTERFACE_TYPES) or self.missing(el, "type"),
                        managed=self.enum(el, "managed", ("yes", "no")))
        if (mac := self.one(el, "mac")) is not None:
            try:
                nic.mac = canonical_mac(self.req_attr(mac, "address"))
            except ValueError as err:
                raise self.error(mac, str(err)) from None
        if (src := self.one(el, "source")) is not None:
            nic.source_bridge, nic.source_network = src.get("bridge"), src.get("network")
            nic.source_portgroup = src.get("portgroup")
            if (addr := self.one(src, "address")) is not None:
                nic.source_address = dict(addr.attrib)
        if nic.type == "bridge" and not nic.source_bridge:
            raise self.error(el, "bridge interface needs <source bridge=...>")
        if nic.type == "network" and not nic.source_network:
            raise self.error(el, "network interface needs <source network=...>")
        if (vlan := self.one(el, "vlan")) is not None:
            nic.vlan_trunk = bool(self.yesno(vlan, "trunk"))
            nic.vlan_tags = [self.req_int(t, "id", 0, 4095) for t in self.children(vlan, "tag")]
        if (port := self.one(el, "virtualport")) is not None:
            nic.virtualport = port.get("type")
        if (bw := self.one(el, "bandwidth")) is not None and (out := self.one(bw, "outbound")) is not None:
            nic.bandwidth_out_average = self.int_attr(out, "average", minimum=1)
            nic.bandwidth_out_peak = self.int_attr(out, "peak", minimum=1)
            nic.bandwidth_out_burst = self.int_attr(out, "burst", minimum=1)
        nic.ips = [IPAddress(address=self.req_attr(ip, "address"),
                             family=self.enum(ip, "family", ("ipv4", "ipv6")),
                             prefix=self.int_attr(ip, "prefix", maximum=128))
                   for ip in self.children(el, "ip")]
        nic.script = self._attr_of(el, "script", "path")
        nic.target_dev = self._attr_of(el, "target", "dev")
        nic.model = self._attr_of(el, "model", "type")
        nic.backend_domain = self._attr_of(el, "backenddomain", "name")
        return nic

    def _attr_of(self, el: etree._Element, tag: str, attr: str) -> str | None:
        child = self.one(el, tag)
        return None if child is None else child.get(attr)

    def _chardev(self, el: etree._Element) -> CharDev:
        dev = CharDev(type=self.enum(el, "type", CHARDEV_TYPES, "pty") or "pty", tty=el.get("tty"))
        for src in self.children(el, "source"):
            mode = self.enum(src, "mode", ("bind", "connect"))
            if dev.type == "udp" and (mode or "connect") == "connect":
                dev.connect_host, dev.connect_service = src.get("host"), src.get("service")
                continue
            dev.source_mode, dev.source_path = mode, src.get("path")
            dev.source_host, dev.source_service = src.get("host"), src.get("service")
        if dev.type in ("file", "pipe", "dev", "unix") and not dev.source_path:
            raise self.error(el, f"{dev.type} {el.tag} needs <source path=...>")
        if dev.type == "tcp" and not dev.source_service:
            raise self.error(el, "tcp chardev needs <source service=...>")
        if (proto := self.one(el, "protocol")) is not None:
            dev.protocol = self.enum(proto, "type", ("raw", "telnet", "telnets", "tls"))
        if (target := self.one(el, "target")) is not None:
            dev.target_type = target.get("type")
            dev.target_port = self.int_attr(target, "port")
            dev.target_name = target.get("name")
        return dev

    def _graphics(self, el: etree._Element) -> Graphics:
        gfx = Graphics(type=self.enum(el, "type", GRAPHICS_TYPES) or self.missing(el, "type"),
                       port=self.int_attr(el, "port", minimum=-1, maximum=65535),
                       autoport=self.yesno(el, "autoport"),
                       tls_port=self.int_attr(el, "tlsPort", minimum=-1, maximum=65535),
                       listen=el.get("listen"), passwd=el.get("passwd"), keymap=el.get("keymap"),
                       display=el.get("display"), xauth=el.get("xauth"),
                       fullscreen=self.yesno(el, "fullscreen"),
                       defaultMode=self.enum(el, "defaultMode", ("any", "secure", "insecure")))
        gfx.listens = [Listen(type=self.enum(lst, "type", ("address", "network", "socket", "none"),
                                             "address") or "address", address=lst.get("address"))
                       for lst in self.children(el, "listen")]
        if (mouse := self.one(el, "mouse")) is not None:
            gfx.mouse_mode = self.enum(mouse, "mode", ("server", "client"))
        if (clip := self.one(el, "clipboard")) is not None:
            gfx.clipboard_copypaste = self.yesno(clip, "copypaste")
        return gfx

    def _video(self, el: etree._Element) -> Video:
        model = self.one(el, "model")
        if model is None:
            return Video()
        return Video(model=self.enum(model, "type", VIDEO_MODELS, "cirrus") or "cirrus",
                     vram=self.int_attr(model, "vram"), heads=self.int_attr(model, "heads", minimum=1),
                     primary=bool(self.yesno(model, "primary")))

    def _hostdev(self, el: etree._Element) -> Hostdev | USBDevice:
        self.enum(el, "mode", ("subsystem",))
        kind = self.enum(el, "type", ("pci", "usb")) or self.missing(el, "type")
        managed = bool(self.yesno(el, "managed"))
        src = self.one(el, "source")
        addr = None if src is None else self.one(src, "address")
        if src is None or addr is None:
            raise self.error(el, "hostdev needs <source><address .../></source>")
        if kind == "usb":
            return USBDevice(bus=self.req_int(addr, "bus"), device=self.req_int(addr, "device"),
                             managed=managed)
        pci = PCIAddress(domain=self.int_attr(addr, "domain", maximum=0xFFFF) or 0,
                         bus=self.req_int(addr, "bus", 0, 0xFF), slot=self.req_int(addr, "slot", 0, 0x1F),
                         function=self.req_int(addr, "function", 0, 7))
        driver = self.one(el, "driver")
        return Hostdev(type=kind, managed=managed, address=pci,
                       write_filtering=self.yesno(src, "writeFiltering"),
                       driver_name=None if driver is None else self.enum(driver, "name", ("xen",)))

    def _commandline(self, root: etree._Element) -> list[str]:
        args: list[str] = []
        for cmd in root.iterchildren(f"{{{XEN_NS}}}commandline"):
            for arg in cmd.iterchildren(f"{{{XEN_NS}}}arg"):
                value = arg.get("value")
                if value is None:
                    raise self.error(arg, "missing value attribute")
                args.append(value)
        return args


__all__ = ["MAX_XML_BYTES", "NOT_SUPPORTED", "xml_tree", "locate_error", "describe", "parse_domain_xml",
           "format_domain_xml"]
