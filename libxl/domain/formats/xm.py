"""Legacy xm/xend configs (libvirt's ``xen-xm`` native format) to and from the domain model.

Same syntax and mostly the same keys as xl (``xencommon``); what differs is: ``builder="hvm"``
selects HVM, an HVM guest's ``kernel`` holds the firmware loader (hvmloader), PV kernel arguments
are ``extra``/``root`` (never ``cmdline``), disks use the ``phy:``/``file:``/``tap:aio:`` form, the PV
nic type is ``netfront``, and PV graphics are always a ``vfb`` list.
"""

from __future__ import annotations

from libxl.domain.formats import diskspec, xencommon
from libxl.domain.formats.xencommon import HVMLOADER, Cfg, Dialect, Unread
from libxl.domain.formats.xlcfg import format_cfg, parse_cfg
from libxl.domain.model import Domain, Loader
from libxl.errors import ConfigError

XM = Dialect(name="xm", netfront_type="netfront", parse_disk=diskspec.parse_xm_disk,
             format_disk=diskspec.format_xm_disk, cmdline_key="extra")


def parse_xm(text: str, file: str | None = None) -> Domain:
    """Read an xm config; raises ConfigError naming file, line and key."""
    return read_xm(text, file)[0]


def read_xm(text: str, file: str | None = None) -> tuple[Domain, list[Unread]]:
    """``parse_xm`` plus the settings the model has no place for (what a conversion drops)."""
    cfg = Cfg(parse_cfg(text, file), file)
    return _domain(cfg), cfg.unused()


def _domain(cfg: Cfg) -> Domain:
    builder = cfg.str("builder")
    if builder not in (None, "hvm", "linux", "generic"):
        raise cfg.error("builder", f"unknown builder {builder!r} (expected hvm or linux)")
    dom = xencommon.parse_common(cfg, XM, "hvm" if builder == "hvm" else "linux")
    if dom.os.is_hvm:
        kernel = cfg.str("kernel")
        if kernel:
            dom.os.loader = Loader(path=kernel, type="rom")
    else:
        xencommon.read_kernel(cfg, dom)
    return dom


def format_xm(dom: Domain) -> str:
    """An xm config for ``dom``; raises ConfigError for what xm cannot express."""
    if dom.os.is_pvh:
        raise ConfigError("xm has no PVH guests; use xen-xl")
    hvm = dom.os.is_hvm
    out = xencommon.format_head(dom)
    if hvm:
        out += xencommon.format_hvm_features(dom)
    out += xencommon.format_body(dom, XM)
    if hvm:
        loader = dom.os.loader.path if dom.os.loader and dom.os.loader.path else HVMLOADER
        out += [("builder", "hvm"), ("kernel", loader), ("boot", xencommon.boot_letters(dom))]
    else:
        out += xencommon.format_kernel(dom, XM.cmdline_key)
    out += [(k, v) for k, v in (("bootloader", dom.bootloader), ("bootargs", dom.bootloader_args)) if v]
    out += xencommon.format_usb_inputs(dom) + xencommon.format_disks(dom, XM)
    return format_cfg(out)


__all__ = ["XM", "parse_xm", "read_xm", "format_xm"]
