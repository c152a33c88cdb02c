"""The hostile-input matrix (issue 14): every verb, as the real console script, against each class.

Three tables drive it; a new class is one row:

- ``HOST_CLASSES``: what names or holds the host (bad URIs, host files that are long, unreadable,
  of the wrong shape, under a file, in a symlink loop, on a read-only filesystem), against every
  verb that takes ``--uri`` (list, plan, apply, status, run);
- ``DESIRED_CLASSES``: a bad desired file beside a good one (broken xl.cfg, broken XML, a symlink
  to a missing file, the all-zero uuid, ...), against validate, plan, apply, run, the converters and
  ``_remote``;
- ``OTHER_CLASSES``: single invocations (listen addresses, ``status --url`` replies and schemes,
  ``_remote`` requests).

Each case asserts the exit status, exactly one line naming the problem (stderr for a verb that
fails, the file's line on stdout for validate and plan), no ``Traceback`` anywhere, the other files
still processed, and for the read-only verbs that nothing was created.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

XR = str(Path(sys.executable).parent / "xenreconcile")
#: Generous bound for "eventually" on a shared machine; never what a test measures.
PATIENCE = 60.0
GOOD_CFG = 'name = "good"\nmemory = 64\nkernel = "/boot/vmlinuz"\n'
SETTINGS = 'xl_conf = ""\nlibxl_conf = ""\n'  # hermetic: no host xl.conf, the strict default policy
READ_ONLY_VERBS = ("list", "plan", "status", "validate")


@dataclass
class Done:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return (self.out + self.err).splitlines()


def xr(*argv: str, stdin: bytes | None = None, wrap: list[str] | None = None) -> Done:
    env = {k: v for k, v in os.environ.items() if k != "XENRECONCILE_DEBUG"}
    done = subprocess.run([*(wrap or []), XR, *argv], input=stdin, capture_output=True, timeout=PATIENCE,
                          env=env, check=False)
    result = Done(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
    assert "Traceback" not in result.out + result.err, result.err
    return result


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _unprivileged() -> list[str] | None:
    """What runs a command without root's override of file modes: nothing for a normal user; for
    root a user namespace without a uid mapping (``unshare -U``: the capabilities stay inside it, so
    a mode-000 file is EACCES); None when neither works."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-U", "true"], capture_output=True, check=False)
    return ["unshare", "-U"] if probe.returncode == 0 else None


UNPRIVILEGED = _unprivileged()


def wrapper(unprivileged: bool) -> list[str]:
    """The command prefix a class needs; skips, saying why, where it cannot be had."""
    if not unprivileged:
        return []
    if UNPRIVILEGED is None:
        pytest.skip("running as root without user namespaces: a mode-000 file stays readable")
    return UNPRIVILEGED


def _unreadable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0)


# ---- the host: URIs and simulated-host files ------------------------------------------------------

@dataclass(frozen=True)
class HostClass:
    """A hostile host: ``uri(tmp)`` builds it; ``problem`` is in the one stderr line; ``syntax``: the
    URI itself is wrong (``run`` reports a bad setting, status 2; ``status`` checks it too)."""
    name: str
    uri: Callable[[Path], str]
    problem: str
    syntax: bool = False
    unprivileged: bool = False


def _file(name: str, text: str) -> Callable[[Path], str]:
    def build(tmp: Path) -> str:
        (tmp / name).write_text(text)
        return f"test://{tmp / name}"
    return build


def _loop(tmp: Path) -> str:
    (tmp / "loop.json").symlink_to(tmp / "loop.json")
    return f"test://{tmp / 'loop.json'}"


def _under_a_file(tmp: Path) -> str:
    (tmp / "plain").write_text("")
    return f"test://{tmp / 'plain' / 'host.json'}"


_DOMAIN = {"domid": 1, "config": {"c_info": {"name": "x"}}, "state": "running", "memory_kib": 1, "started": 0,
           "shutdown_reason": None, "shutdown_due": None}  # no b_info
_RECORD = {"total_memory_kib": 1 << 24, "dom0_memory_kib": 1 << 20, "nr_cpus": 8, "next_domid": 2, "seq": 0,
           "events": [], "domains": {"1": _DOMAIN}}

