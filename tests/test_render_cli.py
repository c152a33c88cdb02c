"""``xenreconcile render``: the libxl JSON the agent would create, or the located reason it would not."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.cli.main import main

Capture = pytest.CaptureFixture[str]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "desired"


def write_settings(tmp_path: Path, xl_conf: str = "") -> Path:
    """Agent settings whose host xl.conf is ours (not this machine's /etc/xen/xl.conf)."""
    (tmp_path / "xl.conf").write_text(xl_conf)
    toml = tmp_path / "agent.toml"
    toml.write_text(f'xl_conf = "{tmp_path / "xl.conf"}"\nlibxl_conf = ""\n')
    return toml


def test_xl_cfg_renders_with_host_xl_conf_under_it(tmp_path: Path, capsys: Capture) -> None:
    guest = tmp_path / "web.cfg"
    guest.write_text('name = "web"\nmemory = 256\nkernel = "/boot/vmlinuz"\n'
                     'vif = [ "mac=00:16:3e:00:00:01" ]\ncolour = "blue"\n')
    settings = write_settings(tmp_path, 'vif.default.bridge = "xenbr7"\n')
    assert main(["render", "--config", str(settings), str(guest)]) == 0
    out, err = capsys.readouterr()
    config = json.loads(out)
    assert config["nics"] == [{"devid": 0, "bridge": "xenbr7", "mac": "00:16:3e:00:00:01"}]
    assert "xsdata" not in config["c_info"]  # no owner marker
    assert err == f"{guest}:5: colour: unknown key: xl ignores it, so does the agent (warning)\n"


def test_several_files_print_one_object_keyed_by_file(tmp_path: Path, capsys: Capture) -> None:
    files = [str(EXAMPLES / "pv-xl.cfg"), str(EXAMPLES / "pv-kernel.xml")]
    assert main(["render", "--config", str(write_settings(tmp_path)), *files]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert list(rendered) == files
    assert rendered[files[1]]["c_info"]["name"] == "pv-kernel"


def test_refused_file_is_one_located_line_and_exit_1(tmp_path: Path, capsys: Capture) -> None:
    bad = tmp_path / "bad.cfg"
    bad.write_text('name = "bad"\nmemory = 64\nkernel = "/k"\nvif = [ "rate=10kB/s" ]\n')
    good = EXAMPLES / "pv-xl.cfg"
    assert main(["render", "--config", str(write_settings(tmp_path)), str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert err == f"{bad}:4: vif: invalid rate in '10kB/s'\n"
    assert list(json.loads(out)) == [str(good)]


def test_policy_applies_unless_no_policy(tmp_path: Path, capsys: Capture) -> None:
    evil = tmp_path / "evil.cfg"
    evil.write_text('name = "evil"\ntype = "hvm"\nmemory = 128\n'
                    'device_model_args = [ "-monitor", "stdio" ]\n')
    settings = str(write_settings(tmp_path))
    assert main(["render", "--config", settings, str(evil)]) == 1
    assert capsys.readouterr().err.startswith(f"{evil}:4: device_model_args: device model arguments are not")
    assert main(["render", "--config", settings, "--no-policy", str(evil)]) == 0
    assert json.loads(capsys.readouterr().out)["b_info"]["extra"] == ["-monitor", "stdio"]


def test_unreadable_settings_exit_2(tmp_path: Path, capsys: Capture) -> None:
    assert main(["render", "--config", str(tmp_path / "none.toml"), str(EXAMPLES / "pv-xl.cfg")]) == 2
    assert capsys.readouterr().err.startswith("xenreconcile render: ")


def test_secrets_print_as_stars_unless_security_info(tmp_path: Path, capsys: Capture) -> None:
    """render's output goes to review diffs and CI logs: passwords and Ceph keys are left out, as
    virsh's converters leave them out, unless ``--security-info``."""
    guest = tmp_path / "g.cfg"
    guest.write_text('name = "g"\nmemory = 128\nkernel = "/k"\n'
                     'vfb = ["vnc=1,vncpasswd=VNCSECRET,vnclisten=127.0.0.1"]\n'
                     'disk = ["format=raw,vdev=xvda,target=rbd:pool/img:id=a:key=CEPHSECRET"]\n')
    hvm = tmp_path / "h.xml"
    hvm.write_text("<domain type='xen'><name>h</name><memory>131072</memory><os><type>hvm</type></os>"
                   "<devices><graphics type='spice' port='5999' passwd='SPICESECRET' listen='127.0.0.1'/>"
                   "</devices></domain>")
    settings = str(write_settings(tmp_path))
    assert main(["render", "--no-policy", "--config", settings, str(guest), str(hvm)]) == 0
    out = capsys.readouterr().out
    assert not [secret for secret in ("VNCSECRET", "CEPHSECRET", "SPICESECRET") if secret in out]
    rendered = json.loads(out)
    assert rendered[str(guest)]["vfbs"][0]["vnc"]["passwd"] == "***"
    assert rendered[str(guest)]["disks"][0]["pdev_path"].endswith(":key=***")
    assert rendered[str(hvm)]["b_info"]["type.hvm"]["spice"]["passwd"] == "***"
    assert main(["render", "--no-policy", "--security-info", "--config", settings, str(guest)]) == 0
    assert json.loads(capsys.readouterr().out)["vfbs"][0]["vnc"]["passwd"] == "VNCSECRET"


def test_a_fifo_is_refused_unread(tmp_path: Path, capsys: Capture) -> None:
    fifo = tmp_path / "x.cfg"
    os.mkfifo(fifo)
    assert main(["render", "--no-policy", "--config", str(write_settings(tmp_path)), str(fifo)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{fifo}:") and len(err.splitlines()) == 1
