"""From desired set + actual host + policy to an ordered list of actions, with a reason for each.

Pure: the plan reads the desired set, a snapshot of the host (``ActualDomain``: ``xl list`` row plus
the retrieved libxl config), the policy and the ownership inventory, and decides. ``apply`` executes
a plan; ``xenreconcile plan`` prints one. Each action is a payload of ``reconcilers.actions`` (which
fixes its kind); each hot change of the diff becomes its action through one table, ``_HOT``.
Level-triggered: the same inputs give the same plan whatever event led here, and a plan computed
right after a successful apply is empty.

Ownership gates every destructive or hotplug action (``reconcilers.ownership``): a domain is ours
when its xsdata marker is our owner id or the inventory lists its uuid; Domain-0 never is. Anything
else with a desired name is reported (``Unowned``) and left alone, unless ``Policy.adopt``.

Host lifecycle: a guest that left by suspend (``xl save``, ``xl migrate``) is never re-created from
its unchanged file; the two ends of a migration (``NAME--incoming``, ``NAME--migratedaway``) are
never touched; whether a guest that stopped comes back is its run strategy's call (``held_by``);
``on_crash`` ``preserve`` keeps a crashed guest and ``coredump-*`` dumps its core before it goes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from libxl.hosts.backend import INCOMING_SUFFIX, MIGRATED_AWAY_SUFFIX, DomainEvent, DomainInfo, LibxlConfig
from reconcilers import state as sd
from reconcilers import status as st
from reconcilers.actions import (
    ActionKind,
    Adopt,
    Affinity,
    CdromChange,
    ChangeKind,
    CoreDump,
    Create,
    Destroy,
    DiskAdd,
    DiskRemove,
    NicAdd,
    NicRemove,
    Pause,
    Payload,
    Recreate,
    Restore,
    SetAffinity,
    SetAside,
    SetMaxMemory,
    SetMemory,
    SetSched,
    SetVcpus,
    Shutdown,
    Unpause,
)
from reconcilers.desired import DesiredDomain, DesiredSet
from reconcilers.diff import Change, DiffMemo, diff_domain
from reconcilers.ownership import in_migration, is_owned
from reconcilers.policy import Policy
from reconcilers.state import Departure, Inventory, OwnedDomain

#: Execution phases: free resources first (prune, dead remains), then start, then adjust.
_PHASE = {ActionKind.ADOPT: 0, ActionKind.CORE_DUMP: 0, ActionKind.SHUTDOWN: 0, ActionKind.DESTROY: 0,
          ActionKind.SET_ASIDE: 0, ActionKind.RECREATE: 1, ActionKind.CREATE: 2, ActionKind.RESTORE: 2,
          ActionKind.PAUSE: 5, ActionKind.UNPAUSE: 5}
_HOT_PHASE = 4
#: terraform-style symbols for the printed plan.
SYMBOLS = {ActionKind.CREATE: "+", ActionKind.RESTORE: "+", ActionKind.RECREATE: "-/+",
           ActionKind.SHUTDOWN: "-", ActionKind.DESTROY: "-"}

# Note kinds.
RESTART_REQUIRED = "RestartRequired"
CONFLICT = "Conflict"
UNOWNED = "Unowned"
INVALID = "Invalid"
ORPHAN = "Orphan"
EMPTY_DESIRED = "EmptyDesired"
PENDING = "Pending"
#: The guest stays away on purpose (saved, migrated away, stopped under its run strategy).
HELD = "Held"
#: A migration into or out of this host is under way.
MIGRATING = "Migrating"
#: A crashed guest kept for inspection (on_crash preserve).
CRASHED = "Crashed"
#: The core dump before a coredump-* action failed; the action went ahead (as xl does).
CORE_DUMP_FAILED = "CoreDumpFailed"

#: ``on_crash`` values that dump the core first (libxl JSON spelling).
COREDUMP_ACTIONS = ("coredump_destroy", "coredump_restart")
#: What each shutdown reason means for a run strategy (``DomainInfo.shutdown_reason``).
_DEPARTURE_OF_REASON = {"suspend": sd.SAVED, "poweroff": sd.POWEROFF, "crash": sd.CRASH,
                        "watchdog": sd.CRASH}

_DEAD_STATES = ("shutdown", "crashed")


@dataclass(frozen=True)
class ActualDomain:
    """One domain on the host; ``config`` is None when it was not retrieved (not ours, not desired)."""
    info: DomainInfo
    config: LibxlConfig | None = None


@dataclass(frozen=True)
class Action:
    """One backend operation; the payload says which (``kind``) and holds what it needs."""
    domain: str
    reason: str
    payload: Payload = field(compare=False)
    kind: ActionKind = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", self.payload.kind)

    @property
    def details(self) -> dict[str, Any]:
        """The payload as a dict (``Payload.as_dict``): what ``to_json`` prints, configs aside."""
        return self.payload.as_dict()

    @property
    def phase(self) -> int:
        return _PHASE.get(self.kind, _HOT_PHASE)

    @property
    def symbol(self) -> str:
        return SYMBOLS.get(self.kind, "~")

    def to_json(self) -> dict[str, Any]:
        """JSON-safe summary: device and config payloads are left out (they are the desired files)."""
        out: dict[str, Any] = {"domain": self.domain, "kind": self.kind, "reason": self.reason}
        out.update({k: v for k, v in self.details.items() if k not in ("config", "device")})
        return out


@dataclass(frozen=True)
class Note:
    """Something the reconciler will not do, and why."""
    domain: str
    kind: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"domain": self.domain, "kind": self.kind, "message": self.message}


@dataclass
class DomainPlan:
    """The plan for one name (one work-queue key)."""
    name: str
    file: Path | None = None
    actions: list[Action] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: The status once the actions succeed (``in-sync``, ``restart-required``, ``invalid``...).
    outcome: str = st.IN_SYNC
    #: Bookkeeping once the actions succeed (no host change, so not an action): a departure to
    #: record in the inventory, or True to drop the one recorded for this name.
    record: Departure | None = None
    clear_departure: bool = False

    def act(self, reason: str, payload: Payload) -> None:
        self.actions.append(Action(self.name, reason, payload))

    def note(self, kind: str, message: str, outcome: str) -> None:
        self.notes.append(Note(self.name, kind, message))
        self.outcome = outcome


@dataclass
class Plan:
    domains: list[DomainPlan] = field(default_factory=list)

    @property
    def actions(self) -> list[Action]:
        """All actions in execution order (stable by phase; per domain in planned order)."""
        return sorted((a for d in self.domains for a in d.actions), key=lambda a: a.phase)

    @property
    def notes(self) -> list[Note]:
        return [n for d in self.domains for n in d.notes]

    @property
    def has_changes(self) -> bool:
        return any(d.actions for d in self.domains)

    def to_json(self) -> dict[str, Any]:
        return {"changes": self.has_changes,
                "actions": [a.to_json() for a in self.actions],
                "notes": [n.to_json() for n in self.notes],
                "domains": {d.name: {"file": str(d.file) if d.file else None, "outcome": d.outcome}
                            for d in self.domains}}


def held_by(want: DesiredDomain, departure: Departure | None) -> tuple[str, str] | None:
    """(status, why) when the guest that left stays away; None when the agent starts it.

    A departure recorded under another revision of the file does not count: editing the file is
    how an operator says "start it as it is now". Saved and migrated guests stay away whatever the
    strategy (starting a second copy on the same disks is the one thing never to do)."""
    if departure is None or departure.content_hash != want.content_hash:
        return None
    if departure.reason == sd.SAVED:
        return st.SAVED, ("left by suspend (xl save, or saved at host shutdown): not re-created; "
                          "change its file or run `xenreconcile clear` to start it afresh")
    if departure.reason == sd.MIGRATED_AWAY:
        return st.MIGRATED_AWAY, ("migrated to another host (xl migrate): not re-created here; change "
                                  "its file or run `xenreconcile clear` to start it here")
    strategy = want.run_strategy
    if strategy == "Manual" or (strategy == "RerunOnFailure" and departure.reason == sd.POWEROFF):
        return st.STOPPED, (f"run strategy {strategy}: not restarted after it left ({departure.reason}); "
                            "change its file or run `xenreconcile clear` to start it")
    return None


def _departure(reason: str, name: str, uuid: str | None, want: DesiredDomain | None) -> Departure | None:
    """The departure worth recording: saved and migrated always, the rest only where the run
    strategy looks at it (an ``Always`` guest comes back whatever happened)."""
    if reason not in (sd.SAVED, sd.MIGRATED_AWAY) and (want is None or want.run_strategy == "Always"):
        return None
    return Departure(name, reason, uuid, want.content_hash if want else None)


def departure_for_event(event: DomainEvent, want: DesiredDomain | None,
                        inventory: Inventory) -> Departure | None:
    """What a host event says about how an owned guest left (the agent's event thread records it
    before the death that follows is reconciled: ``xl save`` destroys the guest right after)."""
    reason = _DEPARTURE_OF_REASON.get(event.reason or "")
    entry = inventory.by_name(event.name) if event.name else None
    if reason is None or entry is None:
        return None
    return _departure(reason, entry.name, entry.uuid, want)


def index_actual(actual: list[ActualDomain]) -> dict[str, ActualDomain]:
    """By name; a dying domain yields to a live one of the same name."""
    out: dict[str, ActualDomain] = {}
    for dom in actual:
        old = out.get(dom.info.name)
        if old is None or old.info.state == "dying":
            out[dom.info.name] = dom
    return out


def remains_by_name(actual: list[ActualDomain], inventory: Inventory) -> dict[str, list[ActualDomain]]:
    """Nameless domains the inventory lists, by the name they were being created under.

    libxl makes the hypervisor domain before it writes the domain's name (and our marker) into
    xenstore; an agent killed in between leaves a paused domain that ``xl list`` shows as
    ``(null)``. Only the inventory, written before each create, can tell it is ours. Nameless
    domains it does not list belong to some other toolstack's unfinished create and are left alone.
    """
    out: dict[str, list[ActualDomain]] = {}
    for dom in actual:
        entry = inventory.domains.get(dom.info.uuid.lower()) if not dom.info.name else None
        if entry is not None and dom.info.domid != 0 and dom.info.state != "dying":
            out.setdefault(entry.name, []).append(dom)
    return out


def _invalid_error(name: str, desired: DesiredSet, owned: OwnedDomain | None) -> str | None:
    """The parse error of the file that declares (or, per the inventory entry of the guest on the
    host, last declared) ``name``, if that file is broken now."""
    for path, dom in desired.last_good.items():
        if dom.name == name:
            return str(desired.invalid[path])
    if owned is not None and owned.file is not None:
        for path, err in desired.invalid.items():
            if str(path) == owned.file:
                return str(err)
    return None


def _unknown_declaration(desired: DesiredSet, owned: OwnedDomain | None) -> str | None:
    """For an owned guest no valid file declares and the inventory cannot tie to a file (the agent
    was killed between creating it and recording it): the invalid files that never parsed, any of
    which may declare it. Pruning it then could destroy a guest because its file is broken."""
    if owned is not None and owned.file is not None:
        return None
    unknown = sorted(str(p) for p in desired.invalid if p not in desired.last_good)
    if not unknown:
        return None
    return f"its file is not recorded and an invalid file may declare it: {', '.join(unknown)}"


def _plan_orphan(out: DomainPlan, act: ActualDomain, desired: DesiredSet, policy: Policy) -> None:
    """An owned domain that no desired file declares any more."""
    if desired.empty_suspicious and not policy.allow_empty:
        out.note(EMPTY_DESIRED, "desired directory is empty: nothing is pruned unless allow_empty",
                 st.DRIFTED)
        return
    if policy.prune == "none":
        out.note(ORPHAN, "desired file removed; prune policy 'none' keeps the guest", st.DRIFTED)
        return
    reason = f"desired file removed (prune={policy.prune})"
    if policy.prune == "shutdown" and act.info.state not in _DEAD_STATES:
        out.act(reason, Shutdown(act.info.domid, act.info.uuid, prune=True))
    else:
        out.act(reason, Destroy(act.info.domid, act.info.uuid, prune=True))
    out.outcome = st.PRUNED


def _plan_running(out: DomainPlan, want: DesiredDomain, act: ActualDomain, policy: Policy,
                  memo: DiffMemo | None) -> None:
    """A live, owned domain that is desired running or paused: diff, hot changes, power state."""
    info = act.info
    if act.config is None:
        if info.state == "paused" and want.power_state != "paused":
            # libxl writes a domain's config when its creation completes and the agent unpauses
            # only after that: a paused guest of ours without one was left half-made (the agent
            # was killed mid-create). It has never run; build it again.
            out.act("half-created remains: paused, and libxl has no config for it",
                    Destroy(info.domid, info.uuid))
            out.act("desired running; replaces the half-created domain", Create(want.config, paused=False))
            return
        out.note(PENDING, "current config could not be retrieved", st.PENDING)
        return
    paused = want.power_state == "paused"
    if memo is None:
        changes = diff_domain(want.config, act.config)
    else:
        changes = memo.diff(want.name, want.config, act.config)
    if changes.restart:
        paths = ", ".join(c.path for c in changes.restart)
        if policy.restart == "always":
            out.act(f"restart-required changes: {paths}",
                    Recreate(info.domid, info.uuid, want.config, paused, [c.path for c in changes.restart]))
            return
        out.note(RESTART_REQUIRED, f"changes need a restart (restart policy 'never'): {paths}",
                 st.RESTART_REQUIRED)
    for change in changes.hot:
        out.act(*_HOT[change.kind](change, info.domid))
    if paused and info.state in ("running", "blocked"):
        out.act("desired power state paused", Pause(info.domid))
    elif not paused and info.state == "paused":
        out.act("desired power state running", Unpause(info.domid))


def _plan_migration(out: DomainPlan, want: DesiredDomain | None, actual: dict[str, ActualDomain],
                    policy: Policy, inventory: Inventory) -> bool:
    """A name absent from the host while ``xl migrate`` moves its guest out or in: True when that
    decides the plan (a guest of ours leaving is recorded as migrated away)."""
    away = actual.get(out.name + MIGRATED_AWAY_SUFFIX)
    if away is not None and is_owned(away.info, inventory, policy):
        out.record = _departure(sd.MIGRATED_AWAY, out.name, away.info.uuid, want)
        out.note(MIGRATING, f"being migrated to another host (domid {away.info.domid} is "
                 f"{away.info.name}): left alone, not re-created here", st.MIGRATED_AWAY)
        return True
    incoming = actual.get(out.name + INCOMING_SUFFIX)
    if incoming is not None:
        out.note(MIGRATING, f"being migrated to this host (domid {incoming.info.domid} is "
                 f"{incoming.info.name}): left alone until xl migrate finishes", st.PENDING)
        return True
    return False


def _plan_image(out: DomainPlan, want: DesiredDomain, departure: Departure) -> bool:
    """A guest saved at host shutdown: restored from its image when the desired file still
    describes it (nothing that needs a restart differs; live changes follow once it runs), else the
    image is set aside and the guest starts afresh. True when the guest is restored."""
    assert departure.image is not None
    out.clear_departure = True
    saved = departure.config or {}
    changes = diff_domain(want.config, saved).restart
    if not changes and want.power_state != "stopped":
        out.act(f"saved at host shutdown into {departure.image}",
                Restore(departure.image, saved, paused=want.power_state == "paused"))
        return True
    why = ("desired power state stopped" if not changes else
           f"its file no longer describes the saved guest: {', '.join(c.path for c in changes)}")
    out.act(f"{departure.image}: {why}", SetAside(departure.image))
    return False


def _held(out: DomainPlan, want: DesiredDomain, departure: Departure | None) -> bool:
    """Note why the guest stays away and return True, or drop a departure that no longer holds it
    (the agent is about to start the guest) and return False."""
    held = held_by(want, departure)
    if held is not None:
        out.note(HELD, held[1], held[0])
        return True
    if departure is not None and out.record is None:
        out.clear_departure = True
    out.record = None
    return False


def _plan_departed_without_file(out: DomainPlan, departure: Departure) -> None:
    """A guest that left while no file declares it: saved and migrated guests stay on record (a
    desired directory that comes back must not start a second copy); other departures are done."""
    if departure.reason == sd.SAVED:
        out.note(HELD, "left by suspend and no desired file declares it", st.SAVED)
    elif departure.reason == sd.MIGRATED_AWAY:
        out.note(HELD, "migrated to another host and no desired file declares it", st.MIGRATED_AWAY)
    else:
        out.clear_departure = True


def _plan_dead(out: DomainPlan, want: DesiredDomain, act: ActualDomain, policy: Policy) -> None:
    """An owned, desired guest that is shut down or crashed but still listed (libxl leaves it so;
    the toolstack decides what follows)."""
    info = act.info
    why = info.shutdown_reason or info.state
    reason = _DEPARTURE_OF_REASON.get(info.shutdown_reason or "")
    if reason == sd.SAVED:
        out.record = _departure(sd.SAVED, out.name, info.uuid, want)
        out.note(HELD, f"suspended (domid {info.domid}: xl save or migrate under way, or left suspended); "
                 "left alone", st.SAVED)
        return
    on_crash = str(want.config.get("on_crash") or "destroy").lower()
    if info.shutdown_reason == "crash" and on_crash == "preserve":
        out.note(CRASHED, f"crashed (domid {info.domid}); kept for inspection (on_crash preserve): "
                 "destroy it (xl destroy) to let the agent go on", st.CRASHED)
        return
    if info.shutdown_reason == "crash" and on_crash in COREDUMP_ACTIONS:
        out.act(f"on_crash {on_crash.replace('_', '-')}",
                CoreDump(info.domid, str(Path(policy.dump_dir) / out.name)))
    out.act(f"remains of a guest that is {info.state} ({why})", Destroy(info.domid, info.uuid))
    departure = _departure(reason, out.name, info.uuid, want) if reason else None
    out.record = departure
    if want.power_state != "stopped" and not _held(out, want, departure):
        out.act(f"desired running, was {info.state} ({why})",
                Create(want.config, paused=want.power_state == "paused"))


def _cpus(cpus: list[int] | None) -> str:
    return ",".join(map(str, cpus)) if cpus is not None else "unchanged"


def _affinity_reason(affinity: Affinity) -> str:
    """``vcpu 0 hard 0,1 soft unchanged; vcpu 1 ...``: what ``xl vcpu-pin`` would be asked."""
    return "; ".join(f"vcpu {vcpu} hard {_cpus(hard)} soft {_cpus(soft)}"
                     for vcpu, (hard, soft) in sorted(affinity.items()))


def _sched_reason(change: Change) -> str:
    """``scheduler weight 256 -> 512, cap default -> 50``: what ``xl sched-credit2`` would be asked."""
    return "scheduler " + ", ".join(
        f"{k} {'default' if change.actual[k] is None else change.actual[k]} -> {v}"
        for k, v in sorted(change.desired.items()))


def _device(change: Change) -> LibxlConfig:
    """The device dict a hotplug call takes: the desired one, or for a removal the actual one."""
    device: LibxlConfig = change.desired if change.desired is not None else change.actual
    return device


#: What the plan does about each hot change of a running guest (domid): the reason and the action.
_HOT: dict[ChangeKind, Callable[[Change, int], tuple[str, Payload]]] = {
    ChangeKind.SET_MEMORY: lambda c, domid: (f"memory target {c.actual} -> {c.desired} KiB",
                                             SetMemory(domid, target_kib=c.desired)),
    ChangeKind.SET_VCPUS: lambda c, domid: (f"online vcpus {c.actual} -> {c.desired}",
                                            SetVcpus(domid, count=c.desired)),
    ChangeKind.SET_MAXMEM: lambda c, domid: (f"maximum memory {c.actual} -> {c.desired} KiB",
                                             SetMaxMemory(domid, max_kib=c.desired)),
    ChangeKind.SET_SCHED: lambda c, domid: (_sched_reason(c), SetSched(domid, params=c.desired)),
    ChangeKind.SET_AFFINITY: lambda c, domid: (_affinity_reason(c.desired),
                                               SetAffinity(domid, affinity=c.desired)),
    ChangeKind.DISK_ADD: lambda c, domid: (c.path, DiskAdd(domid, _device(c))),
    ChangeKind.DISK_REMOVE: lambda c, domid: (c.path, DiskRemove(domid, _device(c))),
    ChangeKind.NIC_ADD: lambda c, domid: (c.path, NicAdd(domid, _device(c))),
    ChangeKind.NIC_REMOVE: lambda c, domid: (c.path, NicRemove(domid, _device(c))),
    ChangeKind.CDROM_CHANGE: lambda c, domid: (c.path, CdromChange(domid, _device(c))),
}


def plan_domain(name: str, desired: DesiredSet, actual: dict[str, ActualDomain], policy: Policy,
                inventory: Inventory, memo: DiffMemo | None = None,
                remains: list[ActualDomain] | None = None) -> DomainPlan:
    """Plan one name: the agent's per-key reconcile. ``actual`` comes from ``index_actual``;
    ``remains`` from ``remains_by_name``; ``memo`` (optional) reuses the last diff of an unchanged
    pair of configs."""
    want = desired.domains.get(name)
    act = actual.get(name)
    out = DomainPlan(name, file=want.file if want else None)
    for dom in remains or ():
        # They never ran and hold memory a create may need: gone first, whatever the file says.
        out.act(f"remains of a create cut short (domid {dom.info.domid}, no name in xenstore)",
                Destroy(dom.info.domid, dom.info.uuid))
    if name in desired.conflicts:
        files = ", ".join(str(f) for f in desired.conflicts[name])
        out.file = desired.conflicts[name][0]
        out.note(CONFLICT, f"declared by more than one file (name or uuid): {files}; none applied",
                 st.CONFLICT)
        return out
    if in_migration(name):
        out.note(MIGRATING, "a name xl migrate gives a guest while it moves: never touched", st.PENDING)
        return out
    if act is None and _plan_migration(out, want, actual, policy, inventory):
        return out
    error = _invalid_error(name, desired, inventory.domains.get(act.info.uuid.lower()) if act else None) \
        if desired.invalid else None  # (``last_good`` holds invalid files only)
    if act is not None and act.info.state == "dying":
        out.note(PENDING, "domain is being destroyed", st.PENDING)
        return out
    departure = inventory.departed.get(name)
    owned = act is not None and is_owned(act.info, inventory, policy)
    if act is not None and not owned and want is not None:
        if not policy.adopt or act.info.domid == 0:
            out.note(UNOWNED, f"a domain named {name!r} exists but was not created by {policy.owner!r}; "
                     "left alone (enable adopt to take it over)", st.CONFLICT)
            return out
        out.act("unowned domain with a desired name (adopt enabled)", Adopt(act.info.domid, act.info.uuid))
        owned = True
    if act is not None and owned and departure is not None and act.info.state not in _DEAD_STATES:
        out.clear_departure = True  # it runs again
    if want is None:
        if error is None and act is not None and owned:
            error = _unknown_declaration(desired, inventory.domains.get(act.info.uuid.lower()))
        if act is None and departure is not None:
            _plan_departed_without_file(out, departure)
        if error is not None:
            out.note(INVALID, f"desired file is invalid; guest left as is: {error}", st.INVALID)
        elif act is not None and owned:
            _plan_orphan(out, act, desired, policy)
        elif out.actions:
            out.outcome = st.PRUNED  # only remains were there
        return out
    if error is not None:
        out.note(INVALID, f"desired file is invalid; last good version stays in force: {error}", st.INVALID)
    if act is None:
        if want.power_state == "stopped" and not (departure and departure.image):
            return out
        entry = inventory.by_name(name)
        if departure is None and entry is not None and want.run_strategy != "Always":
            # Ours, created from this name, and gone without a shutdown the agent saw.
            departure = out.record = Departure(name, sd.DESTROYED, entry.uuid, entry.content_hash)
        if departure is not None and departure.image is not None:
            if _plan_image(out, want, departure):
                return out
            departure = None
        if not _held(out, want, departure):
            out.act("not on the host", Create(want.config, paused=want.power_state == "paused"))
        return out
    if act.info.state in _DEAD_STATES:
        _plan_dead(out, want, act, policy)
        return out
    if want.power_state == "stopped":
        out.act("desired power state stopped", Shutdown(act.info.domid, act.info.uuid))
        return out
    _plan_running(out, want, act, policy, memo)
    return out


def plan(desired: DesiredSet, actual: list[ActualDomain], policy: Policy, inventory: Inventory,
         memo: DiffMemo | None = None) -> Plan:
    """Plan every name that is desired, in conflict, invalid, or owned on the host (pure)."""
    by_name = index_actual(actual)
    remains = remains_by_name(actual, inventory)
    names = set(desired.domains) | set(desired.conflicts) | desired.invalid_names() | set(remains)
    names |= {n for n, a in by_name.items()  # a desired name is in already: asked nothing more
              if n not in names and n and not in_migration(n) and is_owned(a.info, inventory, policy)}
    names |= set(inventory.departed)
    domains = [plan_domain(n, desired, by_name, policy, inventory, memo, remains.get(n))
               for n in sorted(names)]
    if memo is not None:
        memo.keep(names)
    return Plan(domains + _unnamed_invalid(desired, domains))


def _unnamed_invalid(desired: DesiredSet, planned: list[DomainPlan]) -> list[DomainPlan]:
    """Invalid files that no planned domain speaks for (they never parsed, so declare no name we
    know): each still gets a note, keyed by its file name, so a broken file is never silent."""
    if not desired.invalid:
        return []
    spoken = {n.message for d in planned for n in d.notes if n.kind == INVALID}
    out = []
    for path, err in sorted(desired.invalid.items()):
        if not any(str(err) in message for message in spoken):
            dp = DomainPlan(path.name, file=path)
            dp.note(INVALID, f"desired file is invalid; nothing in it is applied: {err}", st.INVALID)
            out.append(dp)
    return out