HOST_CLASSES = [
    HostClass("xen-host-no-transport", lambda t: "xen://example.com/system", "without a transport", True),
    HostClass("tcp-transport", lambda t: "xen+tcp://h/", "transport 'tcp' is not offered", True),
    HostClass("unclosed-ipv6-host", lambda t: "xen+ssh://[::1/system", "Invalid IPv6 URL", True),
    HostClass("ssh-port-not-a-number", lambda t: "xen+ssh://h:99999/system", "must be a number", True),
    HostClass("unknown-driver", lambda t: "qemu:///system", "unknown driver", True),
    HostClass("host-file-name-too-long", lambda t: f"test://{t}/{'a' * 300}.json", "File name too long"),
    HostClass("host-file-not-json", _file("host.json", "not json\n"), "is unreadable"),
    HostClass("host-file-in-proc", lambda t: "test:///proc/version", "simulated host state /proc/version"),
    HostClass("host-file-wrong-shape", _file("host.json", "[1, 2]"), "must be a JSON object"),
    HostClass("host-file-wrong-record", _file("host.json", json.dumps(_RECORD)), "b_info must be an object"),
    HostClass("host-file-under-a-file", _under_a_file, "Not a directory"),
    HostClass("host-file-symlink-loop", _loop, "Too many levels of symbolic links"),
    HostClass("host-file-unreadable", lambda t: _unreadable(t / "host.json", "{}") or f"test://{t}/host.json",
              "Permission denied", unprivileged=True),
]


def _verb_argv(verb: str, uri: str, tmp: Path) -> list[str]:
    """``verb`` against ``uri`` over ``tmp``'s desired directory, state directory and settings."""
    on_dir = ["--dir", str(tmp / "desired"), "--state-dir", str(tmp / "state"),
              "--config", str(tmp / "settings.toml")]
    return {
        "list": ["list", "--uri", uri],
        "status": ["status", "--uri", uri],
        "plan": ["plan", "--uri", uri, *on_dir],
        "apply": ["apply", "--uri", uri, *on_dir],
        "run": ["run", "--uri", uri, *on_dir, "--metrics-listen", "127.0.0.1:0"],
    }[verb]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "desired").mkdir()
    (tmp_path / "desired" / "good.cfg").write_text(GOOD_CFG)
    (tmp_path / "settings.toml").write_text(SETTINGS)
    return tmp_path


#: status reads no host file: only the URI syntax classes apply to it.
_HOST_CASES = [pytest.param(case, verb, id=f"{case.name}-{verb}") for case in HOST_CLASSES
               for verb in ("list", "plan", "apply", "status", "run") if verb != "status" or case.syntax]


@pytest.mark.parametrize("case, verb", _HOST_CASES)
def test_hostile_host(case: HostClass, verb: str, workdir: Path) -> None:
    wrap = wrapper(case.unprivileged)
    uri = case.uri(workdir)
    before = tree(workdir)
    done = xr(*_verb_argv(verb, uri, workdir), wrap=wrap)
    assert done.code == (2 if verb == "run" and case.syntax else 1), done.err
    assert done.out == ""
    assert done.err.count("\n") == 1 and done.err.startswith(f"xenreconcile {verb}: "), done.err
    assert case.problem in done.err, done.err
    if verb in READ_ONLY_VERBS:
        assert tree(workdir) == before


def test_read_only_verbs_see_a_missing_host_empty_and_create_nothing(workdir: Path) -> None:
    uri = f"test://{workdir}/new/host.json"
    before = tree(workdir)
    listed = xr(*_verb_argv("list", uri, workdir))
    assert listed.code == 0 and [r.split()[0] for r in listed.out.splitlines()[1:]] == ["Domain-0"]
    planned = xr(*_verb_argv("plan", uri, workdir))
    assert planned.code == 2 and "+ good  create" in planned.out
    assert tree(workdir) == before


def _read_only_mount(path: Path) -> list[str] | None:
    """A wrapper running a command with ``path`` read-only (user and mount namespaces), or None."""
    if shutil.which("unshare") is None:
        return None
    script = f'mount --bind "{path}" "{path}" && mount -o remount,bind,ro "{path}" && exec "$@"'
    wrap = ["unshare", "-rm", "sh", "-c", script, "sh"]
    probe = subprocess.run([*wrap, "true"], capture_output=True, check=False)
    return wrap if probe.returncode == 0 else None


