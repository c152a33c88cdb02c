"""Fault soak: random desired-state changes against a faulty simulated host, with invariants.

The driver plays everyone around the agent: an operator editing the desired directory (create, edit
memory, add/remove disks and nics, change the kernel, break a file three ways -- bad XML, a hostile
edit in a world-writable file, a policy violation --, fix it, delete it), guests crashing, and
someone starting and destroying unowned guests behind the agent's back. The host injects failures
into every libxl operation (``fail_rate``) and random latency. The agent is the real one: the
``Reconciler`` in-process (``run_inprocess``) or ``xenreconcile run`` as a subprocess, killed with
SIGKILL at random moments and restarted (``run_subprocess``).

Invariants, checked after every change and at the end (faults off, a final resync):

- no unowned guest is ever touched (same domid, state and config as when it was started);
- no guest is destroyed because of an invalid file: a guest the agent was done with when its file broke
  (``settled_domid``) keeps its domid for as long as the file stays broken;
- at the end the host equals the desired set: every owned guest is desired, every desired guest not
  blocked by an unowned one of the same name runs, and a fresh plan is empty.

The driver keeps a journal beside the host's op log (``driver.jsonl`` next to ``ops.jsonl`` and the
agent's ``agent.log``, all stamped with the wall clock): every write, change, guard, agent kill and
check, so a violation can be lined up with what the agent was doing.

Run the full soak with ``python tests/soak/soak_driver.py --changes 1000`` (README "Fault soak").
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid as _uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

from libxl.errors import BackendError, XenReconcileError  # noqa: E402
from libxl.hosts.sim import SimHost  # noqa: E402
from reconcilers.apply import Reconciler  # noqa: E402
from reconcilers.desired import DesiredSet, load_desired  # noqa: E402
from reconcilers.plan import INVALID, index_actual  # noqa: E402
from reconcilers.policy import Policy  # noqa: E402
from reconcilers.securitypolicy import DEFAULT_SECURITY, SecurityPolicy  # noqa: E402
from reconcilers.status import CRASHED, IN_SYNC  # noqa: E402
from tests.reconcile_fixtures import domain_xml  # noqa: E402

OWNER = "soak"
FAIL_RATE = 0.2
#: Seconds of injected latency per libxl operation (uniform in this range).
LATENCY = (0.0, 0.002)
HOST_MIB = 1024 * 1024
POLICY = Policy(prune="destroy", restart="always", owner=OWNER, shutdown_timeout=1.0)
#: Change kinds and their weights.
KINDS = {"create": 10, "memory": 12, "disk-add": 6, "disk-remove": 5, "nic-add": 6, "nic-remove": 5,
         "kernel": 5, "break": 9, "fix": 9, "delete": 5, "rogue-add": 4, "rogue-file": 2,
         "rogue-remove": 2, "crash": 8}
BREAKS = ("syntax", "modes", "policy")
#: ``settled(name)`` as the change methods get it (``World.change``): see ``settled_domid``.
Settled = Callable[[str], int | None]


@dataclass(frozen=True)
class Spec:
    """What the operator wants for one guest (rendered by ``domain_xml``)."""
    name: str
    memory_mib: int = 256
    current_mib: int | None = None
    vcpus: int = 1
    kernel: str = "/boot/vmlinuz"
    disks: tuple[str, ...] = ("xvda",)
    macs: tuple[str, ...] = ()
    on_crash: str = "destroy"

    def render(self) -> str:
        return domain_xml(self.name, memory_mib=self.memory_mib, current_mib=self.current_mib,
                          vcpus=self.vcpus, kernel=self.kernel, disks=self.disks, macs=self.macs,
                          lifecycle=f"<on_crash>{self.on_crash}</on_crash>")


@dataclass
class Rogue:
    """An unowned guest started behind the agent's back, as it must stay."""
    domid: int
    uuid: str
    state: str
    config: dict[str, Any]


@dataclass
class Figures:
    changes: Counter[str] = field(default_factory=Counter)
    faults_injected: int = 0
    invariants_checked: int = 0
    violations: list[str] = field(default_factory=list)
    kills: int = 0
    crashes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"changes_applied": sum(self.changes.values()), "by_kind": dict(sorted(self.changes.items())),
                "faults_injected": self.faults_injected, "invariants_checked": self.invariants_checked,
                "violations": len(self.violations), "violation_details": self.violations[:20],
                "agent_kills": self.kills, "guest_crashes": self.crashes}


