"""Executing plans against a host: the reconciler the agent and ``xenreconcile apply`` drive.

``Reconciler`` takes a snapshot of the host, plans with ``reconcilers.plan`` and runs the actions
through the ``Backend`` interface, recording ownership in the state directory and outcomes in a
``StatusBook``. It is idempotent: a second run over an unchanged host and desired set plans nothing.
A failing action stops the remaining actions of that domain only, and the domain's status says why.
Each action kind has one handler, found in one table (``_HANDLERS``, keyed by ``ActionKind``).

A plan runs phase by phase (``plan.Action.phase``: what frees resources before what starts, before
what adjusts), and within a phase the domains side by side, ``parallel`` at a time, each domain's
actions in their planned order. A boot storm is then as fast as the host can build guests at
once, not the sum of every create: xendomains starts the guests of /etc/xen/auto one by one.

The reconciler is the only writer of the status book, the agent's loop included (a reconcile that
could not run at all is recorded through ``failed``): the rules of what a status holds and when a
name leaves the book live in one place, so ``xenreconcile status``, ``/status`` and the metrics
cannot disagree about a guest because two writers applied different rules.

Display ports come from ``reconcilers.ports``: planning sees each autoport guest's recorded port
written into its desired config, and a create gets its ports assigned just before libxl is asked.

Ownership is checked twice: the plan only proposes actions on owned domains, and before any call
that touches an existing domain the executor checks the domid against the snapshot's owned set
(plus domains adopted in this run), so a planning bug cannot reach a guest that is not ours.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid as uuid_mod
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from libxl.errors import XenReconcileError
from libxl.hosts.backend import OWNER_KEY, Backend, DomainEvent, LibxlConfig
from libxl.hosts.display import DisplayPorts
from libxl.hosts.saveimage import set_aside
from reconcilers import actions as ac
from reconcilers import plan as pl
from reconcilers import status as st
from reconcilers.actions import ActionKind
from reconcilers.desired import DesiredSet
from reconcilers.diff import DiffMemo
from reconcilers.handover import Adoption, adoption
from reconcilers.ownership import is_owned
from reconcilers.policy import Policy
from reconcilers.ports import PortAllocator
from reconcilers.state import Departure, Inventory, OwnedDomain, StateDir

#: States in which a domain's config is worth retrieving (dead and dying ones are only destroyed).
_LIVE = ("running", "blocked", "paused")
#: What the status book records for a guest without autoport displays.
_NO_PORTS = DisplayPorts()


@dataclass
class Result:
    """The outcome of reconciling one name."""
    name: str
    status: str
    applied: list[pl.Action] = field(default_factory=list)
    notes: list[pl.Note] = field(default_factory=list)
    error: str | None = None
    #: The status this reconcile recorded (kept here even when the book then let the name go).
    recorded: st.Status | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def quiet(self) -> bool:
        """Nothing applied, noted or failed: a reconcile with nothing to say."""
        return not (self.applied or self.notes or self.error)


def _declared(name: str, desired: DesiredSet) -> bool:
    """Whether a file declares ``name``: valid, in conflict, or invalid and kept from its last good
    version (``invalid_names`` is built only for the rare name that is neither of the others)."""
    return name in desired.domains or name in desired.conflicts or name in desired.invalid_names()


@dataclass(frozen=True)
class _Step:
    """What an action's handler may need beside its payload: the name it was planned for, the
    domids owned (an adopt adds to them for the rest of the plan) and the desired set."""
    name: str
    owned: set[int]
    desired: DesiredSet


def for_create(config: LibxlConfig, owner: str) -> LibxlConfig:
    """A copy of ``config`` ready for ``libxl_domain_create_new``: it carries the ownership marker
    in ``c_info.xsdata``, and a fresh uuid when the file gave none. libxl does not make one up (xl
    does, in its parser): left nil, every such guest shares ``/vm/0000...`` in xenstore and libxl
    cannot find its stored config again (seen on real Xen)."""
    out = copy.deepcopy(config)
    c_info = out.setdefault("c_info", {})
    xsdata = c_info.get("xsdata") or {}
    c_info["xsdata"] = {**xsdata, OWNER_KEY: owner}
    if not c_info.get("uuid") or not uuid_mod.UUID(str(c_info["uuid"])).int:
        c_info["uuid"] = str(uuid_mod.uuid4())
    return out


class Reconciler:
    """Makes one host match desired sets, one name or all of them at a time.

    ``reconcile_all(desired)`` is the full resync; ``reconcile(name, desired)`` the per-key
    reconcile of the agent's work queue (keys are never worked on twice at once; the inventory is
    locked anyway because a full resync may run beside a key).
    """

    def __init__(self, backend: Backend, policy: Policy, state_dir: Path | str,
                 status: st.StatusBook | None = None, *, parallel: int = 1) -> None:
        """``parallel``: how many domains' actions run at once within a phase of a plan."""
        self.backend = backend
        self.parallel = max(1, parallel)
        self.policy = policy
        self.state = StateDir(Path(state_dir))
        self.status = status if status is not None else st.StatusBook()
        self._lock = threading.Lock()
        self._diffs = DiffMemo()  # a no-op resync mostly re-diffs unchanged pairs of configs
        #: The domains dict of the last desired set and its guests with displays (``_displayed``).
        self._displays: tuple[object, list[str]] = (None, [])
        self.inventory: Inventory = self.state.load()
        self.ports = PortAllocator(self.state, (policy.display_port_min, policy.display_port_max))

    # -- observing -------------------------------------------------------------------------------

    def snapshot(self, desired: DesiredSet, only: str | None = None) -> list[pl.ActualDomain]:
        """The host now: every domain, with the config of the live ones the plan may diff.

        ``only`` limits config retrieval to one name (a per-key reconcile plans just that name, and
        retrieving every guest's config per key would make a burst of N keys cost N*N libxl calls).
        """
        out = []
        with self._lock:
            inventory = self.inventory.copy()
        for info in self.backend.list_domains():
            config = None
            relevant = info.name in desired.domains and only in (None, info.name) and (
                self.policy.adopt or is_owned(info, inventory, self.policy))
            if relevant and info.state in _LIVE:
                try:
                    config = self.backend.domain_config(info.domid)
                except XenReconcileError:
                    config = None  # planned as Pending; the next resync tries again
            out.append(pl.ActualDomain(info, config))
        return out

    def plan(self, desired: DesiredSet, actual: list[pl.ActualDomain] | None = None) -> pl.Plan:
        """What ``reconcile_all`` would do now (the dry run behind ``xenreconcile plan``).

        ``actual``: a ``snapshot`` the caller took, so it knows which guests the plan judged (the
        fault soak guards the very domid a plan found in sync, not one it looked up before or after)."""
        actual = self.snapshot(desired) if actual is None else actual
        return pl.plan(self._with_ports(desired, actual, record=False), actual, self.policy,
                       self._inventory_copy(), self._diffs)

    def _with_ports(self, desired: DesiredSet, actual: list[pl.ActualDomain], *,
                    record: bool = True) -> DesiredSet:
        """``desired`` with each autoport guest's display ports written in (``reconcilers.ports``),
        so the plan compares what the guest was created with (``record``: see ``resolve``)."""
        displayed = self._displayed(desired)
        if not displayed:
            return desired
        configs = {a.info.name: a.config for a in actual if a.config is not None}
        domains = dict(desired.domains)
        for name in displayed:
            domains[name] = self.ports.resolve(desired.domains[name], configs.get(name), record=record)
        return replace(desired, domains=domains)

    def _displayed(self, desired: DesiredSet) -> list[str]:
        """The desired guests with a display the agent may choose a port for
        (``ports.autoport_kinds``), found once per desired set: a rescan that changed nothing hands
        over the very same ``domains`` dict (``load_desired``), and a resync asks every time."""
        kept = self._displays  # once: a worker's reconcile may replace it meanwhile
        if kept[0] is not desired.domains:
            kept = self._displays = (desired.domains, [
                name for name, want in desired.domains.items()
                if want.domain is not None and want.domain.devices.graphics])
        return kept[1]

    def _inventory_copy(self) -> Inventory:
        with self._lock:
            return self.inventory.copy()

    # -- reconciling -----------------------------------------------------------------------------

    def reconcile_all(self, desired: DesiredSet) -> list[Result]:
        """Plan and apply every name; statuses of names that left the plan are forgotten."""
        actual = self.snapshot(desired)
        # Planned with the entries of guests that vanished (a run strategy asks how they left),
        # which are dropped before anything is executed (a create may reuse a vanished uuid).
        desired = self._with_ports(desired, actual)
        whole = pl.plan(desired, actual, self.policy, self._inventory_copy(), self._diffs)
        self._forget_absent({a.info.uuid.lower() for a in actual})
        results = self._execute(whole, actual, desired)
        self.ports.keep(desired.domains.keys() | desired.invalid_names() | {a.info.name for a in actual})
        planned = {d.name for d in whole.domains}
        for name in self.status.snapshot():
            if name not in planned:
                self.status.forget(name)
        return results

    def reconcile(self, name: str, desired: DesiredSet) -> Result:
        """Plan and apply one name (one work-queue key)."""
        actual = self.snapshot(desired, only=name)
        desired = self._with_ports(desired, actual)
        inventory = self._inventory_copy()
        one = pl.plan_domain(name, desired, pl.index_actual(actual), self.policy, inventory, self._diffs,
                             pl.remains_by_name(actual, inventory).get(name))
        return self._execute(pl.Plan([one]), actual, desired)[0]

    def _execute(self, plan: pl.Plan, actual: list[pl.ActualDomain], desired: DesiredSet) -> list[Result]:
        inventory = self._inventory_copy()
        owned: set[int] = set()
        owned_uuids: dict[str, str] = {}
        for info in (a.info for a in actual):  # one pass (a resync lists every guest)
            if is_owned(info, inventory, self.policy):
                owned.add(info.domid)
                owned_uuids[info.name] = info.uuid
        results = {d.name: Result(d.name, d.outcome, notes=list(d.notes)) for d in plan.domains}

        def run_domain(actions: list[pl.Action]) -> None:
            """One domain's actions of one phase, in order; a failure ends that domain's run."""
            result = results[actions[0].domain]
            for action in actions:
                if result.error is not None:
                    return
                try:
                    self._run(action, owned, desired)
                except XenReconcileError as exc:
                    if action.kind == ActionKind.CORE_DUMP:  # like xl: no dump is no reason to keep the wreck
                        result.notes.append(pl.Note(action.domain, pl.CORE_DUMP_FAILED, str(exc)))
                        continue
                    result.error = f"{action.kind}: {exc}"
                    result.status = st.ERROR
                else:
                    result.applied.append(action)

        for batch in _phases(plan.actions):
            self._side_by_side(run_domain, batch)
        self._keep_departures(plan.domains, results)
        known = desired.domains.keys() | {a.info.name for a in actual}  # once: not a set per domain
        ports = self.ports.snapshot()  # with those the actions above assigned; one lock, not one per guest
        for dom in plan.domains:
            result = results[dom.name]
            if not dom.actions and not dom.notes and dom.name not in known:
                self.status.forget(dom.name)  # nothing desired, nothing there: nothing to report
                continue
            if result.ok:
                self._refresh_origin(dom.name, desired, owned_uuids.get(dom.name))
            result.recorded = self.status.record(
                dom.name, result.status, file=str(dom.file) if dom.file else None, error=result.error,
                action=result.applied[-1].kind if result.applied else None,
                ports=ports.get(dom.name, _NO_PORTS))
            if result.quiet and result.status == st.IN_SYNC and not _declared(dom.name, desired):
                self.status.forget(dom.name)  # an unmanaged guest left alone: nothing to report
        return [results[d.name] for d in plan.domains]

    def _side_by_side(self, run: Callable[[list[pl.Action]], None], batch: list[list[pl.Action]]) -> None:
        """``run`` each domain's actions, ``parallel`` domains at a time (inline when one would do:
        a per-key reconcile starts no thread). An exception nobody foresaw still reaches the
        caller, once the other domains' actions are done."""
        if len(batch) == 1 or self.parallel == 1:
            for actions in batch:
                run(actions)
            return
        with ThreadPoolExecutor(max_workers=min(self.parallel, len(batch)),
                                thread_name_prefix="xr-apply") as pool:
            for _ in pool.map(run, batch):
                pass

    def failed(self, name: str, error: str) -> Result:
        """A reconcile of ``name`` that could not run (the host did not answer): recorded as an error
        (display ports kept), so the next attempt is reported as a transition."""
        return Result(name, st.ERROR, error=error, recorded=self.status.record(name, st.ERROR, error=error))

    def _keep_departures(self, planned: list[pl.DomainPlan], results: dict[str, Result]) -> None:
        """Record or drop the departures the plan decided on for the names whose actions all
        succeeded (in one transaction for all of them)."""
        changes = [d for d in planned if (d.record is not None or d.clear_departure) and results[d.name].ok]
        if not changes:
            return
        with self._lock:
            recorded = [replace(d.record, time=time.time()) for d in changes if d.record is not None]
            cleared = [d.name for d in changes if d.record is None]
            for departure in recorded:
                self.inventory.departed[departure.name] = departure
            self.inventory.clear_departures(cleared)
            self.state.record_departures(recorded, cleared)

    def note_event(self, event: DomainEvent, desired: DesiredSet | None) -> Departure | None:
        """Record how an owned guest left, from the host's shutdown event (``plan.departure_for_event``);
        the agent calls this on its event thread, before the guest's death is reconciled."""
        want = desired.domains.get(event.name) if desired is not None and event.name else None
        with self._lock:
            departure = pl.departure_for_event(event, want, self.inventory)
            if departure is None:
                return None
            departure = replace(departure, time=time.time())
            self.inventory.departed[departure.name] = departure
            self.state.record_departures([departure])
        return departure

    def adopt(self, names: list[str], desired: DesiredSet) -> list[Adoption]:
        """The operator's ``xenreconcile adopt``: record the named running guests as owned
        (``agent.lifecycle.adoption`` decides which may be)."""
        domains = self.backend.list_domains()
        out = []
        with self._lock:
            for name in names:
                verdict, entry = adoption(name, desired, domains, self.inventory, self.policy)
                out.append(verdict)
                if entry is not None:
                    self.state.put(entry, self.inventory.add(entry))
        return out

    def clear(self, names: list[str]) -> list[str]:
        """The operator's ``xenreconcile clear``: forget the departures of ``names``; returns those
        that had one (the next reconcile starts them as their files say)."""
        with self._lock:
            cleared = self.inventory.clear_departures(names)
            self.state.record_departures(cleared=cleared)
        return cleared

    def _refresh_origin(self, name: str, desired: DesiredSet, uuid: str | None) -> None:
        """Keep the inventory's file and applied revision current (a renamed or edited file), so a
        later broken file still finds the guest it protects. An owned guest missing from the
        inventory (``uuid``: the agent was killed between creating and recording it) is recorded."""
        want = desired.domains.get(name)
        with self._lock:
            entry = self.inventory.by_name(name)
            if entry is None and uuid is not None:
                entry = OwnedDomain(name, uuid)
            if want is None or entry is None:
                return
            if entry.content_hash == want.content_hash and entry.file == str(want.file):
                return
            updated = replace(entry, file=str(want.file), content_hash=want.content_hash)
            self.state.put(updated, self.inventory.add(updated))

    def _run(self, action: pl.Action, owned: set[int], desired: DesiredSet) -> None:
        """One action through its handler (``_HANDLERS``); raises on failure. An action on an
        existing guest (``OnDomain``) runs only when the guest is ours."""
        payload = action.payload
        if isinstance(payload, ac.OnDomain) and payload.domid not in owned:
            raise XenReconcileError(
                f"refusing to {action.kind} domid {payload.domid}: not owned by {self.policy.owner}")
        _HANDLERS[action.kind](self, _Step(action.domain, owned, desired), payload)

    # -- one handler per action kind (``_HANDLERS``) ---------------------------------------------

    def _do_create(self, step: _Step, p: ac.Create) -> None:
        self._create(step.name, p.config, p.paused, step.desired)

    def _do_restore(self, step: _Step, p: ac.Restore) -> None:
        self._create(step.name, p.config, p.paused, step.desired, image=p.path)

    def _do_set_aside(self, step: _Step, p: ac.SetAside) -> None:
        set_aside(Path(p.path))

    def _do_adopt(self, step: _Step, p: ac.Adopt) -> None:
        self._remember(OwnedDomain(step.name, p.uuid, *self._origin(step.name, step.desired), adopted=True))
        step.owned.add(p.domid)  # later actions of this plan may touch it

    def _do_core_dump(self, step: _Step, p: ac.CoreDump) -> None:
        try:
            Path(p.path).parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise XenReconcileError(f"{Path(p.path).parent}: cannot create: {err.strerror}") from err
        self.backend.core_dump(p.domid, p.path)

    def _do_recreate(self, step: _Step, p: ac.Recreate) -> None:
        self._stop(p.domid)
        self._create(step.name, p.config, p.paused, step.desired)

    def _do_shutdown(self, step: _Step, p: ac.Shutdown) -> None:
        self._stop(p.domid)
        self._removed(step.name, p)

    def _do_destroy(self, step: _Step, p: ac.Destroy) -> None:
        self.backend.destroy(p.domid)
        self._removed(step.name, p)

    def _removed(self, name: str, p: ac.Shutdown | ac.Destroy) -> None:
        self._forget(p.uuid)  # a create later in this plan records the new guest
        if p.prune:
            self.ports.release(name)

    def _do_pause(self, step: _Step, p: ac.Pause) -> None:
        self.backend.pause(p.domid)

    def _do_unpause(self, step: _Step, p: ac.Unpause) -> None:
        self.backend.unpause(p.domid)

    def _do_disk_add(self, step: _Step, p: ac.DiskAdd) -> None:
        self.backend.disk_add(p.domid, p.device)

    def _do_disk_remove(self, step: _Step, p: ac.DiskRemove) -> None:
        self.backend.disk_remove(p.domid, p.device)

    def _do_nic_add(self, step: _Step, p: ac.NicAdd) -> None:
        self.backend.nic_add(p.domid, p.device)

    def _do_nic_remove(self, step: _Step, p: ac.NicRemove) -> None:
        self.backend.nic_remove(p.domid, p.device)

    def _do_cdrom_change(self, step: _Step, p: ac.CdromChange) -> None:
        self.backend.cdrom_insert(p.domid, p.device)

    def _do_set_memory(self, step: _Step, p: ac.SetMemory) -> None:
        self.backend.set_memory_target(p.domid, p.target_kib)

    def _do_set_vcpus(self, step: _Step, p: ac.SetVcpus) -> None:
        self.backend.set_vcpus_online(p.domid, p.count)

    def _do_set_affinity(self, step: _Step, p: ac.SetAffinity) -> None:
        for vcpu, (hard, soft) in sorted(p.affinity.items()):
            self.backend.set_vcpu_affinity(p.domid, vcpu, hard, soft)

    def _do_set_sched(self, step: _Step, p: ac.SetSched) -> None:
        self.backend.set_sched_params(p.domid, p.params)

    def _do_set_max_memory(self, step: _Step, p: ac.SetMaxMemory) -> None:
        self.backend.set_max_memory(p.domid, p.max_kib)

    def _stop(self, domid: int) -> None:
        """Graceful shutdown under the policy's timeout, then destroy whatever is left listed."""
        gone = self.backend.shutdown(domid, self.policy.shutdown_timeout)
        if not gone or any(i.domid == domid for i in self.backend.list_domains()):
            self.backend.destroy(domid)

    def _create(self, name: str, config: LibxlConfig, paused: bool, desired: DesiredSet,
                image: str | None = None) -> None:
        """Record the new guest's uuid *before* asking libxl for it: killed mid-create, the agent
        may leave a paused domain that xenstore has no name for yet, and only this record lets the
        next run know that domain is its own remains (``plan.remains_by_name``). libxl makes the
        domain with ``c_info.uuid`` as its handle, so the uuid chosen here is the one listed."""
        ready = for_create(config, self.policy.owner)
        want = desired.domains.get(name)
        if want is not None:
            ready = self.ports.assign(name, ready, want.domain, desired.domains.values())
        uuid = str(ready["c_info"]["uuid"])
        self._remember(OwnedDomain(name, uuid, *self._origin(name, desired)))
        try:
            if image is None:
                self.backend.create(ready, paused=paused)
            else:
                self.backend.restore(image, ready, paused=paused)
        except XenReconcileError:
            self._forget(uuid)  # libxl destroys what a failed create made
            raise
        if image is not None:  # restored: the image is spent (xendomains and libvirt-guests alike)
            Path(image).unlink(missing_ok=True)

    @staticmethod
    def _origin(name: str, desired: DesiredSet) -> tuple[str | None, str | None]:
        want = desired.domains.get(name)
        return (str(want.file), want.content_hash) if want else (None, None)

    def _remember(self, entry: OwnedDomain) -> None:
        with self._lock:
            self.state.put(entry, self.inventory.add(entry))

    def _forget_absent(self, listed: set[str]) -> None:
        """Drop entries for uuids the host does not list: a guest destroyed behind the agent's back,
        or a create recorded but killed before libxl made anything. Only the full resync does
        this, which no create of this agent runs beside (and no other writer: the state lock)."""
        with self._lock:
            absent = [uuid for uuid in self.inventory.domains if uuid not in listed]
        if absent:
            self._forget(*absent)

    def _forget(self, *uuids: str) -> None:
        """Drop ``uuids`` from the inventory, in one transaction."""
        with self._lock:
            for uuid in uuids:
                self.inventory.remove(uuid)
            self.state.delete(uuids)


