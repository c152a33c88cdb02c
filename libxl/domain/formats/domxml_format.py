"""Domain model -> libvirt domain XML, laid out the way libvirt writes it.

Two-space indent, single-quoted attributes, libvirt's element order (name, uuid, title,
description, metadata, maxMemory, memory, currentMemory, vcpu, cputune, bootloader, os, features,
cpu, clock, lifecycle, devices, xen:commandline) and attribute order, memory always in KiB. The
formatter writes exactly what the model holds and adds no defaults, so parse -> format -> parse is
the identity and libvirt's own output files come back byte for byte.
"""

from __future__ import annotations

from libxl.domain.formats.xmlwriter import Node, render
from libxl.domain.model import (
    CPU,
    OS,
    XEN_NS,
    XR_NS,
    CharDev,
    Clock,
    Devices,
    Disk,
    Domain,
    Features,
    Graphics,
    Interface,
)


def _yes(flag: bool | None) -> str | None:
    return None if flag is None else ("yes" if flag else "no")


def _num(value: int | None) -> str | None:
    return None if value is None else str(value)


def format_domain_xml(dom: Domain) -> str:
    """libvirt-style XML: two-space indent, single quotes, libvirt's element and attribute order."""
    return render(domain_node(dom))


def domain_node(dom: Domain) -> Node:
    """The element tree ``format_domain_xml`` renders."""
    root = Node("domain", [("type", dom.type), ("id", _num(dom.id))])
    if dom.commandline:
        root.attrs.append(("xmlns:xen", XEN_NS))
    root.leaf("name", text=dom.name)
    root.leaf("uuid", text=dom.uuid)
    root.leaf("title", text=dom.title)
    root.leaf("description", text=dom.description)
    if dom.power_state or dom.run_strategy:
        meta = root.add("metadata")
        meta.leaf("xr:state", [("xmlns:xr", XR_NS)], text=dom.power_state)
        meta.leaf("xr:runStrategy", [("xmlns:xr", XR_NS)], text=dom.run_strategy)
    if dom.max_memory_kib is not None:
        root.leaf("maxMemory", [("slots", _num(dom.max_memory_slots)), ("unit", "KiB")],
                  text=str(dom.max_memory_kib))
    root.leaf("memory", [("unit", "KiB")], text=str(dom.memory_kib))
    if dom.current_memory_kib is not None:
        root.leaf("currentMemory", [("unit", "KiB")], text=str(dom.current_memory_kib))
    v = dom.vcpu
    root.leaf("vcpu", [("placement", v.placement), ("cpuset", v.cpuset), ("current", _num(v.current))],
              text=str(v.count))
    if dom.cputune_shares is not None or dom.vcpupin:
        tune = root.add("cputune")
        tune.leaf("shares", text=_num(dom.cputune_shares))
        for pin in dom.vcpupin:
            tune.leaf("vcpupin", [("vcpu", str(pin.vcpu)), ("cpuset", pin.cpuset)])
    root.leaf("bootloader", text=dom.bootloader)
    root.leaf("bootloader_args", text=dom.bootloader_args)
    _format_os(root, dom.os)
    if dom.features.any():
        _format_features(root, dom.features)
    if dom.cpu is not None:
        _format_cpu(root, dom.cpu)
    _format_clock(root, dom.clock)
    for event in ("on_poweroff", "on_reboot", "on_crash"):
        root.leaf(event, text=getattr(dom, event))
    _format_devices(root.add("devices"), dom.devices)
    if dom.seclabel is not None:
        sec = dom.seclabel
        root.add("seclabel", [("type", sec.type), ("model", sec.model), ("relabel", sec.relabel)]) \
            .leaf("label", text=sec.label)
    if dom.commandline:
        cmd = root.add("xen:commandline")
        for arg in dom.commandline:
            cmd.leaf("xen:arg", [("value", arg)])
    return root


def _format_os(root: Node, os: OS) -> None:
    node = root.add("os", [("firmware", os.firmware)])
    node.leaf("type", [("arch", os.arch), ("machine", os.machine)], text=os.type)
    if os.loader is not None:
        node.leaf("loader", [("readonly", os.loader.readonly), ("type", os.loader.type)],
                  text=os.loader.path or "")
    node.leaf("kernel", text=os.kernel)
    node.leaf("initrd", text=os.initrd)
    node.leaf("cmdline", text=os.cmdline)
    node.leaf("root", text=os.root)
    if os.acpi_tables:
        acpi = node.add("acpi")
        for table in os.acpi_tables:
            acpi.leaf("table", [("type", table.type)], text=table.path)
    for dev in os.boot:
        node.leaf("boot", [("dev", dev)])


