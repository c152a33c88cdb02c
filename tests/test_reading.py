"""Race-free reading of desired files (issue 14, findings 2, 4, 5, 7).

Each file is opened once, every component of its resolved chain judged on its own descriptor, only
a regular file read, and at most the size limit. The race test swaps symlinks, directories and a
file between trusted and foreign-writable targets while the loader runs 10,000 times: a foreign
file must never be accepted, and no exception may escape.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog
from agent_helpers import names_on_host, running, settings, wait_for
from reconcile_fixtures import domain_xml

from agent import log as agentlog
from agent.cli.main import main
from libxl.domain.formats.load import read_desired_bytes
from libxl.domain.formats.readfile import MAX_SYMLINKS, read_regular
from libxl.errors import ConfigError
from libxl.frontends.hostconf import XL_CONF_KEYS, read_conf
from libxl.hosts.uri import open_backend
from reconcilers.desired import load_desired
from reconcilers.security import check_file_modes
from reconcilers.securitypolicy import SecurityPolicy

FOREIGN = 65534  # nobody
#: A hang is a failure, not a slow pass: each possibly blocking call runs under this watchdog.
WATCHDOG_S = 30


def only_error(result) -> str:
    assert not result.domains
    assert len(result.invalid) == 1
    return str(next(iter(result.invalid.values())))


def in_thread(fn):
    """``fn()``'s value, or a failure if it never returns (a FIFO opened for reading blocks)."""
    out: list = []

    def call() -> None:
        try:
            out.append(fn())
        except Exception as err:  # noqa: BLE001 (re-raised in the caller's thread)
            out.append(err)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(WATCHDOG_S)
    assert not worker.is_alive(), "the reader hangs"
    if isinstance(out[0], Exception):
        raise out[0]
    return out[0]


def tree(tmp_path: Path) -> Path:
    desired = tmp_path / "desired"
    desired.mkdir()
    return desired


def guest_dir(path: Path, name: str, *, mode: int = 0o755, file_mode: int = 0o644, uid: int = 0,
              files: tuple[str, ...] = ("a.xml",)) -> Path:
    path.mkdir()
    for file in files:
        (path / file).write_text(domain_xml(f"{name}-{Path(file).stem}"))
        (path / file).chmod(file_mode)
        os.chown(path / file, uid, uid)
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def relink(link: Path, target: str) -> None:
    """Point ``link`` at ``target`` atomically (a new link renamed over the old one)."""
    tmp = link.with_name(f".{link.name}.{threading.get_ident()}")
    os.symlink(target, tmp)
    os.replace(tmp, link)


# ---- finding 2: every component of the chain, judged on its descriptor ---------------------------

