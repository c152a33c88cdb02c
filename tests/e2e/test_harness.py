"""Fast host-side checks of the e2e harness, run by ``make test`` (no VM needed).

They catch, in a second, what would otherwise cost a boot: a test guest config the project
rejects, a broken control-agent request, a cache key that ignores a recipe change, a comparison
that cannot tell libvirt's output from ours.
"""

from __future__ import annotations

import json
from pathlib import Path

import cache
import dom0_control
import libvirt_peer
import pytest
import scenarios

from agent.cli.main import main as cli_main


@pytest.mark.parametrize("variant", [
    {}, {"disk": "/dev/loop0"}, {"nic": True}, {"nic": True, "current_mib": 96},
    {"nic": True, "current_mib": 96, "kernel": scenarios.KERNEL_ALT},
    {"vnc": True}, {"cpuset": "1", "shares": 512},
    {"on_crash": "coredump-restart", "cmdline": "console=hvc0 sysrq_always_enabled"},
])
def test_guest_domain_xml_is_valid_project_input(tmp_path: Path, variant: dict) -> None:
    path = tmp_path / "e2e-xml.xml"
    path.write_text(scenarios.domain_xml("e2e-xml", **variant))
    assert cli_main(["validate", str(path)]) == 0


def test_guest_xl_cfg_is_valid_project_input(tmp_path: Path) -> None:
    path = tmp_path / "e2e-cfg.cfg"
    path.write_text(scenarios.xl_cfg("e2e-cfg"))
    assert cli_main(["validate", str(path)]) == 0


def test_xml_variants_differ_only_where_asked() -> None:
    base = libvirt_peer.flatten_xml(scenarios.domain_xml("g"))
    ballooned = libvirt_peer.flatten_xml(scenarios.domain_xml("g", current_mib=96))
    assert {k for k in base if base[k] != ballooned.get(k)} == {"currentMemory"}
    with_disk = libvirt_peer.flatten_xml(scenarios.domain_xml("g", disk="/dev/loop1"))
    assert with_disk["devices/disk/source@dev"] == "/dev/loop1"
    assert with_disk["devices/disk/target@dev"] == "xvdb"


def test_compare_reports_core_mismatches_and_extras() -> None:
    ours = {"name": "a", "memory": "131072", "devices/console@type": "pty"}
    theirs = {"name": "a", "memory": "262144", "devices/memballoon@model": "xen"}
    mismatches, summary = libvirt_peer.compare(ours, theirs, ("name", "memory"))
    assert mismatches == ["memory: ours '131072', libvirt '262144'"]
    assert "only libvirt ['devices/memballoon@model']" in summary
    assert "only ours ['devices/console@type']" in summary


def test_flatten_xl_normalises_quotes_and_lists() -> None:
    flat = libvirt_peer.flatten_xl('name = "g"\ndisk = [ "phy:/dev/loop0,xvdb,w" ]\nmemory = 128\n')
    assert flat == {"name": "'g'", "disk": "['phy:/dev/loop0,xvdb,w']", "memory": "128"}


def test_cache_key_follows_recipe_content(tmp_path: Path) -> None:
    (tmp_path / "packages.txt").write_text("xen-utils-4.17\n")
    first = cache.digest(list(tmp_path.iterdir()), tmp_path)
    assert cache.digest(list(tmp_path.iterdir()), tmp_path) == first
    (tmp_path / "packages.txt").write_text("xen-utils-4.17\ngcc\n")
    assert cache.digest(list(tmp_path.iterdir()), tmp_path) != first


def test_image_key_covers_every_recipe_file() -> None:
    recipe = {p.name for p in cache.RECIPE_DIR.iterdir()}
    assert {"build.sh", "packages.txt", "dom0-setup.sh", "xr-e2e-control.service", "guest-init",
            "mkguest.sh"} <= recipe
    assert len(cache.image_key()) == 16


def test_control_agent_requests(tmp_path: Path) -> None:
    assert dom0_control.handle({"op": "sh", "cmd": "echo hi; exit 3", "timeout": 10})["rc"] == 3
    assert dom0_control.handle({"op": "sh", "cmd": "echo hi"})["out"] == "hi\n"
    timed_out = dom0_control.handle({"op": "sh", "cmd": "sleep 5", "timeout": 0.2})
    assert timed_out["rc"] == 124
    target = tmp_path / "desired" / "g.cfg"
    target.parent.mkdir()
    assert dom0_control.handle({"op": "write", "path": str(target), "data": "name = 'g'\n"})["rc"] == 0
    assert target.read_text() == "name = 'g'\n"
    assert [p.name for p in target.parent.iterdir()] == ["g.cfg"]  # no temp file left behind
    assert dom0_control.handle({"op": "reboot"})["rc"] == 2
    json.dumps(dom0_control.handle({"op": "ping"}))  # replies must be JSON-serialisable


def test_readme_install_section_gives_the_two_commands_the_e2e_runs() -> None:
    """The install scenario runs README's own lines: install the .deb, enable the units."""
    install, enable = scenarios.readme_install_commands((scenarios.CHECKOUT / "README.md").read_text())
    assert install.startswith("apt-get install ./xenreconcile_") and install.endswith(".deb")
    assert enable.split()[:3] == ["systemctl", "enable", "--now"] and "xenreconcile" in enable.split()


def test_subset_adds_what_the_named_scenarios_need_in_suite_order() -> None:
    picked = scenarios.subset(scenarios.SCENARIOS, ["disk unplug"])
    assert [sc.name for sc in picked] == list(scenarios.AGENT) + ["disk unplug"]
    with pytest.raises(KeyError, match="no scenario named 'nope'"):
        scenarios.subset(scenarios.SCENARIOS, ["nope"])


def test_dom0_scripts_compile_and_time_spans_parse() -> None:
    """The scripts the scenarios write into dom0 are valid Python; systemd's spans are read right."""
    compile(scenarios.MARKWATCH, "xr-e2e-markwatch.py", "exec")
    compile(scenarios._RFB, "rfb.py", "exec")
    assert scenarios._usec("1min 30s") == 90
    assert scenarios._usec("10min") == 600
