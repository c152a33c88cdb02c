"""Hostile desired files: StrictModes-like ownership/mode checks and the dom0 security policy.

Each rule is exercised through the loader (so the agent, plan/apply and the status see it) with a
file an attacker could write, and the guest an earlier good version created must stay untouched.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from reconcile_fixtures import OWNER, domain_xml

from agent.cli.main import main
from libxl.domain.formats.load import load_domain_file
from libxl.frontends.libvirt import build_config
from libxl.hosts.sim import SimHost
from libxl.hosts.uri import open_backend
from reconcilers import status as st
from reconcilers.apply import Reconciler
from reconcilers.desired import load_desired
from reconcilers.policy import Policy
from reconcilers.security import check_file_modes, check_policy, mode_problem, script_path
from reconcilers.securitypolicy import DEFAULT_SECURITY, SecurityPolicy
from tests.agent_helpers import names_on_host, running, settings, wait_for

HEAD = "<domain type='xen' xmlns:xen='http://libvirt.org/schemas/domain/xen/1.0'><name>evil</name>"


def hvm(devices: str = "", extra: str = "") -> str:
    """An HVM guest, one element per line so that errors point at distinct lines."""
    return "\n".join([HEAD, "<memory unit='MiB'>128</memory>", "<os><type>hvm</type></os>", "<devices>",
                      devices, "</devices>", extra, "</domain>", ""])


def load_one_file(tmp_path: Path, name: str, text: str, security: SecurityPolicy = DEFAULT_SECURITY):
    desired = tmp_path / "desired"
    desired.mkdir(mode=0o755, exist_ok=True)
    (desired / name).write_text(text)
    return load_desired(desired, security=security)


def only_error(result) -> str:
    assert not result.domains, "a hostile file must not be applied"
    assert len(result.invalid) == 1
    return str(next(iter(result.invalid.values())))


# ---- the policy, through the loader, with the line and element named -----------------------------

def test_device_model_args_refused_with_file_line_and_element(tmp_path: Path) -> None:
    text = hvm(extra="<xen:commandline>\n<xen:arg value='-monitor'/>\n<xen:arg value='stdio'/>\n"
                     "</xen:commandline>")
    error = only_error(load_one_file(tmp_path, "evil.xml", text))
    line = text.splitlines().index("<xen:arg value='-monitor'/>") + 1
    assert error == (f"{tmp_path}/desired/evil.xml:{line}: <xen:arg value='-monitor'>: device model "
                     "arguments are not allowed (allow_device_model_args = false)")


def test_device_model_args_allowed_when_the_policy_says_so(tmp_path: Path) -> None:
    text = hvm(extra="<xen:commandline><xen:arg value='-monitor'/></xen:commandline>")
    result = load_one_file(tmp_path, "evil.xml", text, SecurityPolicy(allow_device_model_args=True))
    assert set(result.domains) == {"evil"}


def test_xl_device_model_args_point_at_the_key(tmp_path: Path) -> None:
    text = 'name = "evil"\ntype = "hvm"\nmemory = 128\n\ndevice_model_args = [ "-monitor", "stdio" ]\n'
    error = only_error(load_one_file(tmp_path, "evil.cfg", text))
    assert error.startswith(f"{tmp_path}/desired/evil.cfg:5: device_model_args: device model arguments")


@pytest.mark.parametrize("bootloader", ["/tmp/evil-pygrub", "/usr/bin/../../tmp/x", "evil", "pygrub/../x"])
def test_bootloader_outside_the_allow_list_refused(tmp_path: Path, bootloader: str) -> None:
    text = (f"<domain type='xen'><name>evil</name>\n<memory unit='MiB'>128</memory>\n"
            f"<bootloader>{bootloader}</bootloader>\n<os><type>linux</type></os></domain>\n")
    error = only_error(load_one_file(tmp_path, "evil.xml", text))
    assert f"evil.xml:3: <bootloader>: bootloader {bootloader!r} is not allowed (allowed_bootloaders = [" \
        in error


@pytest.mark.parametrize("bootloader", ["/usr/bin/pygrub", "/usr/lib/xen-4.17/bin/pygrub", "pygrub", None])
def test_pygrub_allowed_by_default(tmp_path: Path, bootloader: str | None) -> None:
    """Debian's path, upstream's, a bare name (libxl runs it from its bin dir) and the implicit default."""
    element = f"<bootloader>{bootloader}</bootloader>" if bootloader else ""
    text = (f"<domain type='xen'><name>ok</name><memory>131072</memory>{element}"
            "<os><type>linux</type></os></domain>")
    assert set(load_one_file(tmp_path, "ok.xml", text).domains) == {"ok"}


def test_bootloader_args_may_not_redirect_pygrub_output(tmp_path: Path) -> None:
    text = ("<domain type='xen'><name>evil</name><memory>131072</memory>"
            "<bootloader>/usr/bin/pygrub</bootloader>"
            "<bootloader_args>-q --output-directory=/etc/cron.d</bootloader_args>"
            "<os><type>linux</type></os></domain>")
    assert "<bootloader_args>: bootloader arguments may not choose" in only_error(
        load_one_file(tmp_path, "evil.xml", text))


def test_pci_passthrough_refused_unless_allowed(tmp_path: Path) -> None:
    hostdev = ("<hostdev mode='subsystem' type='pci' managed='yes'>\n<source><address domain='0x0000' "
               "bus='0x03' slot='0x00' function='0x0'/></source>\n</hostdev>")
    error = only_error(load_one_file(tmp_path, "evil.xml", hvm(hostdev)))
    assert error.endswith(":5: <hostdev type='pci'>: PCI passthrough of 0000:03:00.0 is not allowed "
                          "(allow_pci_passthrough = false)")
    allowed = load_one_file(tmp_path, "evil.xml", hvm(hostdev), SecurityPolicy(allow_pci_passthrough=True))
    assert set(allowed.domains) == {"evil"}


def test_xl_pci_and_usb_passthrough_refused(tmp_path: Path) -> None:
    text = ('name = "evil"\ntype = "hvm"\nmemory = 128\npci = [ "0000:03:00.0" ]\n'
            'usbdev = [ "hostbus=1,hostaddr=2" ]\n')
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "evil.cfg").write_text(text)
    result = load_desired(desired)
    assert "(and 1 more policy violation)" in str(result.invalid[desired / "evil.cfg"])
    dom = load_domain_file(desired / "evil.cfg")
    messages = [e.message for e in check_policy(build_config(dom), DEFAULT_SECURITY)]
    assert messages == ["PCI passthrough of 0000:03:00.0 is not allowed (allow_pci_passthrough = false)",
                        "USB passthrough is not allowed (allow_usb_passthrough = false)"]


@pytest.mark.parametrize("script", ["/tmp/evil.sh", "../../../tmp/evil.sh", "/etc/xen/scripts-evil/x"])
def test_vif_script_outside_the_script_dir_refused(tmp_path: Path, script: str) -> None:
    nic = f"<interface type='bridge'>\n<source bridge='br0'/>\n<script path='{script}'/>\n</interface>"
    error = only_error(load_one_file(tmp_path, "evil.xml", hvm(nic)))
    assert f":7: <script path='{script}'>: hotplug script {script!r}" in error
    assert 'outside hotplug_script_dirs = ["/etc/xen/scripts"]' in error


def test_disk_script_in_xl_cfg_refused_and_bare_names_resolve_to_etc_xen_scripts(tmp_path: Path) -> None:
    text = ('name = "evil"\ntype = "pv"\nmemory = 128\nkernel = "/boot/vmlinuz"\n'
            'disk = [ "vdev=xvda, target=/img/a.img",\n  "vdev=xvdb, script=/root/evil, target=/img/b" ]\n'
            'vif = [ "bridge=br0, script=vif-bridge" ]\n')
    error = only_error(load_one_file(tmp_path, "evil.cfg", text))
    assert error.startswith(f"{tmp_path}/desired/evil.cfg:6: disk: hotplug script '/root/evil'")
    assert script_path("vif-bridge") == "/etc/xen/scripts/vif-bridge"


def test_device_model_override_refused_unless_listed(tmp_path: Path) -> None:
    error = only_error(load_one_file(tmp_path, "evil.xml", hvm("<emulator>/tmp/qemu</emulator>")))
    assert ":5: <emulator>: device model '/tmp/qemu' is not allowed (allowed_device_models = [" in error
    ok = load_one_file(tmp_path, "evil.xml", hvm("<emulator>/usr/lib/xen/bin/qemu-system-i386</emulator>"))
    assert set(ok.domains) == {"evil"}


# ---- ownership and modes ---------------------------------------------------------------------------

def test_group_or_world_writable_file_refused_and_not_read(tmp_path: Path) -> None:
    result = load_one_file(tmp_path, "a.xml", domain_xml("a"))
    path = tmp_path / "desired" / "a.xml"
    for mode, who in ((0o664, "group"), (0o646, "others")):
        path.chmod(mode)
        error = only_error(load_desired(path.parent))
        assert error == (f"{path}: refused: file writable by {who} (mode {mode:04o}); others could make the "
                         "agent run code as root (strict_modes = true)")
    path.chmod(0o644)
    assert set(load_desired(path.parent, result).domains) == {"a"}


def test_writable_directory_refuses_every_file(tmp_path: Path) -> None:
    load_one_file(tmp_path, "a.xml", domain_xml("a"))
    (tmp_path / "desired").chmod(0o777)
    assert "directory" in only_error(load_desired(tmp_path / "desired"))
    relaxed = load_desired(tmp_path / "desired", security=SecurityPolicy(strict_modes=False))
    assert set(relaxed.domains) == {"a"}


def test_a_rescan_judges_the_modes_of_files_it_does_not_read_again(tmp_path: Path) -> None:
    """A chmod changes neither mtime, size nor inode: the rescan that skips reading an unchanged
    file (``Directory.unchanged``) still refuses it once it, or its directory, is writable by
    others, with the message of a first scan, and takes it back when the mode is fixed."""
    good = load_one_file(tmp_path, "a.xml", domain_xml("a"))
    path = tmp_path / "desired" / "a.xml"
    path.chmod(0o646)
    refused = load_desired(path.parent, good)
    assert str(refused.invalid[path]) == (f"{path}: refused: file writable by others (mode 0646); others "
                                          "could make the agent run code as root (strict_modes = true)")
    assert refused.last_good[path] is good.domains["a"]
    path.chmod(0o644)
    again = load_desired(path.parent, refused)
    assert not again.invalid and again.domains["a"].content_hash == good.domains["a"].content_hash
    path.parent.chmod(0o777)
    assert f"directory {path.parent} writable by group and others" in str(
        load_desired(path.parent, again).invalid[path])
    path.parent.chmod(0o755)
    unchanged = load_desired(path.parent, again)
    assert not unchanged.invalid and unchanged.domains is again.domains  # nothing to assemble again


def test_symlinked_file_checks_the_target_directory(tmp_path: Path) -> None:
    """A ConfigMap-style ..data link into a world-writable directory is refused."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a.xml").write_text(domain_xml("a"))
    shared.chmod(0o1777)
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "a.xml").symlink_to(shared / "a.xml")
    error = only_error(load_desired(desired))
    assert f"directory {shared} writable by group and others (mode 1777)" in error