class CountingSimHost(SimHost):
    """The simulated host, counting the faults it injects."""

    faults = 0

    def _inject(self, op: str) -> None:
        try:
            super()._inject(op)
        except BackendError:
            self.faults += 1
            raise


@contextlib.contextmanager
def quiet(host: SimHost) -> Iterator[SimHost]:
    """The same host with faults and latency off (the driver's own view)."""
    saved = host.fail_rate, host.latency
    host.fail_rate, host.latency = 0.0, 0.0
    try:
        yield host
    finally:
        host.fail_rate, host.latency = saved


class World:
    """The desired directory, the operator's intent, the unowned guests and the invariant checks."""

    def __init__(self, root: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.dir = root / "desired"
        self.dir.mkdir(mode=0o755)
        self.state_dir = root / "state"
        self.specs: dict[str, Spec] = {}
        #: name -> how its file is broken now (absent: the file is good).
        self.broken: dict[str, str] = {}
        #: name -> domid that must survive while the file stays broken.
        self.guarded: dict[str, int] = {}
        #: name -> sha256 of each good version written, in order (what the agent records as applied).
        self.revisions: dict[str, list[str]] = {}
        self.rogues: dict[str, Rogue] = {}
        #: Every unowned guest ever started, by domid (the agent's op log must never name one).
        self.rogue_domids: dict[int, str] = {}
        self.figures = Figures()
        self._serial = 0
        #: The driver's own side of the story, one JSON line per event (beside the host's ops.jsonl).
        self.journal = root / "driver.jsonl"

    def note(self, event: str, **fields: Any) -> None:
        """One line of the journal."""
        with open(self.journal, "a") as out:
            out.write(json.dumps({"t": time.time(), "event": event, **fields}) + "\n")

    # -- helpers -----------------------------------------------------------------------------

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.xml"

    def write(self, name: str, text: str, mode: int = 0o644) -> None:
        """Atomically, like a config manager (a dotted temporary file renamed over the target). A
        good version (``name`` not in ``broken``) is added to ``revisions``."""
        tmp = self.dir / f".{name}.xml.tmp"
        tmp.write_text(text)
        tmp.chmod(mode)
        os.replace(tmp, self.path(name))
        revision = None
        if name not in self.broken:
            revision = hashlib.sha256(text.encode()).hexdigest()
            self.revisions.setdefault(name, []).append(revision)
        self.note("write", name=name, mode=oct(mode), revision=revision)

    def unmistakable(self, name: str) -> bool:
        """Whether the current version of ``name``'s file tells which write the agent applied when its
        state records that version: not so when the same bytes were also written before another good
        version (A, B, A): the record may date from the first A while B is still being applied."""
        hashes = self.revisions.get(name, [])
        first = len(hashes) - 1  # where the last run of the current version starts
        while first > 0 and hashes[first - 1] == hashes[-1]:
            first -= 1
        return bool(hashes) and hashes[-1] not in hashes[:first]

    def _mac(self) -> str:
        n = self._next()
        return f"00:16:3e:{(n >> 16) & 0xff:02x}:{(n >> 8) & 0xff:02x}:{n & 0xff:02x}"

    def good(self) -> list[str]:
        """Names whose file is good and not declared over an unowned guest."""
        return sorted(n for n in self.specs if n not in self.broken and n not in self.rogues)

    # -- changes -----------------------------------------------------------------------------

    def change(self, host: SimHost, settled: Settled) -> str | None:
        """Make one random change; returns its kind, or None when it did not apply right now.

        ``settled(name)``: the domid of ``name``'s guest when the agent is done with it, else None
        (``settled_domid``)."""
        kind = self.rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        applied = getattr(self, "_" + kind.replace("-", "_"))(host, settled)
        self.note("change", kind=kind, applied=bool(applied))
        if applied:
            self.figures.changes[kind] += 1
            return kind
        return None

    def _edit(self, edit: Any) -> bool:
        names = self.good()
        if not names:
            return False
        name = self.rng.choice(names)
        new = edit(self.specs[name])
        if new is None:
            return False
        self.specs[name] = new
        self.write(name, new.render())
        return True

    def _create(self, host: SimHost, settled: Settled) -> bool:
        name = f"g{self._next()}"
        memory = self.rng.choice((128, 256, 512))
        spec = Spec(name, memory_mib=memory, vcpus=self.rng.randint(1, 4),
                    disks=tuple(f"xvd{c}" for c in "abc"[:self.rng.randint(1, 3)]),
                    macs=tuple(self._mac() for _ in range(self.rng.randint(0, 2))),
                    on_crash=self.rng.choice(("destroy", "restart", "preserve")))
        self.specs[name] = spec
        self.write(name, spec.render())
        return True

    def _memory(self, host: SimHost, settled: Settled) -> bool:
        def edit(s: Spec) -> Spec:
            if self.rng.random() < 0.7:  # balloon: live
                return replace(s, current_mib=self.rng.randrange(64, s.memory_mib + 1, 32))
            return replace(s, memory_mib=self.rng.choice((128, 256, 384, 512)), current_mib=None)  # restart
        return self._edit(edit)

    def _disk_add(self, host: SimHost, settled: Settled) -> bool:
        def edit(s: Spec) -> Spec | None:
            free = [f"xvd{c}" for c in "abcdefgh" if f"xvd{c}" not in s.disks]
            return replace(s, disks=(*s.disks, free[0])) if free else None
        return self._edit(edit)

    def _disk_remove(self, host: SimHost, settled: Settled) -> bool:
        def edit(s: Spec) -> Spec | None:
            if len(s.disks) < 2:
                return None
            gone = self.rng.choice(s.disks[1:])
            return replace(s, disks=tuple(d for d in s.disks if d != gone))
        return self._edit(edit)

    def _nic_add(self, host: SimHost, settled: Settled) -> bool:
        return self._edit(lambda s: replace(s, macs=(*s.macs, self._mac())) if len(s.macs) < 4 else None)

    def _nic_remove(self, host: SimHost, settled: Settled) -> bool:
        def edit(s: Spec) -> Spec | None:
            if not s.macs:
                return None
            gone = self.rng.choice(s.macs)
            return replace(s, macs=tuple(m for m in s.macs if m != gone))
        return self._edit(edit)

    def _kernel(self, host: SimHost, settled: Settled) -> bool:
        return self._edit(lambda s: replace(s, kernel=f"/boot/vmlinuz-{self._next()}"))

    def _break(self, host: SimHost, settled: Settled) -> bool:
        names = self.good()
        if not names:
            return False
        name = self.rng.choice(names)
        how = self.rng.choice(BREAKS)
        spec = self.specs[name]
        domid = settled(name) if self.unmistakable(name) else None  # before the file breaks
        if domid is not None:
            self.guarded[name] = domid
            self.note("guard", name=name, domid=domid)
        self.broken[name] = how
        if how == "syntax":
            self.write(name, spec.render()[: self.rng.randrange(10, 60)])
        elif how == "modes":  # a hostile edit anyone could have made: must never be read
            self.write(name, replace(spec, kernel="/tmp/evil", memory_mib=64).render(), mode=0o666)
        else:  # asks for what the security policy refuses
            text = spec.render().replace("</devices>", "</devices><xen:commandline xmlns:xen="
                                         "'http://libvirt.org/schemas/domain/xen/1.0'>"
                                         "<xen:arg value='-monitor'/></xen:commandline>")
            self.write(name, text)
        return True

    def _fix(self, host: SimHost, settled: Settled) -> bool:
        if not self.broken:
            return False
        name = self.rng.choice(sorted(self.broken))
        del self.broken[name]
        self.guarded.pop(name, None)
        if self.rng.random() < 0.5:
            self.specs[name] = replace(self.specs[name], current_mib=None, vcpus=self.rng.randint(1, 4))
        self.write(name, self.specs[name].render())
        return True

    def _delete(self, host: SimHost, settled: Settled) -> bool:
        if not self.specs:
            return False
        name = self.rng.choice(sorted(self.specs))
        self.path(name).unlink()
        del self.specs[name]
        self.broken.pop(name, None)
        self.guarded.pop(name, None)
        self.revisions.pop(name, None)
        return True

    def _rogue_add(self, host: SimHost, settled: Settled) -> bool:
        name = f"rogue{self._next()}"
        config = {"c_info": {"type": "pv", "name": name, "uuid": str(_uuid.uuid4())},
                  "b_info": {"max_memkb": 65536, "kernel": "/boot/other", "max_vcpus": 1}}
        with quiet(host):
            domid = host.create(config)
            self.rogues[name] = self._rogue_now(host, domid)
            self.rogue_domids[domid] = name
        return True

    def _rogue_file(self, host: SimHost, settled: Settled) -> bool:
        """A desired file that names an unowned guest: a conflict the agent must leave alone."""
        free = [n for n in self.rogues if n not in self.specs]
        if not free:
            return False
        name = self.rng.choice(free)
        self.specs[name] = Spec(name)
        self.write(name, self.specs[name].render())
        return True

    def _rogue_remove(self, host: SimHost, settled: Settled) -> bool:
        if not self.rogues:
            return False
        name = self.rng.choice(sorted(self.rogues))
        try:
            with quiet(host):
                host.destroy(self.rogues.pop(name).domid)
        except BackendError as err:
            self.figures.violations.append(f"unowned {name} vanished before its owner removed it: {err}")
        return True

    def _crash(self, host: SimHost, settled: Settled) -> bool:
        with quiet(host):
            doms = [d for d in host.list_domains() if d.owner == OWNER and d.state == "running"
                    and d.name not in self.broken]
            if not doms:
                return False
            host.crash(self.rng.choice(doms).domid)
        self.figures.crashes += 1
        return True

    # -- observing and checking ----------------------------------------------------------------

    @staticmethod
    def _rogue_now(host: SimHost, domid: int) -> Rogue:
        info = next(d for d in host.list_domains() if d.domid == domid)
        return Rogue(domid, info.uuid, info.state, host.domain_config(domid))

    def check(self, host: SimHost, when: str) -> None:
        """Unowned guests untouched; guarded guests of broken files still the same guest."""
        with quiet(host):
            by_domid = {d.domid: d for d in host.list_domains()}
            for name, rogue in self.rogues.items():
                self.figures.invariants_checked += 1
                info = by_domid.get(rogue.domid)
                if info is None or info.uuid != rogue.uuid:
                    self.figures.violations.append(f"{when}: unowned {name} (domid {rogue.domid}) is gone")
                    continue
                now = self._rogue_now(host, rogue.domid)
                if (now.state, now.config) != (rogue.state, rogue.config):
                    self.figures.violations.append(f"{when}: unowned {name} was changed: {now} != {rogue}")
            for name, domid in self.guarded.items():
                self.figures.invariants_checked += 1
                info = by_domid.get(domid)
                if info is None or info.name != name:
                    self.figures.violations.append(
                        f"{when}: {name} (domid {domid}) was destroyed while its file is broken "
                        f"({self.broken.get(name)})")

    def check_op_log(self, path: Path) -> None:
        """Every host change the agent made (the simulated host's op log): none on an unowned guest."""
        for line in path.read_text().splitlines() if path.exists() else []:
            op = json.loads(line)
            self.figures.invariants_checked += 1
            if op["domid"] in self.rogue_domids and op["op"] != "domain_create":
                self.figures.violations.append(f"agent ran {op['op']} on unowned "
                                               f"{self.rogue_domids[op['domid']]} (domid {op['domid']})")

    def check_final(self, host: SimHost, plan: Any) -> None:
        """The host equals the desired set (after a fault-free resync): every good file's guest runs,
        no owned guest lacks a file (a broken file's guest may stay), and nothing is left to do."""
        self.check(host, "final")
        with quiet(host):
            doms = [d for d in host.list_domains() if d.domid != 0]
        owned = {d.name: d for d in doms if d.owner == OWNER}
        declared = set(self.specs) - set(self.rogues)
        good = {n for n in declared if n not in self.broken}
        # An unrecorded guest (agent killed between create and record) stays while a file that never
        # parsed may declare it: reported invalid, never pruned on a guess.
        kept = {n.domain for n in plan.notes if n.kind == INVALID}
        checks = {
            "no owned guest without a desired file": set(owned) <= declared | kept,
            # on_crash preserve keeps a crashed guest for inspection (issue 15; it used to be recreated).
            "every good desired file's guest is running": all(
                n in owned and (owned[n].state == "running" or
                                (owned[n].state == "crashed" and self.specs[n].on_crash == "preserve"))
                for n in good),
            "a fresh plan is empty": not plan.has_changes,
        }
        for what, ok in checks.items():
            self.figures.invariants_checked += 1
            if not ok:
                self.figures.violations.append(
                    f"final: {what}: owned={sorted((n, d.state) for n, d in owned.items())} "
                    f"good={sorted(good)} broken={sorted(self.broken)} actions={plan.actions}")


def settled_domid(reconciler: Reconciler, desired: DesiredSet, name: str) -> int | None:
    """The domid of ``name``'s guest when the agent is done with it; None when it may still act on it.

    Done means both of these, so that a guarded guest is one the agent cannot legitimately take down
    once its file breaks (the last good version it keeps in force is the version the guest runs):

    - one look at the host (``reconciler.snapshot``) shows the guest, its config read, and the plan
      made from that very look has nothing to do: in sync, or crashed and kept (on_crash preserve).
      The domid returned is the one that plan judged. A guest whose config could not be read (it is
      ``Pending``: e.g. it died between the listing and the config call because the agent's shutdown
      request for a restart was already committed) is not done: the agent is in the middle of it;
    - the agent's state (``reconciler.inventory``) records that it applied this very version of the
      file (content hash and path), so no reconcile of an earlier version of the file is still to
      come (two reconciles of one name never run at once) -- a host that merely happens to match the
      current file (an edit and its revert) is not enough; ``World.unmistakable`` rules out the
      revert to the very same bytes.

    ``reconciler``: the agent's own (in-process), or a fresh one on its state directory."""
    want = desired.domains.get(name)
    if want is None:
        return None
    actual = reconciler.snapshot(desired)
    planned = next((d for d in reconciler.plan(desired, actual).domains if d.name == name), None)
    act = index_actual(actual).get(name)
    if planned is None or act is None or planned.actions or planned.outcome not in (IN_SYNC, CRASHED):
        return None
    entry = reconciler.inventory.domains.get(act.info.uuid.lower())
    if entry is None or (entry.file, entry.content_hash) != (str(want.file), want.content_hash):
        return None
    return act.info.domid


# ---- the in-process variant ------------------------------------------------------------------------

def _changes(world: World, host: SimHost, changes: int, settled: Settled) -> Iterator[tuple[int, str | None]]:
    """Random changes until ``changes`` of them applied (some draws do not apply, e.g. a fix with
    nothing broken); yields (step, kind or None) after each draw."""
    step = 0
    while sum(world.figures.changes.values()) < changes and step < 20 * changes:
        yield step, world.change(host, settled)
        step += 1


def run_inprocess(root: Path, changes: int, seed: int = 1, *, policy: Policy = POLICY,
                  security: SecurityPolicy | None = DEFAULT_SECURITY) -> Figures:
    """The Reconciler in-process: per change, a per-key reconcile of the touched names or a full
    resync, the way the agent's queue and resync timer drive it. (``policy`` and ``security`` are
    there to prove the invariants bite: a careless agent must fail them.)"""
    world = World(root, seed)
    host = CountingSimHost(total_memory_kib=HOST_MIB * 1024, nr_cpus=64, fail_rate=FAIL_RATE, latency=LATENCY,
                           seed=seed, shutdown_delay=0.0)
    ops = root / "ops.jsonl"
    reconciler = Reconciler(host, policy, world.state_dir)
    desired: DesiredSet | None = None

    def settled_now(name: str) -> int | None:
        with quiet(host):
            return settled_domid(reconciler, load_desired(world.dir, desired, security=security), name)

    for step, kind in _changes(world, host, changes, settled_now):
        desired = load_desired(world.dir, desired, security=security)
        if kind is None or world.rng.random() < 0.25:
            names = [None]  # the periodic full resync
        else:  # the work queue: a random half of the names (the rest wait for a later round)
            with quiet(host):
                on_host = {d.name for d in host.list_domains() if d.owner == OWNER}
            names = [n for n in sorted(set(desired.domains) | set(world.specs) | on_host)
                     if world.rng.random() < 0.5]
        host.op_log = ops  # the agent's changes only (the driver's own are not logged)
        for name in names:
            with contextlib.suppress(XenReconcileError):  # a failed list_domains: a later round retries
                if name is None:
                    reconciler.reconcile_all(desired)
                else:
                    reconciler.reconcile(name, desired)
        host.op_log = None
        world.check(host, f"step {step} ({kind})")
    world.figures.faults_injected = host.faults
    host.op_log = ops
    host.fail_rate, host.latency = 0.0, 0.0
    desired = load_desired(world.dir, desired, security=security)
    for _ in range(3):
        reconciler.reconcile_all(desired)
    world.check_final(host, reconciler.plan(desired))
    world.check_op_log(ops)
    return world.figures


# ---- the subprocess variant, killed at random --------------------------------------------------

class AgentProcess:
    """``xenreconcile run`` against the shared host file; logs appended to one file."""

    def __init__(self, root: Path, world: World, host_path: Path, faults: bool, seed: int) -> None:
        query = f"?memory_mib={HOST_MIB}&cpus=64&shutdown_delay=0&op_log={root / 'ops.jsonl'}"
        if faults:
            query += f"&fail_rate={FAIL_RATE}&latency={LATENCY[0]}-{LATENCY[1]}&seed={seed}"
        self.log = root / "agent.log"
        cmd = [sys.executable, "-m", "agent.cli", "run", "--uri", f"test://{host_path}{query}",
               "--dir", str(world.dir), "--state-dir", str(world.state_dir),
               "--metrics-listen", "127.0.0.1:0",
               "--log-format", "json", "--log-level", "debug", "--owner", OWNER, "--prune", "destroy",
               "--restart", "always", "--shutdown-timeout", "1", "--debounce", "0.02",
               "--resync-interval", "0.5", "--backoff-cap", "0.2", "--rate-limit", "1000"]
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)

    def kill(self, sig: int = signal.SIGKILL) -> int | None:
        """Send ``sig``; returns the exit status when the agent had already exited on its own."""
        early = self.proc.poll()
        if early is None:
            self.proc.send_signal(sig)
        self.proc.wait(60)
        return early


