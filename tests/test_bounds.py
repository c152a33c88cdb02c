"""Counts are checked against Xen's limits before anything is sized by them (issue 14, finding 5).

``vcpus = 300000000`` once built a 300-million-entry ``avail_vcpus`` list (MemoryError, and the
valid guests beside it were never created); ``cpus = "0-300000000"`` expanded the range first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reconcile_fixtures import domain_xml

from agent.cli.main import main
from libxl.domain.formats.xl import parse_xl
from libxl.domain.model import HVM_MAX_VCPUS, MAX_CPU_ID, PV_MAX_VCPUS
from libxl.frontends.libvirt import build_config
from libxl.hosts.uri import open_backend
from reconcilers.desired import load_desired

PV = 'name = "big"\nmemory = 128\nkernel = "/k"\n'
HVM = 'name = "big"\nmemory = 128\ntype = "hvm"\n'


@pytest.mark.parametrize(("text", "expected"), [
    # xl.cfg reaches the agent through the xl front end: its errors name the line and the key.
    (PV + "vcpus = 300000000\n", "4: vcpus: 300000000 vcpus: Xen allows at most 8192 for PV guests"),
    (PV + "vcpus = 1\nmaxvcpus = 300000000\n",
     "5: maxvcpus: 300000000 vcpus: Xen allows at most 8192 for PV guests"),
    (HVM + "vcpus = 129\n", "4: vcpus: 129 vcpus: Xen allows at most 128 for HVM guests"),
], ids=["vcpus", "maxvcpus", "hvm-vcpus"])
def test_huge_counts_are_one_located_error_and_the_other_guests_are_created(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str) -> None:
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "big.cfg").write_text(text)
    (desired / "ok.xml").write_text(domain_xml("ok"))
    result = load_desired(desired)
    assert set(result.domains) == {"ok"}
    assert str(result.invalid[desired / "big.cfg"]) == f"{desired / 'big.cfg'}:{expected}"
    host = f"test://{tmp_path / 'host.json'}"
    assert main(["apply", "--uri", host, "--dir", str(desired), "--state-dir", str(tmp_path / "state")]) == 1
    assert "big.cfg" in capsys.readouterr().out
    assert [d.name for d in open_backend(host).list_domains() if d.domid] == ["ok"]


def test_a_huge_cpu_range_is_refused_unread_or_cut_to_the_host_as_xl_cuts_it(tmp_path: Path) -> None:
    """``cpus = "0-300000000"``: without the host (validate, render) no cpu past Xen's NR_CPUS can
    exist, so it is refused before the range is expanded; the agent knows the host's cpu count and,
    like xl, drops the bits past it (libxl's bitmap is that long) without expanding the rest."""
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "big.cfg").write_text(PV + 'vcpus = 2\ncpus = "0-300000000"\n')
    assert str(load_desired(desired).invalid[desired / "big.cfg"]) == (
        f"{desired / 'big.cfg'}:5: cpus: cpu 300000000 does not exist: Xen has at most 4095 cpus (NR_CPUS)")
    host = f"test:///{tmp_path / 'host.json'}?cpus=4"
    assert main(["apply", "--uri", host, "--dir", str(desired), "--state-dir", str(tmp_path / "state")]) == 0
    backend = open_backend(host)
    (big,) = [d for d in backend.list_domains() if d.name == "big"]
    assert backend.domain_config(big.domid)["b_info"]["vcpu_hard_affinity"] == [[0, 1, 2, 3]] * 2


def test_the_limits_themselves_are_accepted() -> None:
    assert build_config(parse_xl(HVM + f"vcpus = {HVM_MAX_VCPUS}\n"))["b_info"]["max_vcpus"] == 128
    pv = build_config(parse_xl(PV + f'vcpus = {PV_MAX_VCPUS}\ncpus = "{MAX_CPU_ID}"\n'))["b_info"]
    assert (pv["max_vcpus"], pv["vcpu_hard_affinity"][-1]) == (PV_MAX_VCPUS, [MAX_CPU_ID])
