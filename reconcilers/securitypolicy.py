"""The security policy's settings and their strict defaults, apart from the checks that apply them.

``agent.config`` builds its settings table from these defaults, and every verb's ``register``
reads that table: keeping them here, beside nothing but the standard library, lets the CLI start
without the checks' imports (lxml, the domain model, the qemu option grammar), which matters at
host shutdown on a slow dom0 (agent.cli.main). The checks themselves are ``reconcilers.security``.
"""

from __future__ import annotations

from dataclasses import dataclass

#: pygrub where upstream (/usr/lib/xen/bin), Debian's xen-utils-4.17 (/usr/lib/xen-4.17/bin) and
#: distributions that link it into the PATH (/usr/bin) install it.
DEFAULT_BOOTLOADERS = ("/usr/bin/pygrub", "/usr/lib/xen/bin/pygrub", "/usr/lib/xen-4.17/bin/pygrub")
#: qemu as upstream Xen, Debian (qemu-system-x86 for Xen) and libvirt's examples name it.
DEFAULT_DEVICE_MODELS = ("/usr/lib/xen/bin/qemu-system-i386", "/usr/lib/xen-4.17/bin/qemu-system-i386",
                         "/usr/bin/qemu-system-i386", "/usr/lib/xen/bin/qemu-dm",
                         "/usr/lib64/xen/bin/qemu-dm")
#: libxl's XEN_SCRIPT_DIR: where a bare hotplug script name (``vif-bridge``) is looked up.
XEN_SCRIPT_DIR = "/etc/xen/scripts"
DEFAULT_SCRIPT_DIRS = (XEN_SCRIPT_DIR,)
#: libxl's firmware directory, where it looks up a relative hvmloader, BIOS or shim name.
LIBXL_FIRMWARE_DIR = "/usr/lib/xen/boot"
#: Where upstream Xen, Debian's xen-4.17 and the ovmf/seabios/qemu packages install guest firmware.
DEFAULT_FIRMWARE_DIRS = (LIBXL_FIRMWARE_DIR, "/usr/lib/xen-4.17/boot", "/usr/lib64/xen/boot",
                         "/usr/share/ovmf", "/usr/share/OVMF", "/usr/share/seabios", "/usr/share/qemu")
#: librbd options that name no dom0 file: the cephx user and the monitors (a ``<host>`` element).
DEFAULT_RBD_OPTIONS = ("id", "mon_host", "auth_supported")


@dataclass(frozen=True)
class SecurityPolicy:
    """The agent's settings of the same names (``etc/xenreconcile.toml``); defaults are strict."""
    strict_modes: bool = True
    allowed_bootloaders: tuple[str, ...] = DEFAULT_BOOTLOADERS
    allow_device_model_args: bool = False
    allow_pci_passthrough: bool = False
    allow_usb_passthrough: bool = False
    hotplug_script_dirs: tuple[str, ...] = DEFAULT_SCRIPT_DIRS
    allowed_device_models: tuple[str, ...] = DEFAULT_DEVICE_MODELS
    #: Directories serial ``file:``/``pipe:``/``unix:`` paths, socket channels and VNC sockets may be in.
    allowed_chardev_dirs: tuple[str, ...] = ()
    #: Host device nodes a serial port may open (``/dev/ttyS0``).
    allowed_chardev_devices: tuple[str, ...] = ()
    #: Serial ports on TCP/UDP/telnet/websocket (connect or listen) and PV Calls.
    allow_dom0_sockets: bool = False
    #: Directories 9p shares may export.
    allowed_9p_dirs: tuple[str, ...] = ()
    allow_vtpm: bool = False
    #: iomem, ioports, irqs, dtdev and device_tree.
    allow_raw_hardware: bool = False
    #: Directories system/ACPI/SMBIOS firmware, hvmloader overrides, PVH shims and stub domain images
    #: may come from.
    allowed_firmware_dirs: tuple[str, ...] = DEFAULT_FIRMWARE_DIRS
    #: VNC/SPICE listening beyond loopback without a password.
    allow_open_display: bool = False
    allowed_rbd_options: tuple[str, ...] = DEFAULT_RBD_OPTIONS
    #: HVM device models must run deprivileged (``dm_restrict``), never as ``device_model_user`` root.
    require_dm_restrict: bool = False


DEFAULT_SECURITY = SecurityPolicy()


__all__ = ["DEFAULT_BOOTLOADERS", "DEFAULT_DEVICE_MODELS", "DEFAULT_FIRMWARE_DIRS", "DEFAULT_RBD_OPTIONS",
           "DEFAULT_SCRIPT_DIRS", "DEFAULT_SECURITY", "LIBXL_FIRMWARE_DIR", "XEN_SCRIPT_DIR",
           "SecurityPolicy"]