@pytest.mark.parametrize("verb, code, problem", [
    ("list", 0, None), ("plan", 2, None),
    ("apply", 1, "Read-only file system"), ("run", 1, "Read-only file system"),
])
def test_host_file_on_a_read_only_filesystem(verb: str, code: int, problem: str | None,
                                             workdir: Path) -> None:
    host = workdir / "host" / "host.json"
    assert xr(*_verb_argv("apply", f"test://{host}", workdir)).code == 0  # the host, with guest "good"
    (workdir / "desired" / "second.cfg").write_text(GOOD_CFG.replace("good", "second"))
    wrap = _read_only_mount(workdir)
    if wrap is None:
        pytest.skip("no user and mount namespaces here (unshare -rm) to make a read-only filesystem")
    done = xr(*_verb_argv(verb, f"test://{host}", workdir), wrap=wrap)
    assert done.code == code, done.err
    if problem is None:
        assert done.err == ""
    else:
        assert done.err.count("\n") == 1 and problem in done.err, done.err


# ---- the desired files ---------------------------------------------------------------------------

@dataclass(frozen=True)
class DesiredClass:
    """A hostile desired file ``name`` beside the good one: ``make(path)`` writes it; ``problem`` is
    in the one line naming it; ``convert`` is the exit status of the converter reading it alone
    (0: it converts, the refusal being the agent's)."""
    name: str
    file: str
    make: Callable[[Path], None]
    problem: str
    convert: int = 1
    #: False: the caller's side cannot read it, so ``_remote`` never sees it (tests/test_remote_confine.py)
    sendable: bool = True
    unprivileged: bool = False


def _text(text: str) -> Callable[[Path], None]:
    return lambda path: path.write_text(text)


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent.parent / "nowhere.xml")


DESIRED_CLASSES = [
    DesiredClass("broken-xl-cfg", "bad.cfg", _text('name = "bad"\nmemory = = 64\n'), "bad.cfg:2: syntax"),
    DesiredClass("broken-xml", "bad.xml", _text("<domain type='xen'><name>bad</name>"), "not well-formed"),
    DesiredClass("symlink-to-missing-file", "gone.xml", _dangling, "gone.xml", convert=2, sendable=False),
    DesiredClass("unreadable-file", "secret.cfg", lambda p: _unreadable(p, GOOD_CFG.replace("good", "x")),
                 "Permission denied", convert=2, sendable=False, unprivileged=True),
    DesiredClass("all-zero-uuid", "zero.cfg",
                 _text('name = "zero"\nuuid = "00000000-0000-0000-0000-000000000000"\nmemory = 64\n'
                       'kernel = "/boot/vmlinuz"\n'), "the all-zero uuid", convert=0),
    # The classes the other findings of the red-team pass fixed, added after the merge:
    DesiredClass("fifo", "fifo.xml", os.mkfifo, "not a regular file", convert=2, sendable=False),
    DesiredClass("symlink-to-root-only-file", "shadow.cfg", lambda p: p.symlink_to("/etc/shadow"),
                 "syntax error near"),
    DesiredClass("chardev-file-serial", "serial.cfg",
                 _text('name = "serial"\nmemory = 64\ntype = "hvm"\nserial = "file:/etc/cron.d/x"\n'),
                 "outside allowed_chardev_dirs", convert=0),
    DesiredClass("doctype-internal-subset", "dtd.xml",
                 _text("<!DOCTYPE domain [<!ATTLIST serial type CDATA 'file'>]><domain type='xen'>"
                       "<name>dtd</name><memory>65536</memory><os><type>xen</type><kernel>/k</kernel></os>"
                       "</domain>"), "internal subset"),
    DesiredClass("huge-vcpus", "huge.cfg",
                 _text('name = "huge"\nmemory = 64\nkernel = "/k"\nvcpus = 300000000\n'),
                 "Xen allows at most", convert=0),
    DesiredClass("password-in-error", "pw.xml",
                 _text("<domain type='xen'><name>pw</name><memory>65536</memory><os><type>hvm</type></os>"
                       "<devices><graphics type='vnc' passwd='SECRETPW' port='99999'/></devices></domain>"),
                 "passwd='***' port='99999'"),
]


def _desired(tmp: Path, case: DesiredClass) -> Path:
    bad = tmp / "desired" / case.file
    case.make(bad)
    return bad


