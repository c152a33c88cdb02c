"""The simulated host itself: ``SimHost``, the ``Backend`` operations as libxl carries them out.

Each operation is one transaction on the host state (``libxl.hosts.sim.store``): faults are
injected first (``libxl.hosts.sim.faults``), the config is checked and normalised as libxl does
(``libxl.hosts.sim.checks``), and the change is committed whole or not at all.

Time-dependent behaviour (a guest obeying a shutdown request after a delay) is stored as due times
and applied by whichever caller touches the state next, which works across processes without a
daemon. Events are kept in a bounded log inside the state; ``watch_events`` replays new entries.

Test hooks: ``crash``, ``shutdown_from_inside``, ``set_unresponsive``, ``create_cut_short``,
``suspend_for_migration`` and ``rename`` (the two ends of ``xl migrate``); ``save`` is ``xl save``. Fault
injection through ``fail_rate``, ``latency`` and ``seed`` (constructor arguments or attributes).
Time is injectable: ``clock`` (what time it is on the host, default ``time.time``) and ``sleep`` (how
the host waits: injected latency, ``shutdown``'s wait; default ``time.sleep``) are read everywhere the
host's behaviour depends on time (shutdown delays, cpu time, ``op_log`` stamps), so a test steps a
fake clock instead of polling. The default clock is the wall clock, not a monotonic one, because due
times live in the state, which a file store shares between processes and keeps across reboots. Only
the event thread's polling runs on real time: it is delivery, not simulated behaviour.
``op_log`` (a file path) appends one JSON line per committed change (``{"t": unix time, "op",
"domid", "name"}``), so a test or benchmark can read afterwards *when* the host changed, without polling it.

Domain 0 holds ``dom0_memory_kib`` and can be ballooned down (``set_memory_target(0, ...)``, never
below libxl's 128 MiB floor) and back up to what it booted with, so autoballooning is testable here;
``xen_cmdline`` plays the hypervisor's command line (``dom0_mem=`` there turns ``auto`` off).
"""

from __future__ import annotations

import contextlib
import copy
import json
import marshal
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import structlog

from libxl.hosts import saveimage
from libxl.hosts.backend import (
    MIGRATED_AWAY_SUFFIX,
    OWNER_KEY,
    DomainEvent,
    DomainInfo,
    HostInfo,
    IoStats,
    LibxlConfig,
)
from libxl.hosts.balloon import MIN_DOM0_KIB
from libxl.hosts.display import VNC_BASE, ports_in, vnc_hunts
from libxl.hosts.sim.census import Census
from libxl.hosts.sim.checks import (
    NIL_UUID,
    as_made,
    as_parsed,
    check_cpumap,
    check_enum,
    check_sched,
    fail,
    validate_config,
    validate_disk,
    validate_nic,
)
from libxl.hosts.sim.faults import Faults, Latency
from libxl.hosts.sim.state import State, clone, listed_name, new_state, pending_shutdowns
from libxl.hosts.sim.store import FileStore, MemoryStore

_log = structlog.get_logger(__name__)

GIB_KIB = 1024 * 1024
DOM0_UUID = "00000000-0000-0000-0000-000000000000"
#: How many events the state keeps for watchers that poll it.
EVENT_LOG_SIZE = 256
#: How often the event thread looks at the state while it changes (s)...
POLL_INTERVAL = 0.02
#: ... and how often once nothing has changed for ``QUIET_AFTER`` s: polling at 50 Hz for ever made
#: the simulator alone cost an idle agent 0.6 % of a core.
IDLE_POLL_INTERVAL = 0.25
QUIET_AFTER = 1.0
#: The I/O each simulated disk and nic does per second of its guest's uptime (``io_stats``).
SIM_DISK_IO = {"block_read_requests": 20, "block_write_requests": 10, "block_read_bytes": 20 * 4096,
               "block_write_bytes": 10 * 4096}
SIM_NIC_IO = {"net_receive_packets": 30, "net_transmit_packets": 20, "net_receive_bytes": 30 * 1000,
              "net_transmit_bytes": 20 * 800}
#: How far a create got before its caller died (``create_cut_short``).
_CUT_STAGES = ("domain", "xenstore")
#: What follows the header in a save image of this host (``save``/``restore``).
_SIM_STREAM = b"simulated libxl stream\n"
#: on_crash actions that only a toolstack carries out (xl's per-domain daemon, or the agent): libxl
#: itself leaves the domain crashed, which is what ``crash`` models for them.
_TOOLSTACK_ACTIONS = ("preserve", "coredump_destroy", "coredump_restart")
#: What each kind of shutdown consults (libxl_domain_config's on_* fields).
_REASON_ACTION = {"poweroff": "on_poweroff", "reboot": "on_reboot", "crash": "on_crash",
                  "watchdog": "on_watchdog", "soft_reset": "on_soft_reset"}