def _phases(actions: list[pl.Action]) -> Iterator[list[list[pl.Action]]]:
    """``actions`` (in execution order: by phase, then as planned) cut into phases, each a list of
    per-domain runs that may go side by side."""
    batch: dict[str, list[pl.Action]] = {}
    phase = None
    for action in actions:
        if action.phase != phase and batch:
            yield list(batch.values())
            batch = {}
        phase = action.phase
        batch.setdefault(action.domain, []).append(action)
    if batch:
        yield list(batch.values())


#: The one place an action kind meets the code that carries it out. Each handler takes its own
#: payload class (``reconcilers.actions``); the table is typed loosely because of that.
_HANDLERS: dict[ActionKind, Callable[[Reconciler, _Step, Any], None]] = {
    ActionKind.CREATE: Reconciler._do_create,
    ActionKind.RESTORE: Reconciler._do_restore,
    ActionKind.SET_ASIDE: Reconciler._do_set_aside,
    ActionKind.ADOPT: Reconciler._do_adopt,
    ActionKind.CORE_DUMP: Reconciler._do_core_dump,
    ActionKind.SHUTDOWN: Reconciler._do_shutdown,
    ActionKind.DESTROY: Reconciler._do_destroy,
    ActionKind.RECREATE: Reconciler._do_recreate,
    ActionKind.PAUSE: Reconciler._do_pause,
    ActionKind.UNPAUSE: Reconciler._do_unpause,
    ActionKind.DISK_ADD: Reconciler._do_disk_add,
    ActionKind.DISK_REMOVE: Reconciler._do_disk_remove,
    ActionKind.NIC_ADD: Reconciler._do_nic_add,
    ActionKind.NIC_REMOVE: Reconciler._do_nic_remove,
    ActionKind.CDROM_CHANGE: Reconciler._do_cdrom_change,
    ActionKind.SET_MEMORY: Reconciler._do_set_memory,
    ActionKind.SET_VCPUS: Reconciler._do_set_vcpus,
    ActionKind.SET_AFFINITY: Reconciler._do_set_affinity,
    ActionKind.SET_SCHED: Reconciler._do_set_sched,
    ActionKind.SET_MAXMEM: Reconciler._do_set_max_memory,
}
