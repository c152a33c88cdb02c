"""The security policy for configs that have no domain model: xl.cfg files read by the xl front end.

``reconcilers.security.check_policy`` reads the domain model (bootloader, device-model arguments
and override, PCI/USB passthrough, hotplug scripts); an xl.cfg now becomes libxl JSON directly, so
this module shows the policy the same settings, taken from the JSON, as a minimal model.

TODO(lead, merge with 14a): engineer 14a moves the policy onto the libxl JSON
(``check_policy(config, policy)``); once that is merged, ``xl_policy_errors`` calls it directly and
this view goes. It must then also gate what only the JSON carries: ``b_info.iomem``,
``b_info.ioports``, ``b_info.irqs``, ``dtdevs`` (host resources handed to the guest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from libxl.model import Disk, Domain, Hostdev, Interface, PCIAddress, USBDevice
from reconcilers.security import PolicyError, SecurityPolicy, policy_errors


def domain_view(config: dict[str, Any]) -> Domain:
    """The settings ``check_policy`` reads, from a libxl config."""
    c_info, b_info = config.get("c_info") or {}, config.get("b_info") or {}
    dom = Domain(name=str(c_info.get("name") or ""))
    dom.bootloader = b_info.get("bootloader")
    args = b_info.get("bootloader_args")
    dom.bootloader_args = " ".join(args) if args else None
    dom.commandline = [*b_info.get("extra", []), *b_info.get("extra_pv", []), *b_info.get("extra_hvm", [])]
    dom.devices.emulator = b_info.get("device_model")
    dom.devices.hostdevs = [Hostdev(managed=False, address=PCIAddress(p.get("domain", 0), p.get("bus", 0),
                                                                      p.get("dev", 0), p.get("func", 0)))
                            for p in config.get("pcidevs", [])]
    dom.devices.usb_hostdevs = [USBDevice(bus=(u.get("type.hostdev") or {}).get("hostbus", 0),
                                          device=(u.get("type.hostdev") or {}).get("hostaddr", 0))
                                for u in config.get("usbdevs", [])]
    hvm = b_info.get("type.hvm") or {}
    emulated = [*hvm.get("usbdevice_list", []), *([hvm["usbdevice"]] if hvm.get("usbdevice") else [])]
    # qemu's ``usbdevice=host:BUS.ADDR`` hands a host USB device to the guest, like usbdev=.
    dom.devices.usb_hostdevs += [USBDevice(bus=0, device=0) for d in emulated if d.startswith("host:")]
    dom.devices.disks = [Disk(type="file", device="disk", target_dev=d.get("vdev", ""), script=d["script"])
                         for d in config.get("disks", []) if d.get("script")]
    dom.devices.interfaces = [Interface(type="bridge", script=n["script"])
                              for n in config.get("nics", []) if n.get("script")]
    return dom


def xl_policy_errors(config: dict[str, Any], policy: SecurityPolicy, path: Path,
                     data: bytes) -> list[PolicyError]:
    """Every violation of ``policy`` by an xl.cfg's libxl config, located in the file."""
    return policy_errors(domain_view(config), config, policy, path, data)


__all__ = ["domain_view", "xl_policy_errors"]