_T = TypeVar("_T")
#: An ``xl list`` row of a domain record without its CPU time: the fields before it, the time the
#: domain started running (None: not running), and its display ports.
_Row = tuple[tuple[Any, ...], float | None, tuple[int | None, int | None]]


def _row_fields(dom: dict[str, Any]) -> _Row:
    """What ``list_domains`` says of a domain record, but for the CPU time (it grows per call)."""
    c_info, b_info = dom["config"]["c_info"], dom["config"]["b_info"]
    ports = dom.get("ports") or {}
    name = listed_name(dom)  # "" until xenstore has the domain, and with it our marker
    fixed = (name, dom["domid"], c_info["uuid"], dom["state"], dom["memory_kib"], b_info["max_memkb"],
             len(b_info.get("avail_vcpus", [])), b_info.get("max_vcpus", 1), dom["shutdown_reason"],
             (c_info.get("xsdata") or {}).get(OWNER_KEY) if name else None)
    started = dom["started"] if dom["state"] in ("running", "paused") else None
    return fixed, started, (ports.get("vnc"), ports.get("spice"))


def _serialised(config: LibxlConfig) -> tuple[Callable[[bytes], Any], bytes]:
    try:
        return marshal.loads, marshal.dumps(config)
    except ValueError:
        return pickle.loads, pickle.dumps(config, pickle.HIGHEST_PROTOCOL)


