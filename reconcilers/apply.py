"""Executing plans against a host: the reconciler the agent and ``xenreconcile apply`` drive.

``Reconciler`` takes a snapshot of the host, plans with ``reconcilers.plan`` and runs the actions
through the ``Backend`` interface, recording ownership in the state directory and outcomes in a
``StatusBook``. It is idempotent: a second run over an unchanged host and desired set plans nothing.
A failing action stops the remaining actions of that domain only, and the domain's status says why.

Ownership is checked twice: the plan only proposes actions on owned domains, and before any call
that touches an existing domain the executor checks the domid against the snapshot's owned set
(plus domains adopted in this run), so a planning bug cannot reach a guest that is not ours.
"""

from __future__ import annotations

import copy
import threading
import uuid as uuid_mod
from dataclasses import dataclass, field, replace
from pathlib import Path

from libxl.backend import OWNER_KEY, Backend, LibxlConfig
from libxl.errors import XenReconcileError
from reconcilers import plan as pl
from reconcilers import status as st
from reconcilers.desired import DesiredSet
from reconcilers.diff import DiffMemo
from reconcilers.policy import Policy
from reconcilers.state import Inventory, OwnedDomain, StateDir

#: States in which a domain's config is worth retrieving (dead and dying ones are only destroyed).
_LIVE = ("running", "blocked", "paused")