def test_file_owned_by_another_user_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(domain_xml("a"))
    if os.geteuid() == 0:
        os.chown(path, 65534, 65534)
        agent_uid = 0
    else:  # as a normal user the file is ours: an agent running as someone else must refuse it
        agent_uid = os.geteuid() + 1
    error = check_file_modes(path, agent_uid)
    assert error is not None and "not by the agent's uid" in str(error)
    assert mode_problem(os.stat(path), os.stat(path).st_uid) is None


def test_a_hostile_edit_never_reaches_the_guest(tmp_path: Path) -> None:
    """The guest of a good file survives the file turning world-writable with new content: status
    invalid, the last good version kept, nothing applied."""
    desired = tmp_path / "desired"
    desired.mkdir()
    path = desired / "a.xml"
    path.write_text(domain_xml("a", memory_mib=512, current_mib=256))
    host = SimHost(shutdown_delay=0.0)
    reconciler = Reconciler(host, Policy(owner=OWNER, prune="destroy", restart="always"), tmp_path / "state")
    good = load_desired(desired)
    reconciler.reconcile_all(good)
    before = [(d.name, d.domid, d.memory_kib) for d in host.list_domains() if d.domid]
    path.write_text(domain_xml("a", memory_mib=512, current_mib=384, kernel="/tmp/evil"))
    path.chmod(0o666)
    hostile = load_desired(desired, good)
    results = {r.name: r for r in reconciler.reconcile_all(hostile)}
    assert results["a"].applied == [] and results["a"].status == st.INVALID
    assert [(d.name, d.domid, d.memory_kib) for d in host.list_domains() if d.domid] == before
    assert hostile.last_good[path].content_hash == good.domains["a"].content_hash


