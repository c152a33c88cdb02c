"""Hand-built desired sets and host snapshots for the pure plan tests (no files, no backend)."""

from __future__ import annotations

import copy
import uuid as _uuid
from pathlib import Path
from typing import Any

from libxl.domain.model import Domain
from libxl.hosts.backend import DomainInfo
from reconcilers.desired import DesiredDomain, DesiredSet
from reconcilers.plan import ActualDomain

OWNER = "test-agent"
DIR = Path("/desired")


def uuid_for(name: str) -> str:
    return str(_uuid.uuid5(_uuid.NAMESPACE_DNS, name))


def config(name: str, *, memkb: int = 524288, target: int | None = None, vcpus: int = 2,
           kernel: str = "/boot/vmlinuz", disks: tuple[str, ...] = ("xvda",)) -> dict[str, Any]:
    """A small PV guest's libxl config."""
    return {
        "c_info": {"type": "pv", "name": name, "uuid": uuid_for(name)},
        "b_info": {"max_vcpus": vcpus, "avail_vcpus": list(range(vcpus)), "max_memkb": memkb,
                   "target_memkb": target or memkb, "kernel": kernel},
        "disks": [{"pdev_path": f"/img/{name}-{v}.img", "vdev": v, "format": "raw", "readwrite": 1}
                  for v in disks],
    }


def desired_domain(cfg: dict[str, Any], *, power_state: str | None = None,
                   file: str | None = None) -> DesiredDomain:
    name = cfg["c_info"]["name"]
    dom = Domain(name=name, uuid=cfg["c_info"].get("uuid"), power_state=power_state)
    return DesiredDomain(name, DIR / (file or f"{name}.xml"), dom, cfg, f"hash-{name}")


def desired_set(*domains: DesiredDomain, **extra: Any) -> DesiredSet:
    return DesiredSet(DIR, domains={d.name: d for d in domains}, **extra)


def actual(cfg: dict[str, Any], domid: int, *, state: str = "running", owner: str | None = OWNER,
           reason: str | None = None) -> ActualDomain:
    b = cfg["b_info"]
    info = DomainInfo(name=cfg["c_info"]["name"], domid=domid, uuid=cfg["c_info"]["uuid"], state=state,
                      memory_kib=b["target_memkb"], max_memory_kib=b["max_memkb"],
                      vcpus_online=len(b["avail_vcpus"]), vcpus_max=b["max_vcpus"],
                      shutdown_reason=reason, owner=owner)
    return ActualDomain(info, copy.deepcopy(cfg))


def domain_xml(name: str, *, uuid: str | None = None, memory_mib: int = 512, current_mib: int | None = None,
               vcpus: int = 2, current_vcpus: int | None = None, kernel: str = "/boot/vmlinuz",
               disks: tuple[str, ...] = ("xvda",), macs: tuple[str, ...] = (), power: str | None = None,
               lifecycle: str = "", cpuset: str | None = None, shares: int | None = None) -> str:
    """A small PV guest as libvirt domain XML (the desired-file form of ``config``); ``cpuset``
    pins its vcpus, ``shares`` is its scheduler weight."""
    current = f"<currentMemory unit='MiB'>{current_mib}</currentMemory>" if current_mib else ""
    vcpu_current = f" current='{current_vcpus}'" if current_vcpus else ""
    vcpu_current += f" cpuset='{cpuset}'" if cpuset else ""
    cputune = f"<cputune><shares>{shares}</shares></cputune>" if shares is not None else ""
    disk_xml = "".join(f"<disk type='file' device='disk'><source file='/img/{name}-{v}.img'/>"
                       f"<target dev='{v}' bus='xen'/></disk>" for v in disks)
    disk_xml += "".join(f"<interface type='bridge'><mac address='{m}'/><source bridge='br0'/></interface>"
                        for m in macs)
    meta = (f"<metadata><xr:state xmlns:xr='https://xenreconcile.dev/schemas/domain/1.0'>{power}</xr:state>"
            "</metadata>") if power else ""
    return (f"<domain type='xen'><name>{name}</name><uuid>{uuid or uuid_for(name)}</uuid>{meta}"
            f"<memory unit='MiB'>{memory_mib}</memory>{current}<vcpu{vcpu_current}>{vcpus}</vcpu>{cputune}"
            f"<os><type>linux</type><kernel>{kernel}</kernel></os>{lifecycle}"
            f"<devices>{disk_xml}</devices></domain>\n")
