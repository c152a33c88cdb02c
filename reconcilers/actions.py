"""The reconciler's vocabulary, spelt once: what differs (``ChangeKind``), what the host is asked to
do (``ActionKind``) and what each action needs (one frozen payload class per action kind).

``reconcilers.diff`` classifies each difference with a ``ChangeKind``; ``reconcilers.plan`` turns
differences and lifecycle decisions into actions, each carrying its payload; ``reconcilers.apply``
runs an action through one dispatch table keyed by ``ActionKind``. The payload class fixes its
action's kind, so a plan cannot pair an action with another action's arguments.

The values are the strings printed by ``xenreconcile plan``, its JSON, the agent's log lines and
``status``: operators' scripts read them, so they never change (``tests/test_action_vocabulary.py``
pins them against output of the code before this module existed). A change kind and the action it
leads to are spelt differently on purpose (``disk-add`` is what differs, ``hotplug-disk-add`` what
is done about it), as they were before.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from libxl.hosts.backend import LibxlConfig

#: Per vcpu: (hard, soft) cpu lists to pin, None where that affinity is left as it is.
Affinity = dict[int, tuple[list[int] | None, list[int] | None]]


class ChangeKind(enum.StrEnum):
    """One difference between a desired and a running guest's config (``reconcilers.diff``): a
    change libxl applies to the running guest, or ``RESTART`` for one that needs a new guest."""
    DISK_ADD = "disk-add"
    DISK_REMOVE = "disk-remove"
    NIC_ADD = "nic-add"
    NIC_REMOVE = "nic-remove"
    CDROM_CHANGE = "cdrom-change"
    SET_MEMORY = "set-memory"
    SET_VCPUS = "set-vcpus"
    SET_AFFINITY = "set-affinity"
    SET_SCHED = "set-sched"
    SET_MAXMEM = "set-maxmem"
    RESTART = "restart"


class ActionKind(enum.StrEnum):
    """One operation on the host (``reconcilers.plan`` plans it, ``reconcilers.apply`` runs it)."""
    CREATE = "create"
    RESTORE = "restore"
    SET_ASIDE = "set-aside-image"
    ADOPT = "adopt"
    CORE_DUMP = "core-dump"
    SHUTDOWN = "shutdown"
    DESTROY = "destroy"
    RECREATE = "recreate"
    PAUSE = "pause"
    UNPAUSE = "unpause"
    DISK_ADD = "hotplug-disk-add"
    DISK_REMOVE = "hotplug-disk-remove"
    NIC_ADD = "hotplug-nic-add"
    NIC_REMOVE = "hotplug-nic-remove"
    CDROM_CHANGE = "cdrom-change"
    SET_MEMORY = "set-memory"
    SET_VCPUS = "set-vcpus"
    SET_AFFINITY = "set-vcpu-affinity"
    SET_SCHED = "set-sched-params"
    SET_MAXMEM = "set-max-memory"


#: Field metadata key: the field is left out of ``Payload.as_dict`` while it is false (the plan's
#: JSON has carried such a key only where it applies: ``prune`` on a removal the prune policy made).
_ONLY_WHEN_SET = "only_when_set"


@dataclass(frozen=True)
class Payload:
    """What one action needs; the subclass names the action (``kind``). Fields are declared in
    the order the plan's JSON prints them."""
    kind: ClassVar[ActionKind]

    def as_dict(self) -> dict[str, Any]:
        """The fields by name, in declared order (shallow: the configs are the plan's own)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value or not f.metadata.get(_ONLY_WHEN_SET):
                out[f.name] = value
        return out


@dataclass(frozen=True)
class Create(Payload):
    kind = ActionKind.CREATE
    config: LibxlConfig
    paused: bool


@dataclass(frozen=True)
class Restore(Payload):
    """A guest saved at host shutdown, restored from ``path`` with the config saved beside it."""
    kind = ActionKind.RESTORE
    path: str
    config: LibxlConfig
    paused: bool


@dataclass(frozen=True)
class SetAside(Payload):
    """A save image that will not be restored, renamed out of the way."""
    kind = ActionKind.SET_ASIDE
    path: str


@dataclass(frozen=True)
class Adopt(Payload):
    """An unowned guest taken over: the one action on an existing domain not yet ours."""
    kind = ActionKind.ADOPT
    domid: int
    uuid: str


@dataclass(frozen=True)
class OnDomain(Payload):
    """An action on an existing guest, which must be ours: the executor checks ``domid`` against
    the owned set before it runs any action whose payload is one of these."""
    domid: int


@dataclass(frozen=True)
class CoreDump(OnDomain):
    kind = ActionKind.CORE_DUMP
    path: str


@dataclass(frozen=True)
class _Removal(OnDomain):
    uuid: str
    #: Removed because its desired file went (the prune policy): its display ports are freed too.
    prune: bool = field(default=False, metadata={_ONLY_WHEN_SET: True})


@dataclass(frozen=True)
class Shutdown(_Removal):
    kind = ActionKind.SHUTDOWN


@dataclass(frozen=True)
class Destroy(_Removal):
    kind = ActionKind.DESTROY


@dataclass(frozen=True)
class Recreate(OnDomain):
    """Stop and create again, for the restart-required ``changes`` (paths in the config)."""
    kind = ActionKind.RECREATE
    uuid: str
    config: LibxlConfig
    paused: bool
    changes: list[str]


@dataclass(frozen=True)
class Pause(OnDomain):
    kind = ActionKind.PAUSE


@dataclass(frozen=True)
class Unpause(OnDomain):
    kind = ActionKind.UNPAUSE


@dataclass(frozen=True)
class _DeviceChange(OnDomain):
    #: The libxl device dict the hotplug call takes (the desired one, or for a removal the actual).
    device: LibxlConfig


@dataclass(frozen=True)
class DiskAdd(_DeviceChange):
    kind = ActionKind.DISK_ADD


@dataclass(frozen=True)
class DiskRemove(_DeviceChange):
    kind = ActionKind.DISK_REMOVE


@dataclass(frozen=True)
class NicAdd(_DeviceChange):
    kind = ActionKind.NIC_ADD


@dataclass(frozen=True)
class NicRemove(_DeviceChange):
    kind = ActionKind.NIC_REMOVE


@dataclass(frozen=True)
class CdromChange(_DeviceChange):
    kind = ActionKind.CDROM_CHANGE


@dataclass(frozen=True)
class SetMemory(OnDomain):
    kind = ActionKind.SET_MEMORY
    target_kib: int


@dataclass(frozen=True)
class SetVcpus(OnDomain):
    kind = ActionKind.SET_VCPUS
    count: int


@dataclass(frozen=True)
class SetAffinity(OnDomain):
    kind = ActionKind.SET_AFFINITY
    affinity: Affinity


@dataclass(frozen=True)
class SetSched(OnDomain):
    kind = ActionKind.SET_SCHED
    params: dict[str, int]


@dataclass(frozen=True)
class SetMaxMemory(OnDomain):
    kind = ActionKind.SET_MAXMEM
    max_kib: int