def _fresh_plan(world: World, host: SimHost) -> Any:
    """What a fault-free agent would still do, from the agent's own state directory."""
    with quiet(host):
        return Reconciler(host, POLICY, world.state_dir).plan(load_desired(world.dir))


def run_subprocess(root: Path, changes: int, seed: int = 2,
                   lifetime: tuple[float, float] = (0.3, 2.0)) -> Figures:
    """The agent as a process on a file-backed faulty host, SIGKILLed at random moments: each agent
    lives a random ``lifetime`` (s; its start-up included), then is killed mid-whatever and restarted."""
    world = World(root, seed)
    host_path = root / "host.json"
    host = SimHost(f"test://{host_path}", path=host_path, total_memory_kib=HOST_MIB * 1024, nr_cpus=64,
                   shutdown_delay=0.0)
    agent = AgentProcess(root, world, host_path, faults=True, seed=seed)
    kill_at = time.monotonic() + world.rng.uniform(*lifetime)

    def restart(faults: bool, signum: int = signal.SIGKILL) -> AgentProcess:
        early = agent.kill(signum)
        world.note("agent-killed", pid=agent.proc.pid, signal=int(signum))
        if early is not None:
            world.figures.violations.append(f"the agent exited on its own (status {early}); see {agent.log}")
        return AgentProcess(root, world, host_path, faults=faults, seed=world.rng.randrange(1 << 30))

    def settled_now(name: str) -> int | None:
        with quiet(host):  # what the agent recorded in its state directory, and the host now
            return settled_domid(Reconciler(host, POLICY, world.state_dir), load_desired(world.dir), name)

    try:
        for step, kind in _changes(world, host, changes, settled_now):
            time.sleep(world.rng.uniform(0.0, 0.08))
            if time.monotonic() >= kill_at:
                agent = restart(faults=True)
                world.figures.kills += 1
                kill_at = time.monotonic() + world.rng.uniform(*lifetime)
            world.note("check", step=step, kind=kind)
            world.check(host, f"step {step} ({kind})")
        agent = restart(faults=False)
        deadline = time.monotonic() + 60
        while _fresh_plan(world, host).has_changes and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # another resync round or two: nothing may move once converged
        world.check_final(host, _fresh_plan(world, host))
        world.check_op_log(root / "ops.jsonl")
    finally:
        agent.kill(signal.SIGTERM)
    world.figures.faults_injected = agent.log.read_text().count("injected fault")
    return world.figures


def main(argv: list[str] | None = None) -> int:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=1000, help="random desired-state changes per variant")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variant", choices=("inprocess", "subprocess", "both"), default="both")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {}
    for variant, run in (("inprocess", run_inprocess), ("subprocess", run_subprocess)):
        if args.variant not in (variant, "both"):
            continue
        with tempfile.TemporaryDirectory(prefix=f"soak-{variant}-") as tmp:
            start = time.monotonic()
            figures = run(Path(tmp), args.changes, args.seed)
            report[variant] = {**figures.to_json(), "seconds": round(time.monotonic() - start, 1)}
    print(f"{'variant':<11} {'changes':>7} {'faults':>7} {'invariants':>10} {'kills':>5} {'crashes':>7} "
          f"{'violations':>10} {'seconds':>7}")
    for variant, r in report.items():
        print(f"{variant:<11} {r['changes_applied']:>7} {r['faults_injected']:>7} "
              f"{r['invariants_checked']:>10} "
              f"{r['agent_kills']:>5} {r['guest_crashes']:>7} {r['violations']:>10} {r['seconds']:>7}")
        for line in r["violation_details"]:
            print(f"  ! {line}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["violations"] for r in report.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