def test_an_intermediate_directory_of_a_symlink_chain_is_checked(tmp_path: Path) -> None:
    """a.xml -> ../data/sub/a.xml where data is 0777: the file and its own directory are fine,
    but anyone could swap ``sub``."""
    desired = tree(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    guest_dir(data / "sub", "x")
    data.chmod(0o777)
    (desired / "a.xml").symlink_to("../data/sub/a.xml")
    error = only_error(load_desired(desired))
    assert error == (f"{desired / 'a.xml'}: refused: directory {data} writable by group and others "
                     "(mode 0777); others could make the agent run code as root (strict_modes = true)")
    assert set(load_desired(desired, security=SecurityPolicy(strict_modes=False)).domains) == {"x-a"}


def test_a_symlinked_directory_is_judged_where_it_resolves(tmp_path: Path) -> None:
    """``..data -> ..2024`` (a ConfigMap): the directory the link resolves to is judged, and so is
    every directory on an absolute link target's way from /."""
    desired = tree(tmp_path)
    guest_dir(tmp_path / "v1", "good")
    guest_dir(tmp_path / "v2", "bad", uid=FOREIGN)
    (tmp_path / "..data").symlink_to("v1")
    (desired / "a.xml").symlink_to(tmp_path / "..data" / "a.xml")
    assert set(load_desired(desired).domains) == {"good-a"}
    relink(tmp_path / "..data", "v2")
    assert f"directory {tmp_path / 'v2'} owned by uid {FOREIGN}" in only_error(load_desired(desired))


def test_a_symlink_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    desired = tree(tmp_path)
    guest_dir(tmp_path / "v1", "good")
    (desired / "a.xml").symlink_to("../v1/a.xml")
    os.lchown(desired / "a.xml", FOREIGN, FOREIGN)
    assert f"symlink {desired / 'a.xml'} owned by uid {FOREIGN}" in only_error(load_desired(desired))


def test_a_sticky_directory_may_be_passed_through_but_not_hold_the_file(tmp_path: Path) -> None:
    """/tmp (1777) on the way is fine: nobody else can rename what root made there."""
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    desired = tree(sticky)
    sticky.chmod(0o1777)
    (desired / "a.xml").write_text(domain_xml("a"))
    assert set(load_desired(desired).domains) == {"a"}
    (sticky / "b.xml").write_text(domain_xml("b"))
    (desired / "b.xml").symlink_to("../b.xml")
    assert "directory " + str(sticky) + " writable by group and others (mode 1777)" in \
        str(load_desired(desired).invalid[desired / "b.xml"])


def test_symlink_loops_and_long_chains_are_one_error(tmp_path: Path) -> None:
    desired = tree(tmp_path)
    (desired / "a.xml").symlink_to("b.xml")
    (desired / "b.xml").symlink_to("a.xml")
    result = load_desired(desired)
    assert str(result.invalid[desired / "a.xml"]).endswith("a.xml: too many levels of symbolic links")
    assert MAX_SYMLINKS == 40


def test_race_swaps_never_let_a_foreign_writable_file_through(tmp_path: Path) -> None:
    """A thread swaps, as fast as it can: the ``data`` symlink between a trusted directory, a 0777
    one and one owned by another user; ``b.xml`` between a regular file and a symlink into the 0777
    directory; and the directory ``swap`` with a foreign-owned one by two renames. The loader
    runs 10,000 times meanwhile: never a bad guest, never an exception."""
    desired = tree(tmp_path)
    guest_dir(tmp_path / "good", "good", files=("a.xml", "b.xml", "c.xml"))
    guest_dir(tmp_path / "open", "evil", mode=0o777, file_mode=0o666, files=("a.xml", "b.xml"))
    guest_dir(tmp_path / "foreign", "evil", uid=FOREIGN, files=("a.xml",))
    guest_dir(tmp_path / "swap", "good", files=("c.xml",))
    guest_dir(tmp_path / "swap.bad", "evil", uid=FOREIGN, mode=0o777, file_mode=0o666, files=("c.xml",))
    (tmp_path / "data").symlink_to("good")
    (desired / "a.xml").symlink_to("../data/a.xml")
    (desired / "b.xml").write_text(domain_xml("good-b"))
    (desired / "c.xml").symlink_to("../swap/c.xml")
    relaxed = load_desired(desired, security=SecurityPolicy(strict_modes=False))
    assert set(relaxed.domains) == {"good-a", "good-b", "good-c"}

    stop = threading.Event()
    swaps = [0]

    def swapper() -> None:
        targets = ("good", "open", "foreign")
        while not stop.is_set():
            n = swaps[0]
            relink(tmp_path / "data", targets[n % 3])
            if n % 2:
                relink(desired / "b.xml", "../open/b.xml")
            else:
                tmp = desired / ".b.tmp"
                tmp.write_text(domain_xml("good-b"))
                os.replace(tmp, desired / "b.xml")
            os.rename(tmp_path / "swap", tmp_path / "swap.hold")
            os.rename(tmp_path / "swap.bad", tmp_path / "swap")
            os.rename(tmp_path / "swap.hold", tmp_path / "swap.bad")
            swaps[0] = n + 1

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    accepted: set[str] = set()
    previous = None
    try:
        for n in range(10_000):
            if previous is None or n % 2:
                previous = result = load_desired(desired, previous)
            else:  # a rescan against a set read before the last swap
                result = load_desired(desired, previous)
            names = set(result.domains) | {d.name for d in result.last_good.values()}
            assert not {n for n in names if n.startswith("evil")}, names
            accepted |= names
    finally:
        stop.set()
        thread.join()
    assert swaps[0] > 100, "the swapper must have raced the loader"
    assert {"good-a", "good-b", "good-c"} <= accepted


# ---- findings 4 and 5: FIFOs, devices and huge files ---------------------------------------------

def test_a_fifo_is_refused_unopened_by_the_loader_validate_and_plan(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    desired = tree(tmp_path)
    os.mkfifo(desired / "x.xml")
    (desired / "a.xml").write_text(domain_xml("a"))
    result = in_thread(lambda: load_desired(desired))
    assert set(result.domains) == {"a"}
    line = f"{desired / 'x.xml'}: not a regular file (a FIFO): refused unopened"
    assert str(result.invalid[desired / "x.xml"]) == line
    assert in_thread(lambda: main(["validate", str(desired / "x.xml")])) == 1
    assert capsys.readouterr().out == line + "\n"
    code = in_thread(lambda: main(["plan", "--uri", "test:///default", "--dir", str(desired),
                                   "--state-dir", str(tmp_path / "state")]))
    assert code == 1 and "not a regular file (a FIFO)" in capsys.readouterr().out


@pytest.mark.parametrize("device", ["/dev/kmsg", "/dev/null"])
def test_a_symlink_to_a_device_is_refused(tmp_path: Path, device: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    desired = tree(tmp_path)
    (desired / "x.xml").symlink_to(device)
    assert "not a regular file (a character device)" in only_error(in_thread(lambda: load_desired(desired)))
    assert in_thread(lambda: main(["validate", str(desired)])) == 1
    assert "(a character device): refused unopened" in capsys.readouterr().out


def test_a_sparse_2gb_file_is_refused_from_its_size_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    desired = tree(tmp_path)
    big = desired / "big.xml"
    with open(big, "wb") as handle:
        handle.truncate(2 * 1024**3)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    error = only_error(load_desired(desired))
    assert error == f"{big}: file is 2147483648 bytes, over the 1048576 byte limit"
    assert main(["validate", str(big)]) == 1
    assert capsys.readouterr().out == error + "\n"
    assert reads == [], "nothing is read from a file whose size is over the limit"


def test_a_file_growing_while_read_stops_at_the_limit(tmp_path: Path) -> None:
    """The size check is fstat's; a file growing after it is still read only to limit + 1 bytes."""
    path = tmp_path / "g.xml"
    path.write_bytes(b"x" * 100)
    assert read_regular(str(path), 100) == b"x" * 100
    with pytest.raises(ConfigError, match="over the 99 byte limit"):
        read_regular(str(path), 99)


# ---- finding 7: a symlink / regular file swap is an error at worst, never an exception -------------

def test_swapping_a_file_and_a_symlink_never_raises(tmp_path: Path) -> None:
    desired = tree(tmp_path)
    guest_dir(tmp_path / "good", "good")
    path = desired / "a.xml"
    path.write_text(domain_xml("good-a"))
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            relink(path, "../good/a.xml")
            tmp = desired / ".a.tmp"
            tmp.write_text(domain_xml("good-a"))
            os.replace(tmp, path)

    thread = threading.Thread(target=swapper, daemon=True)
    thread.start()
    try:
        for _ in range(2000):
            error = check_file_modes(path, 0)
            assert error is None or isinstance(error, ConfigError)
            try:
                read_desired_bytes(path)
            except ConfigError as err:  # swapped between judging and opening: reported, not raised
                assert str(err).startswith(f"{path}: ")
            result = load_desired(desired)
            assert set(result.domains) == {"good-a"} or set(result.invalid) == {path}
    finally:
        stop.set()
        thread.join()


def test_the_agent_is_not_wedged_by_a_fifo_or_a_swap(tmp_path: Path) -> None:
    """Finding 4 and 7 through the agent: a FIFO named x.xml, then a file swapped between a symlink
    and a regular file, while the agent runs: it gets ready, creates the good guest, reports the
    FIFO in /status, and stops cleanly (SIGTERM's path)."""
    cfg = settings(tmp_path)
    desired = Path(cfg.desired_dir)
    os.mkfifo(desired / "x.xml")
    (desired / "a.xml").write_text(domain_xml("a"))
    guest_dir(tmp_path / "good", "good")
    backend = open_backend(cfg.uri)
    log = io.StringIO()  # the agent's log, in a stream this test owns (not an earlier test's capture)
    agentlog.configure("json", stream=log)
    try:
        with running(cfg, backend) as agent:
            _fifo_and_swaps(agent, backend, desired)
    finally:
        structlog.reset_defaults()
    assert "Traceback" not in log.getvalue() and "not a regular file (a FIFO)" in log.getvalue()


def _fifo_and_swaps(agent: Any, backend: Any, desired: Path) -> None:
    """The running agent: ready beside the FIFO, which /status lists; the swapped file's guest made."""
    wait_for(lambda: agent.state.ready, what="ready", timeout=WATCHDOG_S)
    assert names_on_host(backend) == ["a"]
    invalid = agent.status_document()["invalid_files"]
    assert invalid == {str(desired / "x.xml"): f"{desired / 'x.xml'}: not a regular file (a FIFO): "
                                                "refused unopened"}
    for _ in range(50):
        relink(desired / "b.xml", "../good/a.xml")
        (desired / ".b.tmp").write_text(domain_xml("good-a"))
        os.replace(desired / ".b.tmp", desired / "b.xml")
    wait_for(lambda: names_on_host(backend) == ["a", "good-a"], what="the swapped file's guest",
             timeout=WATCHDOG_S)


def test_the_hosts_xl_conf_is_read_the_same_way(tmp_path: Path) -> None:
    """/etc/xen/xl.conf is read by every scan: a FIFO there is one error, not a wedged agent."""
    conf = tmp_path / "xl.conf"
    os.mkfifo(conf)
    with pytest.raises(ConfigError, match=r"xl\.conf: not a regular file \(a FIFO\): refused unopened"):
        in_thread(lambda: read_conf(conf, XL_CONF_KEYS))
    assert read_conf(tmp_path / "absent.conf", XL_CONF_KEYS) == {}
