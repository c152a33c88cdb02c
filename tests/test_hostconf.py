"""Host defaults from xl.conf and libvirt's libxl.conf, applied the way ``xl create`` applies them."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config
from libxl.domain.formats.domxml import parse_domain_xml
from libxl.domain.formats.xl import parse_xl
from libxl.errors import ConfigError
from libxl.frontends.hostconf import apply_host_settings, load_host_settings
from libxl.frontends.hostsettings import HostSettings
from libxl.frontends.libvirt import build_config
from reconcilers.desired import load_desired

XL_CONF = """\
# /etc/xen/xl.conf of a host with a second bridge
autoballoon="off"
vif.default.bridge="xenbr1"
vif.default.script="vif-openvswitch"
vif.default.backend="netdom"
vif.default.gatewaydev="eth1"
blkdev_start="xvdz"
claim_mode=1
max_grant_frames=64
max_maptrack_frames=1024
lockfile="/var/lock/xl"   # a key this module does not need: ignored, as xl ignores unknown ones
"""
GUEST_CFG = """\
name = "web"
type = "pvh"
kernel = "/boot/vmlinuz"
memory = 256
vif = [ "mac=00:16:3e:00:00:01", "mac=00:16:3e:00:00:02,bridge=xenbr9,script=vif-bridge" ]
"""
PASSTHROUGH_XML = """\
<domain type='xen'>
  <name>nested</name>
  <memory unit='MiB'>512</memory>
  <os><type>hvm</type></os>
  <cpu mode='host-passthrough'>{features}</cpu>
</domain>
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_xl_conf_keys_are_read(tmp_path: Path) -> None:
    host = load_host_settings(write(tmp_path / "xl.conf", XL_CONF), None)
    assert host == HostSettings(vif_bridge="xenbr1", vif_script="vif-openvswitch", vif_backend="netdom",
                                vif_gatewaydev="eth1", blkdev_start="xvdz", claim_mode=True,
                                max_grant_frames=64, max_maptrack_frames=1024, autoballoon="off")


def test_missing_files_say_nothing(tmp_path: Path) -> None:
    assert load_host_settings(tmp_path / "absent.conf", tmp_path / "absent2.conf") == HostSettings()


@pytest.mark.parametrize("value, mode", [('"auto"', "auto"), ('"on"', "on"), ("1", "on"), ("0", "off")])
def test_autoballoon_spellings(tmp_path: Path, value: str, mode: str) -> None:
    """xl.conf's strings, and the 1/0 of older xl releases."""
    assert load_host_settings(write(tmp_path / "xl.conf", f"autoballoon={value}\n"), None).autoballoon == mode


@pytest.mark.parametrize(
    "text, line, key, problem",
    [
        ('autoballoon="sometimes"\n', 1, "autoballoon", '"auto", "on" or "off"'),
        ('\nmax_grant_frames="many"\n', 2, "max_grant_frames", "non-negative integer"),
        ("claim_mode=2\n", 1, "claim_mode", "0 or 1"),
        ("vif.default.bridge=1\n", 1, "vif.default.bridge", "string"),
    ],
)
def test_bad_values_name_file_line_and_key(tmp_path: Path, text: str, line: int, key: str,
                                           problem: str) -> None:
    path = write(tmp_path / "xl.conf", text)
    with pytest.raises(ConfigError) as err:
        load_host_settings(path, None)
    assert str(err.value).startswith(f"{path}:{line}: {key}: ")
    assert problem in str(err.value)


