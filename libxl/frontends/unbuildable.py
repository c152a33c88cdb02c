"""Settings the domain model can hold that libxl has no way to honour: refused by name, never dropped.

The domain-XML parser refuses what the model has no field for (``formats.xmlshape``); this module
covers the other gap, a field the model carries (libvirt's schema allows it for Xen, the xl/xm
readers fill it) that the libxl builder cannot turn into anything. Each entry says what and why;
``build_config`` raises the first. Settings that are libvirt bookkeeping with no effect on the
guest (drive addresses, ``heads='1'``, ``placement='static'``) are honoured by being what they are
and are not listed here.
"""

from __future__ import annotations

from collections.abc import Iterator

from libxl.domain.model import Domain
from libxl.errors import ConfigError

#: Timers libxl can set, and which of their attributes it reads (``config._clock``).
_TIMER_ATTRS = {"tsc": ("mode", "present"), "hpet": ("present",), "pit": ("tickpolicy",)}


def _problems(dom: Domain) -> Iterator[tuple[str, str]]:
    """(element, reason) for each setting of ``dom`` that libxl cannot honour."""
    devs = dom.devices
    if dom.max_memory_kib is not None:
        yield "<maxMemory>", "memory hotplug (maxMemory) is not supported by libxl"
    for disk in devs.disks:
        where = f"<disk><target dev='{disk.target_dev}'>"
        if disk.transient:
            yield where, "transient disks are not supported by libxl"
        if disk.driver_cache not in (None, "default"):
            yield where, f"disk cache mode {disk.driver_cache!r} is not supported by libxl"
    for nic in devs.interfaces:
        if nic.bandwidth_out_peak is not None or nic.bandwidth_out_burst is not None:
            yield f"<interface type='{nic.type}'><bandwidth><outbound>", \
                "libxl rate-limits by average only (no peak or burst)"
    if devs.parallels:
        yield "<parallel>", "parallel ports are not supported by libxl"
    for dev in devs.serials + devs.consoles:
        if dev.protocol in ("telnets", "tls"):
            yield f"<protocol type='{dev.protocol}'>", "TLS character devices are not supported by libxl"
    for inp in devs.inputs:
        if inp.bus == "virtio":
            yield f"<input type='{inp.type}' bus='virtio'>", "virtio input devices are not supported by libxl"
    for gfx in devs.graphics:
        if gfx.defaultMode not in (None, "any"):
            yield f"<graphics type='{gfx.type}' defaultMode='{gfx.defaultMode}'>", \
                "libxl's SPICE server has no per-channel security modes"
        if gfx.fullscreen:
            yield f"<graphics type='{gfx.type}' fullscreen='yes'>", "libxl's SDL display has no fullscreen"
    for video in devs.videos:
        if video.heads not in (None, 1):
            yield f"<video><model heads='{video.heads}'>", "libxl's emulated cards have one head"
    for timer in dom.clock.timers:
        attrs = {"mode": timer.mode, "present": timer.present, "tickpolicy": timer.tickpolicy}
        allowed = _TIMER_ATTRS.get(timer.name, ())
        for attr, value in attrs.items():
            if value is not None and attr not in allowed:
                yield f"<timer name='{timer.name}' {attr}='{value}'>", \
                    f"libxl cannot set the {attr} of the {timer.name} timer"
    cpu = dom.cpu
    # host-model is Xen's default CPUID policy (the host's features, levelled), so it is honoured
    # by building nothing; a named model is not something libxl can offer.
    if cpu is not None and (cpu.mode == "custom" or cpu.model):
        yield "<cpu>", "libxl has no CPU models: use mode='host-passthrough' with <feature> policies"


def check_buildable(dom: Domain) -> None:
    """Raise a ConfigError naming the first setting libxl cannot honour."""
    for element, reason in _problems(dom):
        raise ConfigError(reason, element=element)


__all__ = ["check_buildable"]
