"""``_remote`` is a confinement boundary (issue 14, finding 13): the caller's argv cannot make it
reach a second host, read a settings file of the caller's choosing or fetch ``file://`` URLs, and a
desired file name the filesystem refuses is one refusal line."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from agent.cli.commands.remote import answer
from libxl.hosts.ssh import PROTOCOL


def request(**fields: object) -> dict[str, object]:
    return {"protocol": PROTOCOL, **fields}


@pytest.mark.parametrize(
    "req, problem",
    [
        (request(verb="list", uri="test:///default", argv=["--uri", "xen+ssh://h/system"]), "no second hop"),
        (request(verb="list", uri="test:///default", argv=["--ur=xen+unix:///system"]), "no second hop"),
        (request(verb="plan", uri="test:///default", argv=["--uri", "test+ssh://h/x.json"]), "no second hop"),
        (request(verb="status", argv=["--uri", "xen+ssh://other/system"]), "no second hop"),
        (request(verb="status", argv=["--url", "file:///etc/shadow"]), "expected http://HOST:PORT"),
        (request(verb="status", argv=["--url", "http://other.example:9977"]), "this host's own agent"),
        (request(verb="plan", uri="test:///default", argv=["--config", "/etc/shadow"]),
         "settings file travels in the request"),
        (request(verb="plan", uri="test:///default", files={"a" * 300 + ".xml": ""}), "File name too long"),
    ],
)
def test_remote_refuses_what_leaves_this_host(req: object, problem: str) -> None:
    reply = answer(req)
    assert (reply["exit"], reply["stdout"]) == (1, "")
    assert problem in reply["stderr"] and reply["stderr"].count("\n") == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://localhost:1/", "http://[::1]:1"])
def test_remote_status_may_ask_the_local_agent(url: str) -> None:
    reply = answer(request(verb="status", argv=["--url", url, "--json"]))
    assert reply["exit"] == 1 and "cannot read" in reply["stderr"]  # asked (nothing listens there)


def test_remote_plan_with_the_callers_ordinary_flags_still_runs(tmp_path: object) -> None:
    cfg = b'name = "a"\nmemory = 64\nkernel = "/boot/vmlinuz"\n'
    reply = answer(request(verb="plan", uri="test:///default", argv=["--prune", "destroy", "--json"],
                           files={"a.cfg": base64.b64encode(cfg).decode()}))
    assert reply["exit"] == 2, reply["stderr"]


def test_an_unreadable_desired_file_does_not_stop_a_remote_plan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli import main as cli
    from libxl.hosts import ssh

    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "good.cfg").write_text('name = "good"\nmemory = 64\nkernel = "/boot/vmlinuz"\n')
    (desired / "gone.xml").symlink_to(tmp_path / "nowhere.xml")
    sent: list[dict[str, object]] = []

    def call(opts: object, request: dict[str, object]) -> ssh.Reply:
        sent.append(request)
        return ssh.Reply(2, "    + good  create: not on the host\n", "")

    monkeypatch.setattr(ssh, "call", call)
    code = cli.main(["plan", "--uri", "xen+ssh://host/system", "--dir", str(desired)])
    out, err = capsys.readouterr()
    assert code == 1  # an unreadable file is an error, as in a local plan
    assert list(sent[0]["files"]) == ["good.cfg"]  # type: ignore[call-overload]
    assert "+ good  create" in out
    assert err == f"xenreconcile plan: {desired / 'gone.xml'}: dangling symlink\n"