def test_syntax_errors_are_located(tmp_path: Path) -> None:
    path = write(tmp_path / "xl.conf", 'vif.default.bridge="xenbr1"\nclaim_mode = = 1\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2: syntax error"):
        load_host_settings(path, None)


def test_precedence_xl_conf_then_libxl_conf_then_agent(tmp_path: Path) -> None:
    xl = write(tmp_path / "xl.conf", 'autoballoon="on"\n')
    libxl = write(tmp_path / "libxl.conf", "autoballoon = 0\nnested_hvm = 1\n")
    assert load_host_settings(xl, None).autoballoon == "on"
    assert load_host_settings(xl, libxl) == HostSettings(autoballoon="off", nested_hvm=True)
    overridden = load_host_settings(xl, libxl, {"autoballoon": "auto", "nested_hvm": None})
    assert (overridden.autoballoon, overridden.nested_hvm) == ("auto", True)  # None/"": not overridden


def test_agent_toml_keys_reach_the_host_settings(tmp_path: Path) -> None:
    xl = write(tmp_path / "xl.conf", 'vif.default.bridge="xenbr1"\nautoballoon="on"\n')
    toml = write(tmp_path / "agent.toml", f'xl_conf = "{xl}"\nlibxl_conf = ""\nautoballoon = "off"\n'
                                          'nested_hvm = "on"\n')
    host = load_config(toml).host_settings()
    assert (host.vif_bridge, host.autoballoon, host.nested_hvm) == ("xenbr1", "off", True)


def test_a_vif_without_bridge_gets_the_default_bridge(tmp_path: Path) -> None:
    host = load_host_settings(write(tmp_path / "xl.conf", XL_CONF), None)
    dom = parse_xl(GUEST_CFG, file="web.cfg")
    config = apply_host_settings(dom, build_config(dom), host)
    first, second = config["nics"]
    assert (first["bridge"], first["script"], first["backend_domname"], first["gatewaydev"]) == (
        "xenbr1", "vif-openvswitch", "netdom", "eth1")
    assert (second["bridge"], second["script"]) == ("xenbr9", "vif-bridge")  # the file's own values win
    b_info = config["b_info"]
    assert (b_info["blkdev_start"], b_info["claim_mode"], b_info["max_grant_frames"],
            b_info["max_maptrack_frames"]) == ("xvdz", "True", 64, 1024)
    assert "bridge" not in build_config(dom)["nics"][0]  # pure: the built config is untouched


def test_the_guests_own_grant_frames_win(tmp_path: Path) -> None:
    host = HostSettings(max_grant_frames=64)
    dom = parse_xl(GUEST_CFG + "max_grant_frames = 32\n", file="web.cfg")
    assert apply_host_settings(dom, build_config(dom), host)["b_info"]["max_grant_frames"] == 32


@pytest.mark.parametrize(
    "allowed, features, nested",
    [
        (None, "", "True"),  # no libxl.conf: the builder's own rule (host-passthrough offers it)
        (False, "", "False"),
        (True, "", "True"),
        (False, "<feature policy='require' name='vmx'/>", "True"),
        (True, "<feature policy='disable' name='vmx'/>", "False"),
    ],
)
def test_nested_hvm_from_libxl_conf(allowed: bool | None, features: str, nested: str) -> None:
    dom = parse_domain_xml(PASSTHROUGH_XML.format(features=features))
    config = apply_host_settings(dom, build_config(dom), HostSettings(nested_hvm=allowed))
    assert config["b_info"]["nested_hvm"] == nested


def test_the_desired_loader_applies_the_host_settings(tmp_path: Path) -> None:
    desired = tmp_path / "desired"
    desired.mkdir()
    write(desired / "web.cfg", GUEST_CFG)
    plain = load_desired(desired, security=None)
    assert "bridge" not in plain.domains["web"].config["nics"][0]
    host = HostSettings(vif_bridge="xenbr1")
    with_host = load_desired(desired, plain, security=None, host=host)
    assert with_host.domains["web"].config["nics"][0]["bridge"] == "xenbr1"
    again = load_desired(desired, with_host, security=None, host=HostSettings(vif_bridge="xenbr2"))
    assert again.domains["web"].config["nics"][0]["bridge"] == "xenbr2"  # changed xl.conf: re-parsed
