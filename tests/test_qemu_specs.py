"""The strings libxl hands qemu, read the way qemu reads them (reconcilers.qemu_specs)."""

from __future__ import annotations

import pytest

from reconcilers.qemu_specs import (
    ChardevClass,
    ceph_option,
    is_loopback,
    parse_chardev,
    parse_rbd,
    path_within,
    vnc_listen_host,
)


@pytest.mark.parametrize(("spec", "cls", "path", "listens"), [
    ("pty", ChardevClass.HARMLESS, None, False),
    ("null", ChardevClass.HARMLESS, None, False),
    ("vc:80Cx24C", ChardevClass.HARMLESS, None, False),
    ("none", ChardevClass.HARMLESS, None, False),
    ("file:/var/log/x", ChardevClass.PATH, "/var/log/x", False),
    ("pipe:/run/fifo", ChardevClass.PATH, "/run/fifo", False),
    ("unix:/run/s,server,nowait", ChardevClass.SOCKET, "/run/s", True),
    ("unix:/run/s,server=on", ChardevClass.SOCKET, "/run/s", True),
    ("unix:/run/xenstored/socket", ChardevClass.SOCKET, "/run/xenstored/socket", False),
    ("/dev/ttyS0", ChardevClass.DEVICE, "/dev/ttyS0", False),
    ("/dev/parport0", ChardevClass.DEVICE, "/dev/parport0", False),
    ("tcp:0.0.0.0:4444,server,nowait", ChardevClass.NETWORK, None, True),
    ("tcp:192.0.2.1:25", ChardevClass.NETWORK, None, False),
    ("telnet::4444,server", ChardevClass.NETWORK, None, True),
    ("udp:192.0.2.1:5@:4444", ChardevClass.NETWORK, None, True),
    ("websocket:127.0.0.1:5700", ChardevClass.NETWORK, None, True),
    ("mon:stdio", ChardevClass.MONITOR, None, False),
    ("stdio", ChardevClass.UNKNOWN, None, False),
    ("chardev:x", ChardevClass.UNKNOWN, None, False),
    ("msmouse", ChardevClass.UNKNOWN, None, False),
    ("", ChardevClass.UNKNOWN, None, False),
])
def test_parse_chardev(spec: str, cls: ChardevClass, path: str | None, listens: bool) -> None:
    dev = parse_chardev(spec)
    assert (dev.cls, dev.path, dev.listens) == (cls, path, listens)


def test_path_within_resolves_dot_dot_and_needs_an_absolute_path() -> None:
    dirs = ("/var/log/xen/",)
    assert path_within("/var/log/xen/a.log", dirs)
    assert path_within("/var/log/xen", dirs)
    assert path_within("//var/log/xen/./a", dirs)
    assert not path_within("/var/log/xen/../../../etc/shadow", dirs)
    assert not path_within("/var/log/xenfoo/a", dirs)
    assert not path_within("var/log/xen/a", dirs)
    assert not path_within("/etc/x", ())


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("0.0.0.0", False), ("::", False), ("192.0.2.1", False), ("evil.example", False), ("", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(("listen", "host"), [
    ("127.0.0.1", "127.0.0.1"), ("0.0.0.0:1", "0.0.0.0"), ("[::1]:0", "::1"), ("[::1]", "::1"),
    ("evil.example:1", "evil.example"),
])
def test_vnc_listen_host(listen: str, host: str) -> None:
    assert vnc_listen_host(listen) == host


def test_parse_rbd_honours_escaped_colons() -> None:
    spec = parse_rbd(r"pool/img@snap:id=admin:mon_host=mon1\:6789\;mon2:conf=/etc/ceph/x.conf")
    assert spec.image == "pool/img@snap"
    assert spec.options == (("id", "admin"), ("mon_host", "mon1:6789\\;mon2"), ("conf", "/etc/ceph/x.conf"))
    assert parse_rbd("pool/img").options == ()
    assert [ceph_option(k) for k in ("mon-host", "mon host", "mon_host", "log-file")] == \
        ["mon_host", "mon_host", "mon_host", "log_file"]