def test_plan_applies_the_configured_policy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``plan --config`` refuses what the agent with that config refuses, and allows what it allows."""
    desired = tmp_path / "desired"
    desired.mkdir()
    monitor = "<xen:commandline><xen:arg value='-monitor'/></xen:commandline>"
    (desired / "q.xml").write_text(hvm(extra=monitor))
    strict, relaxed = tmp_path / "strict.toml", tmp_path / "relaxed.toml"
    strict.write_text("")
    relaxed.write_text("allow_device_model_args = true\n")
    args = ["plan", "--uri", "test:///default", "--dir", str(desired), "--state-dir", str(tmp_path / "s")]
    assert main([*args, "--config", str(strict)]) == 1
    assert "device model arguments are not allowed" in capsys.readouterr().out
    assert main([*args, "--config", str(relaxed)]) == 2  # changes pending: the guest would be created
    assert "+ evil  create" in capsys.readouterr().out


def test_agent_refuses_until_a_reload_allows(tmp_path: Path) -> None:
    """The running agent reads the policy from its settings, and a reload (SIGHUP) re-checks every
    file under the new one."""
    cfg = settings(tmp_path)
    (Path(cfg.desired_dir) / "q.xml").write_text(
        hvm(extra="<xen:commandline><xen:arg value='-monitor'/></xen:commandline>"))
    backend = open_backend(cfg.uri)
    with running(cfg, backend) as agent:
        wait_for(lambda: agent.state.ready, what="ready")
        assert names_on_host(backend) == []
        assert "allow_device_model_args = false" in agent.status_document()["invalid_files"][
            str(Path(cfg.desired_dir) / "q.xml")]
        agent._config_loader = lambda: replace(cfg, allow_device_model_args=True)
        agent.request_reload()
        wait_for(lambda: names_on_host(backend) == ["evil"], what="the allowed guest created")