def _naming(done: Done, file: str) -> list[str]:
    return [line for line in done.lines if file in line]


@pytest.mark.parametrize("case", DESIRED_CLASSES, ids=lambda c: c.name)
def test_hostile_desired_file_validate(case: DesiredClass, workdir: Path) -> None:
    wrap = wrapper(case.unprivileged)
    _desired(workdir, case)
    done = xr("validate", "-v", "--config", str(workdir / "settings.toml"), str(workdir / "desired"),
              wrap=wrap)
    assert done.code == 1
    assert len(_naming(done, case.file)) == 1 and case.problem in _naming(done, case.file)[0], done.out
    assert any(line.endswith(".cfg: ok: good (pv), 64 MiB, 1 vcpus, 0 disks, 0 nics") for line in done.lines)


@pytest.mark.parametrize("case", DESIRED_CLASSES, ids=lambda c: c.name)
def test_hostile_desired_file_plan_and_apply(case: DesiredClass, workdir: Path) -> None:
    wrap = wrapper(case.unprivileged)
    _desired(workdir, case)
    uri = f"test://{workdir}/host.json"
    planned = xr(*_verb_argv("plan", uri, workdir), wrap=wrap)
    assert planned.code == 1 and planned.err == ""
    assert "+ good  create" in planned.out
    assert len(_naming(planned, case.file)) == 1 and case.problem in planned.out
    applied = xr(*_verb_argv("apply", uri, workdir), wrap=wrap)
    assert applied.code == 1 and applied.err == ""
    assert len(_naming(applied, case.file)) == 1
    listed = xr("list", "--uri", uri)
    assert [row.split()[0] for row in listed.out.splitlines()[1:]] == ["Domain-0", "good"]


@pytest.mark.parametrize("case", DESIRED_CLASSES, ids=lambda c: c.name)
def test_hostile_desired_file_converters(case: DesiredClass, workdir: Path) -> None:
    wrap = wrapper(case.unprivileged)
    bad = _desired(workdir, case)
    verb = "domxml-to-native" if case.file.endswith(".xml") else "domxml-from-native"
    converted = xr(verb, "xen-xl", str(bad), wrap=wrap)
    assert converted.code == case.convert
    if case.convert == 0:  # a faithful translation, as virsh's: the refusal is the agent's
        assert converted.err == ""
        return
    assert converted.out == ""
    assert converted.err.count("\n") == 1 and converted.err.startswith(f"xenreconcile {verb}: ")


_SENDABLE = [c for c in DESIRED_CLASSES if c.sendable]


@pytest.mark.parametrize("case", _SENDABLE, ids=lambda c: c.name)
def test_hostile_desired_file_remote_plan(case: DesiredClass, workdir: Path) -> None:
    content = _desired(workdir, case).read_bytes()
    files = {name: base64.b64encode(data).decode()
             for name, data in (("good.cfg", GOOD_CFG.encode()), (case.file, content))}
    request = {"protocol": 1, "verb": "plan", "uri": f"test://{workdir}/host.json", "argv": [],
               "files": files, "dir": "./ci/", "config": str(workdir / "settings.toml")}
    done = xr("_remote", stdin=json.dumps(request).encode())
    assert done.code == 0 and done.err == ""
    reply = json.loads(done.out)
    assert reply["exit"] == 1 and "+ good  create" in reply["stdout"]
    naming = [line for line in reply["stdout"].splitlines() if case.file in line]
    assert len(naming) == 1 and f"./ci/{case.file}" in naming[0]  # the caller's names, not the temp dir


def _agent_url(agent: subprocess.Popen[bytes]) -> str:
    """The agent's metrics URL, from its JSON "agent starting" log line."""
    assert agent.stdout is not None
    for raw in agent.stdout:
        entry = json.loads(raw)
        if entry.get("event") == "agent starting":
            return str(entry["metrics"]).removesuffix("/metrics")
    raise AssertionError("the agent ended before it started serving")


def _eventually_ready(url: str) -> dict[str, object]:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "/status", timeout=PATIENCE) as resp:
            doc = json.load(resp)
        if doc["ready"]:
            return doc
        time.sleep(0.05)
    raise AssertionError("the agent never became ready")


def _hang_up_early(url: str) -> None:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=PATIENCE)
    sock.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.mark.parametrize("case", DESIRED_CLASSES, ids=lambda c: c.name)
