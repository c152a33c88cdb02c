"""The xen+ssh:// protocol without ssh: the ssh command line, flag forwarding, the remote verb."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from agent.cli.commands.remote import answer
from agent.cli.main import build_parser, verb_parser
from agent.cli.remote import forwarded_flags
from libxl.errors import BackendUnavailable
from libxl.hosts.ssh import PROTOCOL, parse_reply, ssh_argv
from libxl.hosts.uri import SSHOptions, parse_uri
from tests.conftest import REPO_ROOT

PV_CFG = (REPO_ROOT / "examples" / "desired" / "pv-xl.cfg").read_bytes()


def test_ssh_argv_maps_libvirts_parameters() -> None:
    opts = parse_uri("xen+ssh://ops@h:2222/system?keyfile=/k/id&no_verify=1&known_hosts=/kh"
                     "&command=/opt/x r/xenreconcile").ssh
    assert opts is not None
    assert ssh_argv(opts) == [
        "ssh", "-T", "-o", "BatchMode=yes", "-p", "2222", "-l", "ops", "-i", "/k/id",
        "-o", "UserKnownHostsFile=/kh", "-o", "StrictHostKeyChecking=no", "--", "h",
        "'/opt/x r/xenreconcile' _remote"]
    assert ssh_argv(SSHOptions(host="h")) == ["ssh", "-T", "-o", "BatchMode=yes", "--", "h",
                                              "xenreconcile _remote"]


def test_only_the_flags_the_user_set_are_forwarded() -> None:
    parser = build_parser()
    args = parser.parse_args(["plan", "--uri", "xen+ssh://h/system", "--dir", "d", "--prune", "destroy",
                              "--adopt", "--owner", "ci", "--json", "--config", "/local.toml"])
    assert forwarded_flags(verb_parser(parser, "plan"), args) == [
        "--prune", "destroy", "--adopt", "--owner", "ci"]  # uri, dir, json and the local config stay here


def request(**fields: object) -> dict[str, object]:
    return {"protocol": PROTOCOL, **fields}


@pytest.mark.parametrize(
    "req, problem",
    [
        ({"protocol": 99, "verb": "list"}, "protocol 99 not spoken here"),
        (None, "protocol None"),
        (request(verb="apply"), "verb 'apply' is not served remotely"),
        (request(verb="list", uri="xen+ssh://other/system"), "no second hop"),
        (request(verb="list", uri="bogus:///"), "unknown driver 'bogus'"),
        (request(verb="plan", uri="test:///default", files={"../evil.xml": ""}), "refusing desired file"),
        (request(verb="plan", uri="test:///default", files={"a.xml": "not base64!"}), "is not base64"),
        (request(verb="list", uri="test:///default", argv="--json"), "argv must be a list"),
    ],
)
def test_remote_verb_refusals_come_back_in_the_envelope(req: object, problem: str) -> None:
    reply = answer(req)
    assert (reply["protocol"], reply["exit"], reply["stdout"]) == (PROTOCOL, 1, "")
    assert problem in reply["stderr"]


def test_remote_plan_runs_on_the_sent_files_and_names_the_callers_dir(tmp_path: Path) -> None:
    reply = answer(request(verb="plan", uri=f"test://{tmp_path}/host.json", argv=["--json"],
                           files={"pv-xl.cfg": base64.b64encode(PV_CFG).decode()}, dir="./hosts/host-a/",
                           config=str(tmp_path / "absent.toml")))
    assert reply["exit"] == 1 and "cannot read" in reply["stderr"]  # a named config must exist
    toml = tmp_path / "agent.toml"
    toml.write_text(f'state_dir = "{tmp_path / "state"}"\nxl_conf = ""\n')
    reply = answer(request(verb="plan", uri=f"test://{tmp_path}/host.json", argv=["--json"],
                           files={"pv-xl.cfg": base64.b64encode(PV_CFG).decode()}, dir="./hosts/host-a/",
                           config=str(toml)))
    assert reply["exit"] == 2, reply["stderr"]
    assert '"file": "./hosts/host-a/pv-xl.cfg"' in reply["stdout"]


def test_the_remote_agents_uri_stands_for_xen_system(tmp_path: Path) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text(f'uri = "test://{tmp_path}/host.json?memory_mib=2048"\n')
    reply = answer(request(verb="list", uri="xen:///system", argv=["--json"], config=str(toml)))
    assert reply["exit"] == 0, reply["stderr"]
    assert '"name": "Domain-0"' in reply["stdout"]


@pytest.mark.parametrize("stdout", [b"Welcome to host-a!\n", b'{"protocol": 0}', b""])
def test_anything_but_the_envelope_is_an_unexpected_reply(stdout: bytes) -> None:
    with pytest.raises(BackendUnavailable, match=r"^unexpected reply from root@h \(exit 0\)"):
        parse_reply(SSHOptions(host="h", user="root"), 0, stdout, "")
