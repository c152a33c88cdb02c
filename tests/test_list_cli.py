"""``xenreconcile list``: xl-like table, JSON rows, and a clear error when the host is unreachable."""

from __future__ import annotations

import argparse
import json

import pytest

from agent.cli.commands import hosts
from libxl.errors import BackendUnavailable
from libxl.hosts.backend import DomainInfo

DOMAINS = [
    DomainInfo(name="web", domid=3, uuid="6a1f4a6e-94b6-4e4c-8c0c-1f0e2b6f6b01", state="paused",
               memory_kib=524288, max_memory_kib=1048576, vcpus_online=2, vcpus_max=4,
               owner="agent-a", cpu_time_ns=12_340_000_000),
    DomainInfo(name="Domain-0", domid=0, uuid="00000000-0000-0000-0000-000000000000", state="running",
               memory_kib=2097152, max_memory_kib=2097152, vcpus_online=4, vcpus_max=4),
]


class FakeBackend:
    uri = "fake:///"

    def __init__(self) -> None:
        self.closed = False

    def list_domains(self) -> list[DomainInfo]:
        return DOMAINS

    def domain_config(self, domid: int) -> dict:
        """The real libxl lists no display ports: ``list`` reads them from each guest's config."""
        return {"c_info": {"type": "hvm"}, "b_info": {"type.hvm": {
            "vnc": {"enable": "True", "display": 3, "findunused": "False"}}}}

    def close(self) -> None:
        self.closed = True


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    hosts.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_state_flags_follow_xl_letters() -> None:
    assert [hosts.state_flags(s) for s in ("running", "blocked", "paused", "shutdown", "crashed", "dying")] \
        == ["r-----", "-b----", "--p---", "---s--", "----c-", "-----d"]


def test_table_is_sorted_by_domid_with_mib_and_owner(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    backend = FakeBackend()
    monkeypatch.setattr(hosts, "open_backend", lambda uri: backend)
    assert _run(["list", "--uri", "fake:///"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Name", "ID", "Mem", "VCPUs", "State", "Time(s)", "Owner"]
    assert lines[1].split() == ["Domain-0", "0", "2048", "4", "r-----", "0.0", "-"]
    assert lines[2].split() == ["web", "3", "512", "2", "--p---", "12.3", "agent-a"]
    assert backend.closed


def test_json_rows_carry_every_field(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(hosts, "open_backend", lambda uri: FakeBackend())
    assert _run(["list", "--json", "--uri", "fake:///"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["domid"] for r in rows] == [0, 3]
    assert rows[1]["owner"] == "agent-a" and rows[1]["max_memory_kib"] == 1048576
    assert (rows[1]["vnc_port"], rows[1]["spice_port"]) == (5903, None)


def test_unreachable_host_is_one_line_on_stderr(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(uri: str) -> FakeBackend:
        raise BackendUnavailable("no Xen hypervisor here: cannot open /dev/xen/privcmd")

    monkeypatch.setattr(hosts, "open_backend", refuse)
    assert _run(["list"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "xenreconcile list: no Xen hypervisor here: cannot open /dev/xen/privcmd\n"


def test_simulated_host_lists_domain0(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("libxl.hosts.uri", reason="libxl/hosts/uri.py (open_backend) is not written yet")
    assert _run(["list", "--json", "--uri", "test:///default"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["domid"] == 0
