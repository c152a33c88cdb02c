"""The host interface that both the real libxl binding and the simulated host implement.

The reconcilers only ever see this interface (Ganeti's hv_base idea), so the same plan/apply code
runs against ``xen:///system`` and ``test:///...``. Configs cross it as libxl JSON dicts (the shape
``libxl_domain_config_to_json`` prints): that is libxl's own marshalling format, and it keeps the
binding free of struct filling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

#: libxl JSON: ``libxl_domain_config``, ``libxl_device_disk``, ``libxl_device_nic``.
LibxlConfig = dict[str, Any]

#: The xenstore key (in ``c_info.xsdata``) that marks a domain as created by this agent.
OWNER_KEY = "xenreconcile-owner"
#: The names ``xl migrate`` gives the two ends of a migration while it runs (xl_migrate.c): the
#: receiver builds ``NAME--incoming``, the sender renames its suspended guest ``NAME--migratedaway``.
INCOMING_SUFFIX = "--incoming"
MIGRATED_AWAY_SUFFIX = "--migratedaway"


@dataclass(frozen=True)
class DomainInfo:
    """One row of ``xl list``, plus what the reconciler needs to decide ownership."""
    name: str
    domid: int
    uuid: str
    #: running | blocked | paused | shutdown | crashed | dying
    state: str
    memory_kib: int
    max_memory_kib: int
    vcpus_online: int
    vcpus_max: int
    #: running: ``shutdown_reason`` is None. For a shut down domain: poweroff | reboot |
    #: suspend | crash | watchdog | soft_reset.
    shutdown_reason: str | None = None
    #: The owner marker from xsdata (None: not created by any xenreconcile agent).
    owner: str | None = None
    cpu_time_ns: int = 0
    #: The TCP ports of the guest's VNC and SPICE displays, where known (``libxl.hosts.display``).
    vnc_port: int | None = None
    spice_port: int | None = None


@dataclass(frozen=True)
class IoStats:
    """A domain's block and network I/O counters since it was created, from the guest's side
    (``libxl.hosts.iostats``: what xentop shows)."""
    block_read_requests: int = 0
    block_write_requests: int = 0
    block_read_bytes: int = 0
    block_write_bytes: int = 0
    net_receive_bytes: int = 0
    net_transmit_bytes: int = 0
    net_receive_packets: int = 0
    net_transmit_packets: int = 0


@dataclass(frozen=True)
class DomainEvent:
    """A change of actual state that libxl reports (domain death / shutdown)."""
    kind: str  # death | shutdown | crash
    domid: int
    name: str | None = None
    reason: str | None = None


@dataclass
class HostInfo:
    total_memory_kib: int
    free_memory_kib: int
    nr_cpus: int
    xen_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """What a Xen host offers the reconciler. Every method raises ``BackendError`` on failure."""

    uri: str

    def host_info(self) -> HostInfo: ...

    def list_domains(self) -> list[DomainInfo]:
        """All domains, domain 0 included (the reconciler filters it out)."""
        ...

    def io_stats(self) -> dict[int, IoStats]:
        """Block and network counters by domid (domains without backends may be missing)."""
        ...

    def domain_config(self, domid: int) -> LibxlConfig:
        """The domain's current config as libxl JSON (``libxl_retrieve_domain_configuration``)."""
        ...

    def create(self, config: LibxlConfig, *, paused: bool = False) -> int:
        """Create the domain and unpause it unless ``paused``; return the new domid."""
        ...

    def unpause(self, domid: int) -> None: ...

    def pause(self, domid: int) -> None: ...

    def shutdown(self, domid: int, timeout: float) -> bool:
        """Ask the guest to shut down and wait up to ``timeout`` s; True when it is gone."""
        ...

    def destroy(self, domid: int) -> None: ...

    # -- host lifecycle: save images, restore, core dumps (xl save / xl restore / xl dump-core) ----

    def save(self, domid: int, path: str) -> None:
        """Suspend the guest into a new image file ``path`` (``libxl_domain_suspend``; the header
        of ``libxl.hosts.saveimage`` first), then destroy it, as ``xl save`` does. The guest sees a
        suspend (shutdown reason ``suspend``); on failure it is resumed and left running."""
        ...

    def restore(self, path: str, config: LibxlConfig, *, paused: bool = False) -> int:
        """Create the guest from the image at ``path`` (``libxl_domain_create_restore``) with
        ``config`` (the image's own, possibly with live-changeable values updated); the new domid."""
        ...

    def core_dump(self, domid: int, path: str) -> None:
        """Write the guest's memory to ``path`` (``libxl_domain_core_dump``, as ``xl dump-core``);
        the guest is left as it was (running, paused or crashed)."""
        ...

    def disk_add(self, domid: int, disk: LibxlConfig) -> None: ...

    def disk_remove(self, domid: int, disk: LibxlConfig) -> None: ...

    def nic_add(self, domid: int, nic: LibxlConfig) -> None: ...

    def nic_remove(self, domid: int, nic: LibxlConfig) -> None: ...

    def cdrom_insert(self, domid: int, disk: LibxlConfig) -> None:
        """Change the media of an existing cdrom vdev (empty ``pdev_path`` ejects)."""
        ...

    def set_memory_target(self, domid: int, target_kib: int) -> None: ...

    def set_vcpus_online(self, domid: int, count: int) -> None: ...

    # -- live tuning (``xl vcpu-pin``, ``xl sched-credit2``, ``xl mem-max``) --------------------

    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: list[int] | None,
                          soft: list[int] | None) -> None:
        """``libxl_set_vcpuaffinity``: pin ``vcpu`` to the ``hard`` cpus and prefer the ``soft``
        ones (None leaves that affinity as it is)."""
        ...

    def set_sched_params(self, domid: int, params: dict[str, int]) -> None:
        """``libxl_domain_sched_params_set`` with ``weight`` and/or ``cap`` (the rest unchanged)."""
        ...

    def set_max_memory(self, domid: int, max_kib: int) -> None:
        """``libxl_domain_setmaxmem``; libxl refuses a maximum below the current balloon target."""
        ...

    def watch_events(self, callback: Callable[[DomainEvent], None]) -> None:
        """Deliver domain death/shutdown events to ``callback`` from a background thread."""
        ...

    def close(self) -> None: ...