class SimHost:
    """The simulated host. Every public operation raises ``BackendError`` on failure."""

    def __init__(self, uri: str = "test:///default", *, path: str | os.PathLike[str] | None = None,
                 total_memory_kib: int = 16 * GIB_KIB, dom0_memory_kib: int = GIB_KIB, nr_cpus: int = 8,
                 fail_rate: float = 0.0, latency: Latency = 0.0,
                 seed: int | None = None, shutdown_delay: float = 0.01, xen_cmdline: str = "",
                 op_log: str | os.PathLike[str] | None = None, clock: Callable[[], float] | None = None,
                 sleep: Callable[[float], None] | None = None, read_only: bool = False) -> None:
        if dom0_memory_kib > total_memory_kib:
            raise ValueError("dom0 memory exceeds the host's total memory")
        self.uri = uri
        self.fail_rate = fail_rate
        self.latency = latency
        #: How long a guest takes to obey a shutdown request (s).
        self.shutdown_delay = shutdown_delay
        #: What ``host_info().extra["xen_commandline"]`` reports (Xen's boot command line).
        self.xen_cmdline = xen_cmdline
        self.op_log = op_log
        # The defaults look ``time.time``/``time.sleep`` up per call, so a test that patches the time
        # module (rather than pass a clock) still reaches the host.
        self._clock: Callable[[], float] = clock or (lambda: time.time())
        self._sleep: Callable[[float], None] = sleep or (lambda seconds: time.sleep(seconds))
        self._faults = Faults(seed, self._sleep)
        initial = new_state(total_memory_kib, dom0_memory_kib, nr_cpus)
        self._store: MemoryStore | FileStore = (
            FileStore(Path(path), initial, read_only=read_only) if path is not None
            else MemoryStore(initial))
        self._callbacks: list[Callable[[DomainEvent], None]] = []
        self._watch_thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._kept_census: Census | None = None
        #: Domain key -> (its committed config, (a loader, that config serialised)): ``_copy_of``.
        self._config_copies: dict[str, tuple[Any, tuple[Callable[[bytes], Any], bytes]]] = {}
        #: Domain key -> (its committed record, its ``xl list`` row but the CPU time): ``list_domains``.
        self._rows: dict[str, tuple[Any, _Row]] = {}

    # -- plumbing ------------------------------------------------------------------------

    def _inject(self, op: str) -> None:
        """Latency and random failures, before the operation touches the host (like a lost RPC)."""
        self._faults.inject(op, self.fail_rate, self.latency)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[State]:
        """One transaction on the host state, with time brought up to date first."""
        with self._store.transaction() as state:
            self._advance(state)
            yield state

    @contextlib.contextmanager
    def _op(self, op: str) -> Iterator[State]:
        self._inject(op)
        with self._locked() as state:
            yield state

    def _read(self, op: str | None = None) -> State:
        """The state for a call that only reads it: the committed state itself, not a copy (never
        change it), unless a shutdown request is in flight, which a transaction applies first (the
        state it leaves is never changed afterwards either)."""
        if op is not None:
            self._inject(op)
        state = self._store.current()
        if state.get("pending_shutdowns") != {}:
            with self._locked() as state:
                pass
        return state

    def _trace(self, op: str, domid: int, name: str | None) -> None:
        """One ``op_log`` line for a change that is committed (visible to every reader) now."""
        if self.op_log is None:
            return
        line = json.dumps({"t": self._clock(), "op": op, "domid": domid, "name": name}) + "\n"
        try:
            with open(self.op_log, "a") as out:  # one short append: whole lines even across processes
                out.write(line)
        except OSError as err:  # the change is made: a log that cannot be written must not undo it
            _log.warning("simulated host op_log not written", op_log=str(self.op_log),
                         error=err.strerror or str(err))

    @staticmethod
    def _record(state: State, kind: str, domid: int, name: str | None, reason: str | None = None) -> None:
        state["seq"] += 1
        state["events"].append({"seq": state["seq"], "kind": kind, "domid": domid, "name": name,
                                "reason": reason})
        del state["events"][:-EVENT_LOG_SIZE]

    @staticmethod
    def _own(state: State, key: str) -> dict[str, Any]:
        """The domain record ``key`` of this transaction's state, copied so it may be changed (the
        committed record is shared with the state before the transaction: see ``working_copy``)."""
        dom = state["domains"][key] = clone(state["domains"][key])
        return dom

    @staticmethod
    def _find(state: State, op: str, domid: int) -> dict[str, Any]:
        """The (shared, read-only) record of ``domid``; raises like libxl for dom0 or a missing one."""
        if domid == 0:
            raise fail(op, "operation not permitted on domain 0 (Domain-0)")
        dom = state["domains"].get(str(domid))
        if dom is None:
            raise fail(op, f"domain {domid} does not exist (ERROR_DOMAIN_NOTFOUND)")
        return dom

    @classmethod
    def _get(cls, state: State, op: str, domid: int) -> dict[str, Any]:
        """The record of ``domid``, ready to be changed (see ``_find``)."""
        cls._find(state, op, domid)
        return cls._own(state, str(domid))

    def _census(self, state: State) -> Census:
        """The names, uuids and memory of ``state``'s domains, for the checks of a create.

        libxl scans every domain per create too, but in C; a Python scan made a cold start of N
        guests cost O(N²) in the simulator alone. The census of the in-memory host is kept between
        creates and trusted while no other change was committed (the store's version is the one it
        was made for, and no shutdown in flight can change the state before this transaction);
        otherwise, and on a file-backed host (other processes write it), it is counted afresh.
        """
        store, kept = self._store, self._kept_census
        if not isinstance(store, MemoryStore) or store.current().get("pending_shutdowns"):
            self._kept_census = None
            return Census.of(state, None)
        if kept is None or kept.version != store.token():
            self._kept_census = kept = Census.of(state, store.token())
        return kept

    @staticmethod
    def _free_kib(state: State) -> int:
        used = sum(d["memory_kib"] for d in state["domains"].values())
        return state["total_memory_kib"] - state["dom0_memory_kib"] - used

    def _advance(self, state: State) -> None:
        """Apply what time has done since the last operation: guests obeying shutdown requests."""
        pending = pending_shutdowns(state)
        if not pending:
            return
        now = self._clock()
        for key in sorted(pending, key=int):  # domid order, the order the records are kept in
            dom = state["domains"].get(key)
            if dom is None or dom.get("shutdown_due") is None:
                del pending[key]  # destroyed meanwhile
            elif dom["shutdown_due"] <= now and dom["state"] == "running":
                self._guest_shutdown(state, self._own(state, key), "poweroff")

    def _start(self, state: State, config: LibxlConfig, paused: bool) -> int:
        ports = self._listen(state, config)
        domid = state["next_domid"]
        state["next_domid"] += 1
        b_info = config["b_info"]
        state["domains"][str(domid)] = {
            "domid": domid, "config": config, "state": "paused" if paused else "running",
            "shutdown_reason": None, "memory_kib": b_info.get("target_memkb", b_info["max_memkb"]),
            "started": self._clock(), "shutdown_due": None, "unresponsive": False, "ports": ports,
        }
        return domid

    @staticmethod
    def _listen(state: State, config: LibxlConfig) -> dict[str, int]:
        """The ports the guest's qemu listens on, as qemu binds them: a fixed one another guest
        holds fails the create ("Address already in use"); a VNC display with ``findunused``
        takes the first free one from its display up, as qemu's ``to=`` does."""
        fixed, start = ports_in(config), vnc_hunts(config)
        out: dict[str, int] = {}
        if fixed.vnc is None and fixed.spice is None and start is None:
            return out  # no display: the common case costs no scan of the host
        held = {p for d in state["domains"].values() for p in (d.get("ports") or {}).values()}
        for kind, port in (("vnc", fixed.vnc), ("spice", fixed.spice)):
            if port is None:
                continue
            if port in held:
                raise fail("domain_create", f"device model: {kind} port {port}: Address already in use "
                            "(qemu exited)", str(config["c_info"]["name"]))
            out[kind] = port
            held.add(port)
        if start is not None:
            out["vnc"] = next(p for p in range(VNC_BASE + start, 65536) if p not in held)
        return out

    def _guest_shutdown(self, state: State, dom: dict[str, Any], reason: str) -> None:
        """The guest stopped (``reason``): libxl's toolstack side applies the configured action."""
        config = dom["config"]
        name, domid = config["c_info"]["name"], dom["domid"]
        action = str(config.get(_REASON_ACTION.get(reason, ""), "destroy")).lower()
        dom["shutdown_due"] = None
        pending_shutdowns(state).pop(str(domid), None)
        self._record(state, "crash" if reason == "crash" else "shutdown", domid, name, reason)
        if action in _TOOLSTACK_ACTIONS:
            dom["state"], dom["shutdown_reason"] = ("crashed" if reason == "crash" else "shutdown"), reason
            return
        del state["domains"][str(domid)]
        self._record(state, "death", domid, name, reason)
        if action in ("restart", "restart_rename", "soft_reset"):
            self._start(state, config, paused=False)

    # -- Backend interface ---------------------------------------------------------------

    def host_info(self) -> HostInfo:
        state = self._read("host_info")
        return HostInfo(total_memory_kib=state["total_memory_kib"], free_memory_kib=self._free_kib(state),
                        nr_cpus=state["nr_cpus"], xen_version="4.17.0-sim",
                        extra={"simulated": True, "uri": self.uri, "xen_commandline": self.xen_cmdline})

    def list_domains(self) -> list[DomainInfo]:
        state = self._read("list_domains")
        now = self._clock()
        rows = [DomainInfo(name="Domain-0", domid=0, uuid=DOM0_UUID, state="running",
                           memory_kib=state["dom0_memory_kib"], max_memory_kib=self._dom0_max_kib(state),
                           vcpus_online=state["nr_cpus"], vcpus_max=state["nr_cpus"])]
        for key, dom in sorted(state["domains"].items(), key=lambda item: item[1]["domid"]):
            fixed, started, ports = self._kept(self._rows, key, dom, _row_fields)
            rows.append(DomainInfo(*fixed, int((now - started) * 1e9) if started is not None else 0, *ports))
        return rows

    def io_stats(self) -> dict[int, IoStats]:
        """Counters that grow with each live guest's uptime: per disk ``SIM_DISK_IO`` and per nic
        ``SIM_NIC_IO`` (per second), so a rate over them is steady and a re-created guest starts
        from zero, as blkback's and netback's counters do."""
        state = self._read("io_stats")
        now = self._clock()
        out = {}
        for dom in state["domains"].values():
            if dom["state"] not in ("running", "paused") or dom.get("cut_short"):
                continue
            seconds = now - dom["started"]
            disks, nics = len(dom["config"].get("disks", [])), len(dom["config"].get("nics", []))
            counts = {k: int(seconds * rate) * disks for k, rate in SIM_DISK_IO.items()}
            counts.update({k: int(seconds * rate) * nics for k, rate in SIM_NIC_IO.items()})
            out[dom["domid"]] = IoStats(**counts)
        return out

    def domain_config(self, domid: int) -> LibxlConfig:
        state = self._read("domain_config")
        dom = self._find(state, "domain_config", domid)
        config = dom["config"]
        if dom.get("cut_short"):
            raise fail("domain_config", f"Domain {domid}:Fail to get domain configuration "
                        "(its creation never finished)", config["c_info"]["name"])
        if config["c_info"]["uuid"] == NIL_UUID:
            # libxl files a domain's stored config under its uuid: a nil one is not found again.
            raise fail("domain_config", f"Domain {domid}:Fail to get domain configuration "
                        "(it was created with a nil uuid)", config["c_info"]["name"])
        return self._copy_of(str(domid), config)

    def _copy_of(self, key: str, config: LibxlConfig) -> LibxlConfig:
        """A private copy of domain ``key``'s committed ``config``, as libxl hands out a fresh
        ``libxl_domain_config`` per call: one ``marshal.loads`` of its serialised form (``_kept``;
        a resync retrieves every guest's config, and a recursive copy per call was a fifth of a
        no-op resync at 10,000 guests). ``marshal`` takes JSON-shaped data (a third faster than
        ``pickle`` at 10,000 guests: it interns the keys instead of making new strings); a value it
        cannot take (the sim accepts what libxl's JSON would refuse) goes by ``pickle``."""
        loads, blob = self._kept(self._config_copies, key, config, _serialised)
        return loads(blob)

    def _kept(self, cache: dict[str, tuple[Any, _T]], key: str, source: Any, make: Callable[[Any], _T]) -> _T:
        """What ``make`` derives from domain ``key``'s committed ``source`` (its record, its config),
        kept in ``cache`` while that very object is current: a committed record is never changed (a
        change replaces it), and a resync lists every guest and retrieves every config."""
        kept = cache.get(key)
        if kept is None or kept[0] is not source:
            if len(cache) > 2 * len(self._store.current().get("domains", ())) + 16:
                cache.clear()  # destroyed guests' entries: domids are not reused soon
            kept = cache[key] = (source, make(source))
        return kept[1]

    def create(self, config: LibxlConfig, *, paused: bool = False) -> int:
        return self._make("domain_create", config, paused)

    def _make(self, op: str, config: LibxlConfig, paused: bool) -> int:
        """A new domain from ``config`` (create, or restore once the image was read)."""
        with self._op(op) as state:
            config = as_parsed(config)
            validate_config(op, config)
            config = as_made(config)
            c_info, b_info = config["c_info"], config["b_info"]
            name = c_info["name"]
            census = self._census(state)
            if name in census.names or name == "Domain-0":
                raise fail(op, f"domain with name {name!r} already exists", name)
            if c_info["uuid"] != NIL_UUID and c_info["uuid"] in census.uuids:
                raise fail(op, f"domain with uuid {c_info['uuid']} already exists", name)
            check_cpumap(op, b_info, state["nr_cpus"], name)
            free = state["total_memory_kib"] - state["dom0_memory_kib"] - census.used_kib
            if b_info["target_memkb"] > free:
                raise fail(op, f"not enough free memory: need {b_info['target_memkb']} KiB, "
                                f"{free} KiB free (ERROR_NOMEM)", name, transient=True)
            for devid, nic in enumerate(config.get("nics", [])):
                if nic.get("devid", -1) < 0:
                    nic["devid"] = devid
            domid = self._start(state, config, paused)
            census.add(state["domains"][str(domid)])
        self._trace(op, domid, name)
        return domid

    def _set_state(self, op: str, domid: int, new: str) -> None:
        with self._op(op) as state:
            dom = self._get(state, op, domid)
            if dom["state"] not in ("running", "paused"):
                raise fail(op, f"domain {domid} is {dom['state']}", dom["config"]["c_info"]["name"])
            dom["state"] = new
        self._trace(op, domid, dom["config"]["c_info"]["name"])

    def unpause(self, domid: int) -> None:
        self._set_state("domain_unpause", domid, "running")

    def pause(self, domid: int) -> None:
        self._set_state("domain_pause", domid, "paused")

    def shutdown(self, domid: int, timeout: float) -> bool:
        op = "domain_shutdown"
        with self._op(op) as state:
            dom = self._get(state, op, domid)
            if dom["state"] not in ("running", "paused"):
                raise fail(op, f"domain {domid} is already {dom['state']}", dom["config"]["c_info"]["name"])
            if not dom["unresponsive"] and dom["shutdown_due"] is None:
                dom["shutdown_due"] = self._clock() + self.shutdown_delay
                pending_shutdowns(state)[str(domid)] = dom["shutdown_due"]
        self._trace(op, domid, dom["config"]["c_info"]["name"])
        deadline = self._clock() + timeout
        while True:
            state = self._read()
            gone = str(domid) not in state["domains"]
            if gone or self._clock() >= deadline:
                return gone
            self._sleep(min(POLL_INTERVAL, max(0.0, deadline - self._clock())))

    def destroy(self, domid: int) -> None:
        op = "domain_destroy"
        with self._op(op) as state:
            dom = self._get(state, op, domid)
            del state["domains"][str(domid)]
            name = listed_name(dom)
            self._record(state, "death", domid, name, "destroy")
        self._trace(op, domid, name)

    # -- host lifecycle: save images, restore, core dumps -------------------------------------

    def save(self, domid: int, path: str) -> None:
        """``xl save``: the guest suspends (a shutdown with reason ``suspend``), its image is
        written (the agent's header, then this host's stream), and the domain is destroyed."""
        op = "domain_suspend"
        with self._op(op) as state:
            dom = self._get(state, op, domid)
            name = dom["config"]["c_info"]["name"]
            if dom["state"] not in ("running", "paused"):
                raise fail(op, f"domain {domid} is {dom['state']}: cannot suspend it", name)
            stream = {"memory_kib": dom["memory_kib"], "paused": dom["state"] == "paused"}
            try:
                with open(path, "xb") as out:
                    saveimage.write_header(out, dom["config"])
                    out.write(_SIM_STREAM + json.dumps(stream).encode())
            except OSError as err:
                raise fail(op, f"{path}: {err.strerror}", name) from err
            self._record(state, "shutdown", domid, name, "suspend")
            del state["domains"][str(domid)]
            self._record(state, "death", domid, name, "destroy")
        self._trace(op, domid, name)

    def restore(self, path: str, config: LibxlConfig, *, paused: bool = False) -> int:
        """``libxl_domain_create_restore``: refuses a file that holds no stream of this host."""
        try:
            with open(path, "rb") as source:
                saveimage.read_header(source, path)
                stream = source.read()
        except OSError as err:
            raise fail("domain_restore", f"{path}: {err.strerror}", config.get("c_info", {}).get("name")) \
                from err
        if not stream.startswith(_SIM_STREAM):
            raise fail("domain_restore", f"{path}: no domain stream after the header (ERROR_INVAL)",
                        config.get("c_info", {}).get("name"))
        return self._make("domain_restore", config, paused)

    def core_dump(self, domid: int, path: str) -> None:
        op = "domain_core_dump"
        with self._op(op) as state:
            dom = self._find(state, op, domid)
            name = listed_name(dom)
            try:
                with open(path, "wb") as out:
                    out.write(f"simulated core of {name} (domid {domid}, {dom['memory_kib']} KiB, "
                              f"{dom['state']})\n".encode())
            except OSError as err:
                raise fail(op, f"cannot write core dump {path}: {err.strerror}", name) from err
        self._trace(op, domid, name)

    @contextlib.contextmanager
    def _device_op(self, op: str, domid: int) -> Iterator[tuple[State, dict[str, Any], LibxlConfig, str]]:
        """An operation on a live domain: yields (state, domain record, its config, its name)."""
        with self._op(op) as state:
            dom = self._get(state, op, domid)
            name = dom["config"]["c_info"]["name"]
            if dom["state"] not in ("running", "paused"):
                raise fail(op, f"domain {domid} is {dom['state']}", name)
            yield state, dom, dom["config"], name
        self._trace(op, domid, name)

    def disk_add(self, domid: int, disk: LibxlConfig) -> None:
        op = "device_disk_add"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            validate_disk(op, disk)
            if any(d["vdev"] == disk["vdev"] for d in config.get("disks", [])):
                raise fail(op, f"disk vdev {disk['vdev']} already exists (ERROR_DEVICE_EXISTS)", name)
            config.setdefault("disks", []).append(copy.deepcopy(disk))

    def disk_remove(self, domid: int, disk: LibxlConfig) -> None:
        op = "device_disk_remove"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            disks = config.get("disks", [])
            keep = [d for d in disks if d["vdev"] != disk.get("vdev")]
            if len(keep) == len(disks):
                raise fail(op, f"disk vdev {disk.get('vdev')} not found (ERROR_NOTFOUND)", name)
            config["disks"] = keep

    def nic_add(self, domid: int, nic: LibxlConfig) -> None:
        op = "device_nic_add"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            validate_nic(op, nic)
            nics = config.setdefault("nics", [])
            mac = (nic.get("mac") or "").lower()
            if mac and any((n.get("mac") or "").lower() == mac for n in nics):
                raise fail(op, f"nic mac {mac} already in use (ERROR_DEVICE_EXISTS)", name)
            nic = copy.deepcopy(nic)
            used = {n.get("devid") for n in nics}
            if nic.get("devid", -1) < 0:
                nic["devid"] = next(i for i in range(len(nics) + 1) if i not in used)
            elif nic["devid"] in used:
                raise fail(op, f"nic devid {nic['devid']} already exists (ERROR_DEVICE_EXISTS)", name)
            nics.append(nic)

    def nic_remove(self, domid: int, nic: LibxlConfig) -> None:
        op = "device_nic_remove"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            nics = config.get("nics", [])
            mac = (nic.get("mac") or "").lower()

            def same(n: LibxlConfig) -> bool:
                return (n.get("mac") or "").lower() == mac if mac else n.get("devid") == nic.get("devid")
            keep = [n for n in nics if not same(n)]
            if len(keep) == len(nics):
                raise fail(op, f"nic {mac or nic.get('devid')} not found (ERROR_NOTFOUND)", name)
            config["nics"] = keep

    def cdrom_insert(self, domid: int, disk: LibxlConfig) -> None:
        op = "cdrom_insert"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            vdev = disk.get("vdev")
            current = next((d for d in config.get("disks", []) if d["vdev"] == vdev), None)
            if current is None:
                raise fail(op, f"no disk with vdev {vdev} (ERROR_NOTFOUND)", name)
            if not current.get("is_cdrom"):
                raise fail(op, f"disk {vdev} is not a cdrom (ERROR_INVAL)", name)
            if disk.get("pdev_path"):
                check_enum(op, f"disk {vdev} format", disk.get("format"), "format")
                current["pdev_path"] = disk["pdev_path"]
                current["format"] = disk.get("format", "raw")
            else:
                current.pop("pdev_path", None)
                current["format"] = "empty"

    @staticmethod
    def _dom0_max_kib(state: State) -> int:
        """What dom0 booted with: the ceiling it may balloon back up to."""
        return int(state.get("dom0_max_memory_kib", state["dom0_memory_kib"]))

    def _set_dom0_target(self, op: str, target_kib: int) -> None:
        """Balloon dom0 (instantly: the simulated balloon driver never lags)."""
        with self._op(op) as state:
            ceiling = self._dom0_max_kib(state)
            if not MIN_DOM0_KIB <= target_kib <= ceiling:
                raise fail(op, f"new target {target_kib} KiB for dom0 not within {MIN_DOM0_KIB}..{ceiling} "
                                "KiB (ERROR_INVAL)", "Domain-0")
            grow = target_kib - state["dom0_memory_kib"]
            if grow > self._free_kib(state):
                raise fail(op, f"not enough free memory to grow dom0 by {grow} KiB (ERROR_NOMEM)",
                            "Domain-0", transient=True)
            state["dom0_max_memory_kib"] = ceiling
            state["dom0_memory_kib"] = target_kib
        self._trace(op, 0, "Domain-0")

    def set_memory_target(self, domid: int, target_kib: int) -> None:
        op = "set_memory_target"
        if domid == 0:
            self._set_dom0_target(op, target_kib)
            return
        with self._device_op(op, domid) as (state, dom, config, name):
            max_kib = config["b_info"]["max_memkb"]
            if not 0 < target_kib <= max_kib:
                raise fail(op, f"memory target {target_kib} KiB not within 1..{max_kib} KiB (ERROR_INVAL)",
                            name)
            grow = target_kib - dom["memory_kib"]
            if grow > self._free_kib(state):
                raise fail(op, f"not enough free memory to grow by {grow} KiB (ERROR_NOMEM)", name,
                                transient=True)
            dom["memory_kib"] = target_kib
            config["b_info"]["target_memkb"] = target_kib

    def set_vcpus_online(self, domid: int, count: int) -> None:
        op = "set_vcpuonline"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            max_vcpus = config["b_info"].get("max_vcpus", 1)
            if not 0 < count <= max_vcpus:
                raise fail(op, f"{count} vcpus requested, maximum is {max_vcpus} (ERROR_INVAL)", name)
            config["b_info"]["avail_vcpus"] = list(range(count))

    # -- live tuning: what libxl_set_vcpuaffinity, libxl_domain_sched_params_set and
    # -- libxl_domain_setmaxmem accept and refuse (credit2, Xen 4.17's default scheduler)

    def set_vcpu_affinity(self, domid: int, vcpu: int, hard: list[int] | None,
                          soft: list[int] | None) -> None:
        op = "set_vcpuaffinity"
        with self._device_op(op, domid) as (state, _dom, config, name):
            b_info = config["b_info"]
            max_vcpus = b_info.get("max_vcpus", 1)
            if not 0 <= vcpu < max_vcpus:
                raise fail(op, f"vcpu {vcpu} out of range: the domain has {max_vcpus} (ERROR_INVAL)", name)
            if hard is None and soft is None:
                raise fail(op, "no affinity given (ERROR_INVAL)", name)
            for kind, cpus in (("hard", hard), ("soft", soft)):
                if cpus is None:
                    continue
                if not cpus:
                    raise fail(op, f"vcpu {vcpu}: empty {kind} affinity (ERROR_INVAL)", name)
                missing = sorted(c for c in cpus if not 0 <= c < state["nr_cpus"])
                if missing:
                    raise fail(op, f"vcpu {vcpu}: {kind} affinity names cpu {missing[0]}, the host has "
                                    f"0..{state['nr_cpus'] - 1} (ERROR_INVAL)", name)
                # libxl keeps one map per vcpu once it set the domain up (a legacy cpumap included).
                key = f"vcpu_{kind}_affinity"
                every = b_info.pop("cpumap" if kind == "hard" else "cpumap_soft", None)
                maps = b_info.get(key) or [list(every) if every else [] for _ in range(max_vcpus)]
                maps += [[] for _ in range(max_vcpus - len(maps))]
                maps[vcpu] = sorted(set(cpus))
                b_info[key] = maps

    def set_sched_params(self, domid: int, params: dict[str, int]) -> None:
        op = "domain_sched_params_set"
        with self._device_op(op, domid) as (_state, _dom, config, name):
            unknown = sorted(set(params) - {"weight", "cap"})
            if unknown:
                raise fail(op, f"scheduler parameter {unknown[0]!r} is not credit2's (ERROR_INVAL)", name)
            check_sched(op, params, config["b_info"].get("max_vcpus", 1), name)
            sched = config["b_info"].setdefault("sched_params", {})
            sched.setdefault("sched", "credit2")
            sched.update({k: v for k, v in params.items() if v is not None})

    def set_max_memory(self, domid: int, max_kib: int) -> None:
        op = "domain_setmaxmem"
        with self._device_op(op, domid) as (_state, dom, config, name):
            target = config["b_info"].get("target_memkb", dom["memory_kib"])
            if max_kib < target:
                raise fail(op, f"memory_static_max must be greater than or equal to memory_dynamic_max "
                                f"({max_kib} < {target} KiB) (ERROR_INVAL)", name)
            config["b_info"]["max_memkb"] = max_kib

    def watch_events(self, callback: Callable[[DomainEvent], None]) -> None:
        self._callbacks.append(callback)
        if self._watch_thread is None:
            state = self._read()
            start = state["seq"]
            self._watch_thread = threading.Thread(target=self._watch, args=(start,), name="simhost-events",
                                                  daemon=True)
            self._watch_thread.start()

    def _watch(self, seen: int) -> None:
        """Poll the state cheaply (a version counter or the file's mtime) and replay new events;
        slower while the host is quiet, so an event after a quiet spell arrives within 0.25 s."""
        token, due, interval, changed = None, False, POLL_INTERVAL, time.monotonic()
        while not self._stop.wait(interval):
            if self._store.token() == token and not due:
                if time.monotonic() - changed > QUIET_AFTER:
                    interval = IDLE_POLL_INTERVAL
                continue
            interval, changed = POLL_INTERVAL, time.monotonic()
            state = self._read()
            events = [e for e in state["events"] if e["seq"] > seen]
            due = bool(pending_shutdowns(state))
            token = self._store.token()
            for entry in events:
                seen = entry["seq"]
                event = DomainEvent(kind=entry["kind"], domid=entry["domid"], name=entry["name"],
                                    reason=entry["reason"])
                for callback in list(self._callbacks):
                    try:
                        callback(event)
                    except Exception:  # one broken watcher must not end delivery to the others
                        _log.exception("event callback failed", domain_event=str(event))

    def close(self) -> None:
        self._stop.set()
        if self._watch_thread is not None:
            self._watch_thread.join()
            self._watch_thread = None

    # -- test hooks ----------------------------------------------------------------------

    def shutdown_from_inside(self, domid: int, reason: str = "poweroff") -> None:
        """The guest shuts itself down (``poweroff``, ``reboot``, ``crash``...), honouring on_*."""
        op = "shutdown_from_inside"
        if reason not in _REASON_ACTION:
            raise ValueError(f"unknown shutdown reason {reason!r}")
        with self._locked() as state:
            dom = self._get(state, op, domid)
            if dom["state"] not in ("running", "paused"):
                raise fail(op, f"domain {domid} is already {dom['state']}")
            self._guest_shutdown(state, dom, reason)

    def crash(self, domid: int) -> None:
        self.shutdown_from_inside(domid, "crash")

    def create_cut_short(self, config: LibxlConfig, stage: str) -> int:
        """What ``libxl_domain_create_new`` leaves when its caller is SIGKILLed part-way (seen on
        real Xen): a paused domain with the config's uuid and, at stage ``domain``, nothing in
        xenstore yet (no name, no xsdata: ``xl list`` says ``(null)``), or at stage ``xenstore``,
        name and xsdata but no stored config. libxl's own cleanup never ran."""
        if stage not in _CUT_STAGES:
            raise ValueError(f"unknown stage {stage!r}; one of {', '.join(_CUT_STAGES)}")
        with self._locked() as state:
            domid = self._start(state, as_made(config), paused=True)
            state["domains"][str(domid)]["cut_short"] = stage
        return domid

    def suspend_for_migration(self, domid: int) -> None:
        """The source side of ``xl migrate`` once the memory is sent: the guest suspended (shutdown
        reason ``suspend``) and renamed ``NAME--migratedaway``; ``destroy`` is the last step."""
        with self._locked() as state:
            dom = self._get(state, "migrate", domid)
            name = dom["config"]["c_info"]["name"]
            dom["state"], dom["shutdown_reason"] = "shutdown", "suspend"
            dom["config"]["c_info"]["name"] = f"{name}{MIGRATED_AWAY_SUFFIX}"
            self._record(state, "shutdown", domid, name, "suspend")

    def rename(self, domid: int, name: str) -> None:
        """``libxl_domain_rename`` (what ``xl migrate`` does to ``NAME--incoming`` at the end)."""
        with self._locked() as state:
            self._get(state, "rename", domid)["config"]["c_info"]["name"] = name

    def set_unresponsive(self, domid: int, unresponsive: bool = True) -> None:
        """Make the guest ignore (or obey again) shutdown requests."""
        with self._locked() as state:
            self._get(state, "set_unresponsive", domid)["unresponsive"] = unresponsive