def _format_features(root: Node, f: Features) -> None:
    node = root.add("features")
    for name in ("acpi", "apic", "pae"):
        if getattr(f, name):
            node.leaf(name)
    if f.hap is not None:
        node.leaf("hap", [("state", None if f.hap else "off")])
    if f.viridian:
        node.leaf("viridian")
    if f.privnet:
        node.leaf("privnet")
    if f.hyperv is not None:
        hv = node.add("hyperv", [("mode", f.hyperv.mode)])
        for name, state in f.hyperv.features.items():
            retries = _num(f.hyperv.spinlock_retries) if name == "spinlocks" else None
            hv.leaf(name, [("state", state), ("retries", retries)])
    if f.xen_e820_host is not None or f.xen_passthrough is not None:
        xen = node.add("xen")
        if f.xen_e820_host is not None:
            xen.leaf("e820_host", [("state", "on" if f.xen_e820_host else "off")])
        if f.xen_passthrough is not None:
            xen.leaf("passthrough", [("state", f.xen_passthrough), ("mode", f.xen_passthrough_mode)])


def _format_cpu(root: Node, cpu: CPU) -> None:
    node = root.add("cpu", [("mode", cpu.mode), ("match", cpu.match), ("check", cpu.check)])
    node.leaf("model", text=cpu.model)
    for feat in cpu.features:
        node.leaf("feature", [("policy", feat.policy), ("name", feat.name)])
    if cpu.numa:
        numa = node.add("numa")
        for cell in cpu.numa:
            c = numa.add("cell", [("id", str(cell.id)), ("cpus", cell.cpus),
                                  ("memory", str(cell.memory_kib)), ("unit", "KiB")])
            if cell.distances:
                dist = c.add("distances")
                for sib, value in cell.distances.items():
                    dist.leaf("sibling", [("id", str(sib)), ("value", str(value))])


def _format_clock(root: Node, clock: Clock) -> None:
    node = root.add("clock", [("offset", clock.offset), ("timezone", clock.timezone),
                              ("adjustment", clock.adjustment), ("basis", clock.basis)])
    for t in clock.timers:
        node.leaf("timer", [("name", t.name), ("present", t.present), ("tickpolicy", t.tickpolicy),
                            ("mode", t.mode)])


def _format_devices(node: Node, devs: Devices) -> None:
    node.leaf("emulator", text=devs.emulator)
    for disk in devs.disks:
        _format_disk(node, disk)
    for ctl in devs.controllers:
        node.leaf("controller", [("type", ctl.type), ("index", str(ctl.index)), ("model", ctl.model),
                                 ("ports", _num(ctl.ports)), ("maxGrantFrames", _num(ctl.max_grant_frames)),
                                 ("maxEventChannels", _num(ctl.max_event_channels))])
    for nic in devs.interfaces:
        _format_interface(node, nic)
    for tag, chardevs in (("serial", devs.serials), ("parallel", devs.parallels),
                          ("console", devs.consoles), ("channel", devs.channels)):
        for dev in chardevs:
            _format_chardev(node, tag, dev)
    for inp in devs.inputs:
        node.leaf("input", [("type", inp.type), ("bus", inp.bus)])
    for gfx in devs.graphics:
        _format_graphics(node, gfx)
    for sound in devs.sounds:
        node.leaf("sound", [("model", sound.model)])
    for video in devs.videos:
        node.add("video").leaf("model", [("type", video.model), ("vram", _num(video.vram)),
                                         ("heads", _num(video.heads)),
                                         ("primary", "yes" if video.primary else None)])
    for hd in devs.hostdevs:
        host = node.add("hostdev", [("mode", hd.mode), ("type", hd.type), ("managed", _yes(hd.managed))])
        if hd.driver_name:
            host.leaf("driver", [("name", hd.driver_name)])
        src = host.add("source", [("writeFiltering", _yes(hd.write_filtering))])
        a = hd.address
        src.leaf("address", [("domain", f"0x{a.domain:04x}"), ("bus", f"0x{a.bus:02x}"),
                             ("slot", f"0x{a.slot:02x}"), ("function", f"0x{a.function:x}")])
    for usb in devs.usb_hostdevs:
        node.add("hostdev", [("mode", "subsystem"), ("type", "usb"), ("managed", _yes(usb.managed))]) \
            .add("source").leaf("address", [("bus", str(usb.bus)), ("device", str(usb.device))])
    if devs.memballoon:
        node.leaf("memballoon", [("model", devs.memballoon)])


