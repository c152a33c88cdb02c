"""The reconciler's settings: what it may do to guests on its own initiative.

The defaults are the cautious ones the prior art converged on (Flux, Argo CD, KubeVirt): report
rather than prune, report ``RestartRequired`` rather than restart, refuse to prune everything when the
desired directory turns up empty, and never adopt a guest that someone else started.
"""

from __future__ import annotations

from dataclasses import dataclass

PRUNE_POLICIES = ("none", "shutdown", "destroy")
RESTART_POLICIES = ("never", "always")

#: The owner id written into ``c_info.xsdata[OWNER_KEY]`` when nothing else is configured.
DEFAULT_OWNER = "xenreconcile"
#: xl's XEN_DUMP_DIR on Debian.
DEFAULT_DUMP_DIR = "/var/lib/xen/dump"


@dataclass(frozen=True)
class Policy:
    """How far the reconciler may go.

    - ``prune``: what happens to an owned domain whose desired file disappeared: ``none`` (report
      only), ``shutdown`` (graceful shutdown, then destroy after ``shutdown_timeout``), ``destroy``.
    - ``restart``: restart-required changes are reported (``never``) or applied by shutdown ->
      destroy -> create (``always``).
    - ``allow_empty``: an empty desired directory may prune every owned domain (Argo CD's allowEmpty).
    - ``adopt``: an unowned domain whose name is desired becomes owned instead of being a conflict.
    - ``shutdown_timeout``: seconds a guest gets to shut down before it is destroyed.
    - ``owner``: the marker value this agent writes and recognises, so two agents (or a test and a
      production agent) on one host never claim each other's guests.
    - ``dump_dir``: where ``on_crash`` ``coredump-*`` writes a crashed guest's core, as
      ``DIR/NAME`` (xl's ``XEN_DUMP_DIR``, Debian's /var/lib/xen/dump).
    - ``display_port_min``/``display_port_max``: the ports VNC and SPICE autoport displays get
      (libvirt's ``remote_display_port_min``/``max``; ``reconcilers.ports``).
    """

    prune: str = "none"
    restart: str = "never"
    allow_empty: bool = False
    adopt: bool = False
    shutdown_timeout: float = 30.0
    owner: str = DEFAULT_OWNER
    dump_dir: str = DEFAULT_DUMP_DIR
    display_port_min: int = 5900
    display_port_max: int = 65535

    def __post_init__(self) -> None:
        if self.prune not in PRUNE_POLICIES:
            raise ValueError(f"prune policy must be one of {', '.join(PRUNE_POLICIES)}, not {self.prune!r}")
        if self.restart not in RESTART_POLICIES:
            raise ValueError(
                f"restart policy must be one of {', '.join(RESTART_POLICIES)}, not {self.restart!r}")
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown timeout must not be negative, not {self.shutdown_timeout!r}")
        if not self.owner:
            raise ValueError("owner id must not be empty")
        if not 1 <= self.display_port_min <= self.display_port_max <= 65535:
            raise ValueError(f"display ports {self.display_port_min}..{self.display_port_max} are not a "
                             "range within 1..65535")