@dataclass
class Result:
    """The outcome of reconciling one name."""
    name: str
    status: str
    applied: list[pl.Action] = field(default_factory=list)
    notes: list[pl.Note] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
                 status: st.StatusBook | None = None) -> None:
        self.backend = backend
        self.policy = policy
        self.state = StateDir(Path(state_dir))
        self.status = status if status is not None else st.StatusBook()
        self._lock = threading.Lock()
        self._diffs = DiffMemo()  # a no-op resync mostly re-diffs unchanged pairs of configs
        self.inventory: Inventory = self.state.load()

    # -- observing -------------------------------------------------------------------------------

    def snapshot(self, desired: DesiredSet, only: str | None = None) -> list[pl.ActualDomain]:
        """The host now: every domain, with the config of the live ones the plan may diff.

        ``only`` limits config retrieval to one name (a per-key reconcile plans just that name, and
        retrieving every guest's config per key would make a burst of N keys cost N*N libxl calls).
        """
        out = []
        with self._lock:
            inventory = Inventory(dict(self.inventory.domains))
        for info in self.backend.list_domains():
            config = None
            relevant = info.name in desired.domains and only in (None, info.name) and (
                self.policy.adopt or pl.is_owned(info, inventory, self.policy))
            if relevant and info.state in _LIVE:
                try:
                    config = self.backend.domain_config(info.domid)
                except XenReconcileError:
                    config = None  # planned as Pending; the next resync tries again
            out.append(pl.ActualDomain(info, config))
        return out

    def plan(self, desired: DesiredSet) -> pl.Plan:
        """What ``reconcile_all`` would do now (the dry run behind ``xenreconcile plan``)."""
        return pl.plan(desired, self.snapshot(desired), self.policy, self._inventory_copy(), self._diffs)

    def _inventory_copy(self) -> Inventory:
        with self._lock:
            return Inventory(dict(self.inventory.domains))

    # -- reconciling -----------------------------------------------------------------------------

    def reconcile_all(self, desired: DesiredSet) -> list[Result]:
        """Plan and apply every name; statuses of names that left the plan are forgotten."""
        actual = self.snapshot(desired)
        self._forget_absent({a.info.uuid.lower() for a in actual})
        whole = pl.plan(desired, actual, self.policy, self._inventory_copy(), self._diffs)
        results = self._execute(whole, actual, desired)
        planned = {d.name for d in whole.domains}
        for name in self.status.snapshot():
            if name not in planned:
                self.status.forget(name)
        return results

    def reconcile(self, name: str, desired: DesiredSet) -> Result:
        """Plan and apply one name (one work-queue key)."""
        actual = self.snapshot(desired, only=name)
        inventory = self._inventory_copy()
        one = pl.plan_domain(name, desired, pl.index_actual(actual), self.policy, inventory, self._diffs,
                             pl.remains_by_name(actual, inventory).get(name))
        return self._execute(pl.Plan([one]), actual, desired)[0]

    def _execute(self, plan: pl.Plan, actual: list[pl.ActualDomain], desired: DesiredSet) -> list[Result]:
        inventory = self._inventory_copy()
        owned = {a.info.domid for a in actual if pl.is_owned(a.info, inventory, self.policy)}
        owned_uuids = {a.info.name: a.info.uuid for a in actual if a.info.domid in owned}
        results = {d.name: Result(d.name, d.outcome, notes=list(d.notes)) for d in plan.domains}
        for action in plan.actions:
            result = results[action.domain]
            if result.error is not None:
                continue
            try:
                self._run(action, owned, desired)
            except XenReconcileError as exc:
                result.error = f"{action.kind}: {exc}"
                result.status = st.ERROR
            else:
                result.applied.append(action)
        known = desired.domains.keys() | {a.info.name for a in actual}  # once: not a set per domain
        for dom in plan.domains:
            result = results[dom.name]
            if not dom.actions and not dom.notes and dom.name not in known:
                self.status.forget(dom.name)  # nothing desired, nothing there: nothing to report
                continue
            if result.ok:
                self._refresh_origin(dom.name, desired, owned_uuids.get(dom.name))
            self.status.record(dom.name, result.status, file=str(dom.file) if dom.file else None,
                               error=result.error,
                               action=result.applied[-1].kind if result.applied else None)
        return [results[d.name] for d in plan.domains]

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
            if (entry.file, entry.content_hash) == (str(want.file), want.content_hash):
                return
            updated = replace(entry, file=str(want.file), content_hash=want.content_hash)
            self.state.put(updated, self.inventory.add(updated))

    def _run(self, action: pl.Action, owned: set[int], desired: DesiredSet) -> None:
        """One backend call (or two, for shutdown-then-destroy); raises on failure."""
        d = action.details
        if action.kind == pl.CREATE:
            self._create(action.domain, d["config"], d["paused"], desired)
            return
        domid = d["domid"]
        if action.kind == pl.ADOPT:
            self._remember(OwnedDomain(action.domain, d["uuid"], *self._origin(action.domain, desired),
                                       adopted=True))
            owned.add(domid)
            return
        if domid not in owned:
            raise XenReconcileError(
                f"refusing to {action.kind} domid {domid}: not owned by {self.policy.owner}")
        b = self.backend
        if action.kind == pl.RECREATE:
            self._stop(domid)
            self._create(action.domain, d["config"], d["paused"], desired)
        elif action.kind in (pl.SHUTDOWN, pl.DESTROY):
            if action.kind == pl.SHUTDOWN:
                self._stop(domid)
            else:
                b.destroy(domid)
            self._forget(d["uuid"])  # a create later in this plan records the new guest
        elif action.kind == pl.PAUSE:
            b.pause(domid)
        elif action.kind == pl.UNPAUSE:
            b.unpause(domid)
        elif action.kind == "set-memory":
            b.set_memory_target(domid, d["target_kib"])
        elif action.kind == "set-vcpus":
            b.set_vcpus_online(domid, d["count"])
        else:
            call = {"hotplug-disk-add": b.disk_add, "hotplug-disk-remove": b.disk_remove,
                    "hotplug-nic-add": b.nic_add, "hotplug-nic-remove": b.nic_remove,
                    "cdrom-change": b.cdrom_insert}[action.kind]
            call(domid, d["device"])

    def _stop(self, domid: int) -> None:
        """Graceful shutdown under the policy's timeout, then destroy whatever is left listed."""
        gone = self.backend.shutdown(domid, self.policy.shutdown_timeout)
        if not gone or any(i.domid == domid for i in self.backend.list_domains()):
            self.backend.destroy(domid)

    def _create(self, name: str, config: LibxlConfig, paused: bool, desired: DesiredSet) -> None:
        """Record the new guest's uuid *before* asking libxl for it: killed mid-create, the agent
        may leave a paused domain that xenstore has no name for yet, and only this record lets the
        next run know that domain is its own remains (``plan.remains_by_name``). libxl makes the
        domain with ``c_info.uuid`` as its handle, so the uuid chosen here is the one listed."""
        ready = for_create(config, self.policy.owner)
        uuid = str(ready["c_info"]["uuid"])
        self._remember(OwnedDomain(name, uuid, *self._origin(name, desired)))
        try:
            self.backend.create(ready, paused=paused)
        except XenReconcileError:
            self._forget(uuid)  # libxl destroys what a failed create made
            raise

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
