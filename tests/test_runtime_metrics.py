"""Per-guest runtime metrics (issue 15 item 8): CPU, vcpus, memory and xentop's block and network
counters in the agent's own /metrics, by domain name, promtool-clean."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

import libxl.hosts.sim.host as sim_module
from agent.daemon.metrics import AgentMetrics, DomainView
from libxl.domain.model import OS, Devices, Disk, Domain, Interface
from libxl.frontends.libvirt import build_config
from libxl.hosts.backend import DomainInfo, IoStats
from libxl.hosts.display import DisplayPorts
from libxl.hosts.iostats import read_io
from libxl.hosts.sim import SIM_DISK_IO, SIM_NIC_IO, SimHost
from reconcilers.status import StatusBook
from tests.citools import ci_tool


def _write(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def test_read_io_sums_each_domains_vbds_and_vifs_from_the_guests_side(tmp_path: Path) -> None:
    vbds = tmp_path / "bus" / "xen-backend" / "devices"
    for devid, (rd, wr, rs, ws) in {"51712": (10, 4, 80, 32), "51728": (1, 2, 8, 16)}.items():
        for name, value in zip(("rd_req", "wr_req", "rd_sect", "wr_sect"), (rd, wr, rs, ws), strict=True):
            _write(vbds / f"vbd-3-{devid}" / "statistics" / name, value)
    _write(vbds / "vbd-4-51712" / "statistics" / "rd_req", 7)
    (vbds / "vif-3-0").mkdir()  # another backend kind: not a disk
    nets = tmp_path / "class" / "net"
    for vif, (rxb, txb, rxp, txp) in {"vif3.0": (1000, 5000, 10, 50), "vif3.1": (1, 2, 3, 4),
                                      "vif3.0-emu": (99, 99, 99, 99), "eth0": (7, 7, 7, 7)}.items():
        for name, value in zip(("rx_bytes", "tx_bytes", "rx_packets", "tx_packets"), (rxb, txb, rxp, txp),
                               strict=True):
            _write(nets / vif / "statistics" / name, value)
    io = read_io(tmp_path)
    assert io[3] == IoStats(block_read_requests=11, block_write_requests=6, block_read_bytes=88 * 512,
                            block_write_bytes=48 * 512,
                            # dom0's vif transmits what the guest receives
                            net_receive_bytes=5002, net_transmit_bytes=1001, net_receive_packets=54,
                            net_transmit_packets=13)
    assert io[4] == IoStats(block_read_requests=7)
    assert read_io(tmp_path / "absent") == {}


def _guest(name: str) -> dict:
    dom = Domain(name=name, memory_kib=262144, os=OS(type="linux", kernel="/k"),
                 devices=Devices(disks=[Disk(source="/a", target_dev="xvda"),
                                        Disk(source="/b", target_dev="xvdb")],
                                 interfaces=[Interface(mac="00:16:3e:00:00:01", source_bridge="br0")]))
    return build_config(dom)


def test_the_simulated_host_counts_io_with_uptime(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000_000.0]
    monkeypatch.setattr(sim_module.time, "time", lambda: clock[0])
    host = SimHost()
    domid = host.create(_guest("web"))
    clock[0] += 10
    io = host.io_stats()[domid]
    assert io.block_read_requests == 10 * SIM_DISK_IO["block_read_requests"] * 2  # two disks
    assert io.net_transmit_bytes == 10 * SIM_NIC_IO["net_transmit_bytes"]  # one nic
    host.destroy(domid)
    assert domid not in host.io_stats()


def scrape(metrics: AgentMetrics) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_runtime_series_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [2_000_000.0]
    monkeypatch.setattr(sim_module.time, "time", lambda: clock[0])
    host = SimHost()
    host.create(_guest("web"))
    clock[0] += 4
    metrics = AgentMetrics()
    metrics.bind_runtime(lambda: [(i, host.io_stats().get(i.domid)) for i in host.list_domains()])
    s = scrape(metrics)
    web = (("domain", "web"),)
    assert s[("xenreconcile_runtime_collect_success", ())] == 1
    assert s[("xenreconcile_domain_cpu_seconds_total", web)] == pytest.approx(4.0)
    assert s[("xenreconcile_domain_memory_bytes", web)] == 262144 * 1024
    assert s[("xenreconcile_domain_memory_max_bytes", web)] == 262144 * 1024
    assert s[("xenreconcile_domain_vcpus_online", web)] == 1
    assert s[("xenreconcile_domain_block_read_bytes_total", web)] == 4 * SIM_DISK_IO["block_read_bytes"] * 2
    packets = 4 * SIM_NIC_IO["net_receive_packets"]
    assert s[("xenreconcile_domain_network_receive_packets_total", web)] == packets
    # Domain-0 too (one exporter for the host), with zero I/O of its own.
    assert s[("xenreconcile_domain_block_read_requests_total", (("domain", "Domain-0"),))] == 0
    assert not any(k == "domid" for _, labels in s for k, _ in labels)


def test_nameless_and_dying_duplicates_are_left_out_and_a_failing_host_is_not_a_failed_scrape() -> None:
    def row(name: str, domid: int, state: str) -> DomainInfo:
        return DomainInfo(name=name, domid=domid, uuid="u", state=state, memory_kib=1, max_memory_kib=1,
                          vcpus_online=1, vcpus_max=1, cpu_time_ns=domid * 10**9)

    metrics = AgentMetrics()
    rows = [row("web", 3, "dying"), row("", 4, "paused"), row("web", 5, "running")]
    metrics.bind_runtime(lambda: [(r, None) for r in rows])
    s = scrape(metrics)
    assert s[("xenreconcile_domain_cpu_seconds_total", (("domain", "web"),))] == 5.0
    assert [k for k in s if k[0] == "xenreconcile_domain_cpu_seconds_total"] == [
        ("xenreconcile_domain_cpu_seconds_total", (("domain", "web"),))]

    def broken() -> list:
        raise OSError("libxl went away")

    failing = AgentMetrics()
    failing.bind_runtime(broken)
    s = scrape(failing)
    assert s[("xenreconcile_runtime_collect_success", ())] == 0
    assert not any(k[0] == "xenreconcile_domain_cpu_seconds_total" for k in s)


def test_display_port_and_ready_series() -> None:
    metrics = AgentMetrics()
    book = StatusBook()
    book.record("web", "in-sync", ports=DisplayPorts(vnc=5901, spice=5902))
    book.record("db", "in-sync")
    metrics.bind_domains(lambda: DomainView(book.snapshot(), {"web", "db"}, set()))
    ready = [False]
    metrics.bind_ready(lambda: ready[0])
    s = scrape(metrics)
    assert s[("xenreconcile_domain_display_port", (("domain", "web"), ("protocol", "vnc")))] == 5901
    assert s[("xenreconcile_domain_display_port", (("domain", "web"), ("protocol", "spice")))] == 5902
    assert not any(k[0] == "xenreconcile_domain_display_port" and ("domain", "db") in k[1] for k in s)
    assert s[("xenreconcile_ready", ())] == 0
    ready[0] = True
    assert scrape(metrics)[("xenreconcile_ready", ())] == 1


def test_promtool_accepts_the_runtime_series() -> None:
    promtool = ci_tool("promtool", "prometheus")
    host = SimHost()
    host.create(_guest("web"))
    metrics = AgentMetrics()
    metrics.bind_runtime(lambda: [(i, host.io_stats().get(i.domid)) for i in host.list_domains()])
    text = generate_latest(metrics.registry).decode()
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True,
                            timeout=60)
    said = result.stdout + result.stderr
    assert result.returncode == 0 and not said.strip(), said
