"""Display ports (issue 15 item 5): every VNC and SPICE autoport guest gets its own port from the
configured range, keeps it across agent restarts and its own re-creation, and shows it in status,
``list --json`` and the simulated host, which refuses two guests on one port as qemu would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from reconcile_fixtures import OWNER, domain_xml

from agent.cli.commands.run import format_status
from agent.config import AgentConfigError, load_config
from libxl.errors import BackendError
from libxl.hosts.sim import SimHost
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy
from reconcilers.state import StateDir

UUIDS = {"a": "11111111-1111-1111-1111-111111111111", "b": "22222222-2222-2222-2222-222222222222",
         "c": "33333333-3333-3333-3333-333333333333"}


def pv_vnc(name: str, graphics: str = "<graphics type='vnc' autoport='yes'/>", kernel: str = "/k") -> str:
    return domain_xml(name, memory_mib=64, kernel=kernel).replace("</devices>", graphics + "</devices>")


def hvm(name: str, graphics: str) -> str:
    return (f"<domain type='xen'><name>{name}</name><uuid>{UUIDS[name]}</uuid>"
            "<memory unit='MiB'>64</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
            f"<devices><disk type='file' device='disk'><source file='/img/{name}'/><target dev='hda'/></disk>"
            f"{graphics}</devices></domain>\n")


class Env:
    def __init__(self, root: Path, host: SimHost | None = None, **policy: object) -> None:
        self.dir = root / "desired"
        self.dir.mkdir(exist_ok=True)
        self.state = root / "state"
        self.host = host or SimHost(shutdown_delay=0)
        self.policy = {"owner": OWNER, **policy}
        self.rec = self.agent()

    def agent(self) -> Reconciler:
        """A fresh reconciler on the same state directory: what an agent restart is."""
        rec = Reconciler(self.host, Policy(**self.policy), self.state)  # type: ignore[arg-type]
        rec.ports._probe = lambda port: True  # the machine running the tests may listen anywhere
        return rec

    def sync(self, rec: Reconciler | None = None) -> dict[str, object]:
        return {r.name: r for r in (rec or self.rec).reconcile_all(load_desired(self.dir))}

    def ports(self) -> dict[str, tuple[int | None, int | None]]:
        return {d.name: (d.vnc_port, d.spice_port) for d in self.host.list_domains() if d.domid}


def test_two_autoport_guests_get_different_ports_and_no_drift(tmp_path: Path) -> None:
    env = Env(tmp_path)
    for name in ("a", "b"):
        (env.dir / f"{name}.xml").write_text(pv_vnc(name))
    results = env.sync()
    assert all(r.ok for r in results.values()), results
    assert env.ports() == {"a": (5900, None), "b": (5901, None)}
    assert not env.rec.plan(load_desired(env.dir)).has_changes
    assert StateDir(env.state).load_ports() == {"a": {"vnc": 5900}, "b": {"vnc": 5901}}


def test_ports_survive_an_agent_restart_and_a_recreate(tmp_path: Path) -> None:
    env = Env(tmp_path, restart="always")
    for name in ("a", "b"):
        (env.dir / f"{name}.xml").write_text(pv_vnc(name))
    env.sync()
    restarted = env.agent()
    assert not restarted.plan(load_desired(env.dir)).has_changes
    # a is re-created (a kernel change needs a restart): it comes back on its own port.
    (env.dir / "a.xml").write_text(pv_vnc("a", kernel="/k2"))
    (env.dir / "c.xml").write_text(pv_vnc("c"))
    results = env.sync(restarted)
    assert [a.kind for a in results["a"].applied] == ["recreate"]
    assert env.ports() == {"a": (5900, None), "b": (5901, None), "c": (5902, None)}
    assert results["a"].ok
    assert restarted.status.get("a").vnc_port == 5900


def test_spice_autoport_gets_a_port_and_both_kinds_are_distinct(tmp_path: Path) -> None:
    env = Env(tmp_path)
    # On loopback: SPICE on every address without a password is refused (allow_open_display).
    (env.dir / "a.xml").write_text(hvm("a", "<graphics type='vnc'/>"
                                            "<graphics type='spice' autoport='yes' listen='127.0.0.1'/>"))
    (env.dir / "b.xml").write_text(hvm("b", "<graphics type='spice' listen='127.0.0.1'/>"))
    results = env.sync()
    assert set(results) == {"a", "b"} and all(r.ok for r in results.values()), results
    assert env.ports() == {"a": (5900, 5901), "b": (None, 5902)}
    assert not env.rec.plan(load_desired(env.dir)).has_changes
    doc = {"domains": {n: env.rec.status.get(n).to_json() for n in ("a", "b")}}
    assert (doc["domains"]["a"]["vnc_port"], doc["domains"]["a"]["spice_port"]) == (5900, 5901)
    assert "vnc:5900 spice:5901" in format_status(doc)[0]


def test_a_fixed_port_is_left_alone_and_skipped_by_the_allocator(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (env.dir / "a.xml").write_text(pv_vnc("a", "<graphics type='vnc' port='5900' autoport='no'/>"))
    env.sync()
    assert env.rec.ports.get("a") is None  # the file's port, not the agent's to record
    (env.dir / "b.xml").write_text(pv_vnc("b"))
    results = env.sync()
    assert results["b"].ok and env.ports() == {"a": (5900, None), "b": (5901, None)}
    assert not env.rec.plan(load_desired(env.dir)).has_changes


def test_busy_ports_are_skipped_like_libvirt(tmp_path: Path) -> None:
    env = Env(tmp_path)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        rec = Reconciler(env.host, Policy(owner=OWNER, display_port_min=port, display_port_max=port + 50),
                         env.state)
        (env.dir / "a.xml").write_text(pv_vnc("a"))
        env.sync(rec)
        assert env.ports()["a"][0] not in (None, port)
    finally:
        busy.close()


def test_an_exhausted_range_is_one_sentence_and_pruning_frees_a_port(tmp_path: Path) -> None:
    env = Env(tmp_path, display_port_min=5950, display_port_max=5950, prune="destroy")
    (env.dir / "a.xml").write_text(pv_vnc("a"))
    (env.dir / "b.xml").write_text(pv_vnc("b"))
    results = env.sync()
    assert results["a"].ok and env.ports() == {"a": (5950, None)}
    assert results["b"].status == "error"
    assert "b: no free display port in 5950..5950 (display_port_min/display_port_max)" in results["b"].error
    (env.dir / "a.xml").unlink()
    env.sync()  # a is pruned, its port released
    results = env.sync()
    assert results["b"].ok and env.ports() == {"b": (5950, None)}


def test_a_guest_from_before_the_table_keeps_its_port(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (env.dir / "a.xml").write_text(pv_vnc("a"))
    env.sync()
    StateDir(env.state).delete_ports(["a"])
    fresh = env.agent()
    assert not fresh.plan(load_desired(env.dir)).has_changes
    assert StateDir(env.state).load_ports() == {}  # plan only reads the state directory
    results = env.sync(fresh)
    assert results["a"].ok and not results["a"].applied
    assert fresh.ports.get("a").vnc == 5900
    assert StateDir(env.state).load_ports() == {"a": {"vnc": 5900}}


def test_the_simulated_host_refuses_two_guests_on_one_port_like_qemu() -> None:
    from libxl.domain.formats.domxml import parse_domain_xml
    from libxl.frontends.libvirt import build_config

    host = SimHost()
    host.create(build_config(parse_domain_xml(pv_vnc("a"))))
    with pytest.raises(BackendError, match="vnc port 5900: Address already in use"):
        host.create(build_config(parse_domain_xml(pv_vnc("b"))))
    # xl's way (vncunused=1): qemu hunts a free display itself.
    hunting = build_config(parse_domain_xml(pv_vnc("c")))
    hunting["vfbs"][0]["vnc"]["findunused"] = "True"
    domid = host.create(hunting)
    assert next(d.vnc_port for d in host.list_domains() if d.domid == domid) == 5901
    with pytest.raises(BackendError, match="spiceport or tls_port"):
        host.create(build_config(parse_domain_xml(hvm("b", "<graphics type='spice'/>"))))


def test_list_json_shows_the_ports(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    env = Env(tmp_path, host=SimHost(f"test://{path}", path=path, shutdown_delay=0))
    (env.dir / "a.xml").write_text(pv_vnc("a"))
    env.sync()
    out = subprocess.run([sys.executable, "-m", "agent.cli", "list", "--uri", f"test://{path}", "--json"],
                         capture_output=True, text=True, timeout=60, check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert (rows["a"]["vnc_port"], rows["a"]["spice_port"]) == (5900, None)
    assert rows["Domain-0"]["vnc_port"] is None


def test_range_settings_are_checked(tmp_path: Path) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text("display_port_min = 6000\ndisplay_port_max = 5999\n")
    with pytest.raises(AgentConfigError, match="display_port_max.*must be >= display_port_min"):
        load_config(cfg)
    cfg.write_text("display_port_max = 70000\n")
    with pytest.raises(AgentConfigError, match="display_port_max.*<= 65535"):
        load_config(cfg)
    cfg.write_text("display_port_min = 5910\n")
    assert load_config(cfg).policy().display_port_min == 5910


def test_a_port_is_released_when_its_guest_is_neither_desired_nor_on_the_host(tmp_path: Path) -> None:
    env = Env(tmp_path)
    (env.dir / "a.xml").write_text(pv_vnc("a"))
    env.sync()
    domid = next(d.domid for d in env.host.list_domains() if d.name == "a")
    (env.dir / "a.xml").unlink()  # prune none: the guest stays, and so does its port
    env.sync()
    assert env.rec.ports.get("a").vnc == 5900
    env.host.destroy(domid)  # gone behind the agent's back
    env.sync()
    assert env.rec.ports.get("a") is None
    assert StateDir(env.state).load_ports() == {}


def test_status_keeps_the_ports_through_a_failure_reported_outside_the_reconciler() -> None:
    from libxl.hosts.display import DisplayPorts
    from reconcilers.status import StatusBook

    book = StatusBook()
    book.record("a", "in-sync", ports=DisplayPorts(vnc=5905))
    book.record("a", "error", error="backend went away")
    assert book.get("a").vnc_port == 5905
    book.record("a", "in-sync", ports=DisplayPorts())
    assert book.get("a").vnc_port is None


def test_a_port_another_file_fixes_is_never_handed_out(tmp_path: Path) -> None:
    env = Env(tmp_path, display_port_min=5900, display_port_max=5902)
    (env.dir / "a.xml").write_text(pv_vnc("a", "<graphics type='vnc' port='5900' autoport='no'/>"))
    (env.dir / "b.xml").write_text(hvm("b", "<graphics type='spice' port='5901' listen='127.0.0.1'/>"))
    (env.dir / "c.xml").write_text(pv_vnc("c"))
    results = env.sync()
    assert set(results) == {"a", "b", "c"} and all(r.ok for r in results.values()), results
    assert env.ports() == {"a": (5900, None), "b": (None, 5901), "c": (5902, None)}


def test_a_kept_port_taken_meanwhile_is_replaced(tmp_path: Path) -> None:
    env = Env(tmp_path, restart="always")
    (env.dir / "a.xml").write_text(pv_vnc("a"))
    env.sync()
    busy = {5900}
    env.rec.ports._probe = lambda port: port not in busy  # someone's qemu listens on 5900 now
    (env.dir / "a.xml").write_text(pv_vnc("a", kernel="/k2"))  # a is re-created
    busy_while_down = env.sync()
    assert busy_while_down["a"].ok and env.ports() == {"a": (5901, None)}


def test_xl_cfg_guests_keep_xls_display_semantics_beside_allocated_ones(tmp_path: Path) -> None:
    """An xl.cfg vfb means what ``xl create`` makes of it: ``vncunused`` (xl's default) lets qemu
    hunt a free display itself from ``vncdisplay`` on, so the allocator leaves it alone; a display
    the file fixes (``vncunused=0``) is never handed to an autoport guest of a domain XML file."""
    env = Env(tmp_path)
    (env.dir / "x.cfg").write_text('name = "x"\nmemory = 64\nkernel = "/k"\n'
                                   'vfb = ["vnc=1,vncdisplay=10,vnclisten=127.0.0.1"]\n')
    (env.dir / "y.cfg").write_text('name = "y"\nmemory = 64\nkernel = "/k"\n'
                                   'vfb = ["vnc=1,vncunused=0,vncdisplay=0,vnclisten=127.0.0.1"]\n')
    (env.dir / "a.xml").write_text(pv_vnc("a"))
    results = env.sync()
    assert set(results) == {"a", "x", "y"} and all(r.ok for r in results.values()), results
    x = next(d.domid for d in env.host.list_domains() if d.name == "x")
    (x_vfb,) = env.host.domain_config(x)["vfbs"]
    assert str(x_vfb["vnc"].get("findunused", "True")) == "True"  # xl's vncunused default, untouched
    assert env.ports()["x"] == (5910, None)
    assert env.ports()["y"] == (5900, None)
    assert env.ports()["a"] == (5901, None)
    assert not env.rec.plan(load_desired(env.dir)).has_changes