def test_hostile_desired_file_agent(case: DesiredClass, workdir: Path) -> None:
    wrap = wrapper(case.unprivileged)
    _desired(workdir, case)
    argv = [*wrap, XR, *_verb_argv("run", f"test://{workdir}/host.json", workdir), "--log-format", "json"]
    agent = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = _agent_url(agent)
        doc = _eventually_ready(url)
        _hang_up_early(url)
        assert doc["domains"]["good"]["state"] == "in-sync"  # type: ignore[index]
        invalid = doc["invalid_files"]
        assert list(invalid) == [str(workdir / "desired" / case.file)]  # type: ignore[arg-type]
        assert case.problem in next(iter(invalid.values()))  # type: ignore[attr-defined]
    finally:
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=PATIENCE)
    assert agent.returncode == 0
    assert b"Traceback" not in err, err.decode(errors="replace")


# ---- single invocations: listen addresses, status replies and URLs, _remote requests -------------

@dataclass(frozen=True)
class OtherClass:
    """One invocation: ``argv(tmp, url)`` (``url``: a server answering the JSON ``reply``)."""
    name: str
    argv: Callable[[Path, str], list[str]]
    code: int
    problem: str
    reply: object = None


def _run_listen(listen: str) -> Callable[[Path, str], list[str]]:
    return lambda tmp, url: [*_verb_argv("run", "test:///default", tmp)[:-2], "--metrics-listen", listen]


OTHER_CLASSES = [
    OtherClass("listen-unclosed-bracket", _run_listen("[::1:80"), 2, "metrics_listen"),
    OtherClass("listen-bare-ipv6", _run_listen("::1:80"), 2, "IPv6 goes in brackets"),
    OtherClass("listen-port-too-big", _run_listen("127.0.0.1:99999"), 2, "port must be 0..65535"),
    OtherClass("status-reply-a-list", lambda t, u: ["status", "--url", u], 1,
               "not an agent's status document", reply=[1, 2]),
    OtherClass("status-reply-wrong-domains", lambda t, u: ["status", "--url", u], 1,
               "domains must be an object", reply={"domains": {"web": "running"}}),
    OtherClass("status-url-file", lambda t, u: ["status", "--url", "file:///etc/passwd"], 1,
               "expected http://HOST:PORT"),
    OtherClass("status-uri-local", lambda t, u: ["status", "--uri", "test:///default"], 1,
               "a local agent's HTTP address is --url"),
    OtherClass("validate-name-too-long", lambda t, u: ["validate", str(t / ("a" * 300 + ".xml"))], 1,
               "file name too long"),
]
REMOTE_CLASSES = [
    ("second-hop-in-argv", dict(verb="list", uri="test:///default", argv=["--uri", "xen+ssh://h/system"]),
     "no second hop"),
    ("status-url-file", dict(verb="status", argv=["--url", "file:///etc/shadow"]), "expected http://HOST:PORT"),
    ("status-url-elsewhere", dict(verb="status", argv=["--url", "http://10.0.0.1:9977"]), "own agent"),
    ("file-name-too-long", dict(verb="plan", uri="test:///default", files={"a" * 300 + ".xml": ""}),
     "File name too long"),
]


@pytest.mark.parametrize("case", OTHER_CLASSES, ids=lambda c: c.name)
def test_hostile_invocation(case: OtherClass, workdir: Path, http_json: tuple[str, list[object]]) -> None:
    url, body = http_json
    body[0] = case.reply
    before = tree(workdir)
    done = xr(*case.argv(workdir, url))
    assert done.code == case.code
    assert len(done.lines) == 1 and case.problem in done.lines[0], done.lines
    assert tree(workdir) == before


@pytest.mark.parametrize("name, request_, problem", REMOTE_CLASSES, ids=[c[0] for c in REMOTE_CLASSES])
def test_hostile_remote_request(name: str, request_: dict[str, object], problem: str) -> None:
    done = xr("_remote", stdin=json.dumps({"protocol": 1, **request_}).encode())
    assert done.code == 0 and done.err == ""
    reply = json.loads(done.out)
    assert (reply["exit"], reply["stdout"]) == (1, "")
    assert reply["stderr"].count("\n") == 1 and problem in reply["stderr"]