def _format_disk(parent: Node, disk: Disk) -> None:
    node = parent.add("disk", [("type", disk.type), ("device", disk.device)])
    if disk.driver_name or disk.driver_type or disk.driver_cache or disk.discard:
        node.leaf("driver", [("name", disk.driver_name), ("type", disk.driver_type),
                             ("cache", disk.driver_cache), ("discard", disk.discard)])
    if disk.type == "network":
        src = node.add("source", [("protocol", disk.source_protocol), ("name", disk.source_name)])
        for host in disk.source_hosts:
            src.leaf("host", [("transport", host.transport), ("name", host.name), ("port", host.port)])
    elif disk.source is not None:
        node.leaf("source", [("file" if disk.type == "file" else "dev", disk.source)])
    if disk.backend_domain:
        node.leaf("backenddomain", [("name", disk.backend_domain)])
    if disk.script:
        node.leaf("script", [("path", disk.script)])
    node.leaf("target", [("dev", disk.target_dev), ("bus", disk.target_bus)])
    for flag in ("readonly", "shareable", "transient"):
        if getattr(disk, flag):
            node.leaf(flag)
    if disk.address is not None:
        node.leaf("address", list(disk.address.items()))


def _format_interface(parent: Node, nic: Interface) -> None:
    node = parent.add("interface", [("type", nic.type), ("managed", nic.managed)])
    if nic.mac:
        node.leaf("mac", [("address", nic.mac)])
    source = [("network", nic.source_network), ("portgroup", nic.source_portgroup),
              ("bridge", nic.source_bridge)]
    if nic.source_address is not None:
        node.add("source", source).leaf("address", list(nic.source_address.items()))
    elif any(value for _, value in source):
        node.leaf("source", source)
    if nic.vlan_tags:
        vlan = node.add("vlan", [("trunk", "yes" if nic.vlan_trunk else None)])
        for tag in nic.vlan_tags:
            vlan.leaf("tag", [("id", str(tag))])
    if nic.virtualport:
        node.leaf("virtualport", [("type", nic.virtualport)])
    outbound = [("average", _num(nic.bandwidth_out_average)), ("peak", _num(nic.bandwidth_out_peak)),
                ("burst", _num(nic.bandwidth_out_burst))]
    if any(value for _, value in outbound):
        node.add("bandwidth").leaf("outbound", outbound)
    for ip in nic.ips:
        node.leaf("ip", [("address", ip.address), ("family", ip.family), ("prefix", _num(ip.prefix))])
    if nic.script:
        node.leaf("script", [("path", nic.script)])
    if nic.backend_domain:
        node.leaf("backenddomain", [("name", nic.backend_domain)])
    if nic.target_dev:
        node.leaf("target", [("dev", nic.target_dev)])
    if nic.model:
        node.leaf("model", [("type", nic.model)])


def _format_chardev(parent: Node, tag: str, dev: CharDev) -> None:
    node = parent.add(tag, [("type", dev.type), ("tty", dev.tty)])
    bind = [("mode", dev.source_mode), ("host", dev.source_host), ("service", dev.source_service),
            ("path", dev.source_path)]
    if any(value for _, value in bind):
        node.leaf("source", bind)
    if dev.connect_host or dev.connect_service:
        node.leaf("source", [("mode", "connect"), ("host", dev.connect_host),
                             ("service", dev.connect_service)])
    if dev.protocol:
        node.leaf("protocol", [("type", dev.protocol)])
    target = [("type", dev.target_type), ("name", dev.target_name), ("port", _num(dev.target_port))]
    if any(value is not None for _, value in target):
        node.leaf("target", target)


def _format_graphics(parent: Node, gfx: Graphics) -> None:
    attrs = [("type", gfx.type), ("display", gfx.display), ("xauth", gfx.xauth),
             ("fullscreen", _yes(gfx.fullscreen)), ("port", _num(gfx.port)), ("tlsPort", _num(gfx.tls_port)),
             ("autoport", _yes(gfx.autoport)), ("listen", gfx.listen), ("keymap", gfx.keymap),
             ("defaultMode", gfx.defaultMode), ("passwd", gfx.passwd)]
    node = parent.add("graphics", attrs)
    for lst in gfx.listens:
        node.leaf("listen", [("type", lst.type), ("address", lst.address)])
    if gfx.mouse_mode:
        node.leaf("mouse", [("mode", gfx.mouse_mode)])
    if gfx.clipboard_copypaste is not None:
        node.leaf("clipboard", [("copypaste", _yes(gfx.clipboard_copypaste))])


__all__ = ["format_domain_xml", "domain_node"]
