"""One error path for every verb (issue 14, findings 8 and 13), in-process.

Each failure class is one line ``xenreconcile VERB: problem`` on stderr with the verb's documented
exit status and no traceback; read-only verbs create nothing. The subprocess matrix over every verb
is tests/test_hostile_matrix.py.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli import main as cli
from agent.cli.errors import one_line
from libxl.errors import BackendError, ConfigError
from libxl.hosts.sim import SimHost
from libxl.hosts.uri import parse_uri


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


_URI_PIECES = st.sampled_from(["xen", "test", "+ssh", "+unix", "+tcp", "://", ":///", "/", "[", "]", "::1",
                               "@", ":", "?", "&", "=", "%", "#", "keyfile", "socket", "h", "system",
                               "default", ".json", "\x00", " "])


@settings(max_examples=3000, deadline=None, derandomize=True)
@given(st.lists(_URI_PIECES, max_size=14).map("".join))
def test_parse_uri_raises_nothing_but_config_error(uri: str) -> None:
    with contextlib.suppress(ConfigError):  # a ValueError, TypeError... would fail the test
        parse_uri(uri)


@pytest.mark.parametrize("uri", ["xen://example.com/system", "xen+tcp://h/", "xen+ssh://[::1/system",
                                 "xen+ssh://h:99999/system", "bogus"])
@pytest.mark.parametrize("verb", [["list"], ["status"], ["plan", "--dir", "."]])
def test_bad_uri_is_one_line_for_every_verb(verb: list[str], uri: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run([*verb, "--uri", uri], capsys)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1 and err.startswith(f"xenreconcile {verb[0]}: URI ")


def test_run_with_a_bad_uri_is_a_bad_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["run", "--uri", "xen+ssh://[::1/system", "--dir", str(tmp_path),
                         "--state-dir", str(tmp_path / "st")], capsys)
    assert code == 2 and err.count("\n") == 1 and "Invalid IPv6 URL" in err


def test_status_never_falls_back_to_the_default_url(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["status", "--uri", "test:///default"], capsys)
    assert code == 1
    assert "127.0.0.1" not in err and "--url" in err


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://", "http://h:port/"])
def test_status_url_must_be_http(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["status", "--url", url], capsys)
    assert code == 1 and err.count("\n") == 1 and "--url" in err


@pytest.mark.parametrize("doc", [[1, 2], "text", {"domains": 5}, {"domains": {"a": 5}},
                                 {"domains": {"a": {"state": 3}}}, {"invalid_files": []}])
def test_status_reply_of_the_wrong_shape_is_one_line(doc: object, http_json: tuple[str, list[object]],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    url, body = http_json
    body[0] = doc
    code, out, err = _run(["status", "--url", url], capsys)
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "is not an agent's status document" in err


def test_status_reply_of_the_right_shape_prints(http_json: tuple[str, list[object]],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    url, body = http_json
    body[0] = {"ready": True, "domains": {"web": {"state": "in-sync", "file": "web.xml"}}}
    code, out, _ = _run(["status", "--url", url], capsys)
    assert code == 0 and out.split() == ["web", "in-sync", "-", "web.xml"]


def test_read_only_verbs_create_no_simulated_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = tmp_path / "new" / "host.json"
    desired = tmp_path / "desired"
    desired.mkdir()
    (desired / "a.cfg").write_text('name = "a"\nmemory = 64\nkernel = "/boot/vmlinuz"\n')
    code, out, _ = _run(["list", "--uri", f"test://{host}"], capsys)
    assert code == 0 and out.splitlines()[1].split()[0] == "Domain-0"
    code, out, _ = _run(["plan", "--uri", f"test://{host}", "--dir", str(desired),
                         "--state-dir", str(tmp_path / "state")], capsys)
    assert code == 2 and "1 to create" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["desired"]


def test_apply_still_creates_the_simulated_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    host = tmp_path / "new" / "host.json"
    desired = tmp_path / "desired"
    desired.mkdir()
    code, _, _ = _run(["apply", "--uri", f"test://{host}", "--dir", str(desired), "--allow-empty",
                       "--state-dir", str(tmp_path / "state")], capsys)
    assert code == 0 and host.exists()


@pytest.mark.parametrize("text, problem", [
    ("[]", "the file must be a JSON object"),
    ('{"domains": 5}', "total_memory_kib is missing or not an integer"),
    ("not json", "is unreadable"),
])
def test_simulated_host_file_of_the_wrong_shape(text: str, problem: str, tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(text)
    for read_only in (True, False):
        with pytest.raises(BackendError, match=problem):
            SimHost(path=path, read_only=read_only).list_domains()


def test_simulated_host_domain_record_of_the_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    SimHost(path=path)
    state = json.loads(path.read_text())
    state["domains"] = {"1": {"domid": 1, "config": {"c_info": {}}, "state": "running", "memory_kib": 1,
                              "started": 0, "shutdown_reason": None, "shutdown_due": None}}
    path.write_text(json.dumps(state))
    with pytest.raises(BackendError, match=r"domains\['1'\].config.b_info must be an object"):
        SimHost(path=path, read_only=True).list_domains()


def test_simulated_host_os_errors_are_backend_errors(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BackendError, match="Not a directory"):
        SimHost(path=blocker / "host.json")
    with pytest.raises(BackendError, match="File name too long"):
        SimHost(path=tmp_path / ("h" * 300 + ".json"))


def test_validate_names_each_os_error_and_checks_the_rest(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.cfg"
    good.write_text('name = "good"\nmemory = 64\nkernel = "/boot/vmlinuz"\n')
    (tmp_path / "loop.cfg").symlink_to(tmp_path / "loop.cfg")
    (tmp_path / "plain").write_text("")
    paths = [str(tmp_path / ("a" * 300 + ".cfg")), str(tmp_path / "loop.cfg"),
             str(tmp_path / "plain" / "x.cfg"), str(good)]
    code, out, err = _run(["validate", "-v", "--no-policy", *paths], capsys)
    assert code == 1
    lines = out.splitlines()
    assert [line.rsplit(": ", 1)[1] for line in lines[:3]] == [
        "file name too long", "too many levels of symbolic links", "not a directory"]
    assert lines[3].startswith(f"{good}: ok: good")
    assert "Traceback" not in err


def test_an_unexpected_exception_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from agent.cli.commands import hosts

    def broken(uri: str) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(hosts, "open_backend", broken)
    code, _, err = _run(["list"], capsys)
    assert code == 1
    assert err == ("xenreconcile list: internal error (KeyError: 'surprise'); "
                   "set XENRECONCILE_DEBUG=1 for the traceback\n")


def test_one_line_escapes_control_characters_and_bounds_the_length() -> None:
    assert one_line("a\nb\x1b[31mc\\x") == "a\\nb\\x1b[31mc\\x"
    assert len(one_line("x" * 5000)) == 1000


@pytest.mark.parametrize("listen", ["[::1:80", "::1:80", "[::1]80", "[zz]:80", "a b:80", "1.2.3.4:99999",
                                    "host:+80", ":80"])
def test_metrics_listen_is_parsed_strictly(listen: str, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(["run", "--metrics-listen", listen, "--uri", "test:///default",
                         "--dir", str(tmp_path), "--state-dir", str(tmp_path / "st")], capsys)
    assert code == 2
    assert err.count("\n") == 1 and "metrics_listen" in err
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize("name, text", [
    ("a.cfg", 'name = "a"\nuuid = "00000000-0000-0000-0000-000000000000"\nmemory = 64\nkernel = "/k"\n'),
    ("b.xml", "<domain type='xen'><name>b</name><uuid>00000000000000000000000000000000</uuid>"
              "<memory>65536</memory><os><type>linux</type><kernel>/k</kernel></os></domain>"),
])
def test_the_all_zero_uuid_is_refused(name: str, text: str, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / name).write_text(text)
    code, out, _ = _run(["validate", "--no-policy", str(tmp_path / name)], capsys)
    assert code == 1
    where = {"a.cfg": "2: uuid", "b.xml": "1: <uuid>"}[name]  # the line, in each format's spelling
    assert out == (f"{tmp_path / name}:{where}: the all-zero uuid means 'no uuid' to libxl, which would "
                   "give the guest a new random one on every create: set a real uuid or leave it out\n")


def test_converter_stdin_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    xr = str(Path(sys.executable).parent / "xenreconcile")
    done = subprocess.run([xr, "domxml-to-native", "xen-xl", "-"], input=b"\xff\xfe<domain/>",
                          capture_output=True, check=False)
    assert done.returncode == 2
    assert done.stderr.decode() == ("xenreconcile domxml-to-native: cannot read <stdin>: 'utf-8' codec can't "
                                    "decode byte 0xff in position 0: invalid start byte\n")


def test_an_unwritable_op_log_does_not_undo_a_change(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("")
    host = SimHost(op_log=str(tmp_path / "plain" / "ops.log"))
    domid = host.create({"c_info": {"type": "pv", "name": "a"},
                         "b_info": {"max_memkb": 65536, "kernel": "/boot/vmlinuz"}})
    assert [d.name for d in host.list_domains() if d.domid == domid] == ["a"]


def test_an_unexpected_exception_in_a_resync_does_not_end_the_agent(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from libxl.hosts.uri import open_backend
    from reconcilers.apply import Reconciler
    from tests.agent_helpers import running, settings, wait_for
    from tests.reconcile_fixtures import domain_xml

    cfg = settings(tmp_path)
    (Path(cfg.desired_dir) / "web.xml").write_text(domain_xml("web", memory_mib=64))
    calls: list[int] = []
    real = Reconciler.reconcile_all

    def first_call_breaks(self: Reconciler, desired: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("a bug met by one resync")
        return real(self, desired)  # type: ignore[arg-type]

    monkeypatch.setattr(Reconciler, "reconcile_all", first_call_breaks)
    with running(cfg, open_backend(cfg.uri)) as c:
        wait_for(lambda: c.state.ready, what="ready after the failed first resync")
        assert len(calls) >= 2
        assert c.metrics.registry.get_sample_value("xenreconcile_full_syncs_total", {"result": "error"}) >= 1


@pytest.mark.parametrize("argv, status", [
    (["plan"], 1), (["plan", "--dir", ".", "--bogus"], 1),  # plan's 2 means "changes": never a usage error
    (["list", "--bogus"], 2), (["run", "--workers", "x"], 2), (["validate"], 2), (["nosuchverb"], 2),
])
def test_usage_errors_are_one_line(argv: list[str], status: int, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == status
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xenreconcile") and err.endswith("--help)\n")
