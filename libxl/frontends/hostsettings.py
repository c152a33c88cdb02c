"""What the host's configuration adds to every guest, and where that configuration lives.

The settings' shape and the files' default paths, apart from their reader
(``libxl.frontends.hostconf``, which sits on the xl.cfg parser and the libvirt front end): the
agent's settings table names these paths and modes, and every verb's ``register`` reads that
table, so the CLI starts without the parser's imports (agent.cli.main: host shutdown on a slow dom0).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_XL_CONF = "/etc/xen/xl.conf"
DEFAULT_LIBXL_CONF = "/etc/libvirt/libxl.conf"
AUTOBALLOON_MODES = ("auto", "on", "off")


@dataclass(frozen=True)
class HostSettings:
    """What the host's configuration adds to every guest. None: the file did not say."""
    vif_bridge: str | None = None
    vif_script: str | None = None
    vif_backend: str | None = None
    vif_gatewaydev: str | None = None
    blkdev_start: str | None = None
    claim_mode: bool | None = None
    max_grant_frames: int | None = None
    max_maptrack_frames: int | None = None
    #: xl.conf's run_hotplug_scripts: whether libxl (rather than udev) runs the hotplug scripts.
    run_hotplug_scripts: bool | None = None
    #: auto (on unless Xen's command line has dom0_mem=), on or off; see libxl.hosts.balloon.
    autoballoon: str = "auto"
    #: libvirt's nested_hvm: whether host-passthrough HVM guests get nested virtualisation.
    nested_hvm: bool | None = None
    #: The host's cpu count: xl cuts cpu lists (``cpus="all"``, ``cpus=["4-47"]``) to it. None: this
    #: machine's count as the OS reports it (in dom0, set it from the hypervisor's when they differ).
    cpus: int | None = None


__all__ = ["AUTOBALLOON_MODES", "DEFAULT_LIBXL_CONF", "DEFAULT_XL_CONF", "HostSettings"]
