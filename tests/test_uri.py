"""Connection URIs: what opens which host, and the sentences for what is refused."""

from __future__ import annotations

import os
import sys

import pytest

from libxl.errors import BackendUnavailable, ConfigError
from libxl.hosts.sim import SimHost
from libxl.hosts.uri import DEFAULT_AGENT_SOCKET, SSHOptions, open_backend, parse_uri


@pytest.mark.parametrize(
    "uri, driver, path, params",
    [
        ("test:///default", "test", None, {}),
        ("TEST:///default", "test", None, {}),
        ("test:///var/lib/sim/host.json", "test", "/var/lib/sim/host.json", {}),
        ("test:///default?fail_rate=0.2&latency=0.01", "test", None, {"fail_rate": 0.2, "latency": 0.01}),
        ("test:///default?latency=0.01-0.05&seed=7", "test", None, {"latency": (0.01, 0.05), "seed": 7}),
        (
            "test:///default?memory_mib=4096&dom0_memory_mib=512&cpus=2&shutdown_delay=0",
            "test",
            None,
            {
                "total_memory_kib": 4096 * 1024,
                "dom0_memory_kib": 512 * 1024,
                "nr_cpus": 2,
                "shutdown_delay": 0.0,
            },
        ),
        ("xen:///system", "xen", None, {}),
        ("xen:///", "xen", None, {}),
        ("test:///default?xen_cmdline=dom0_mem%3D1024M", "test", None, {"xen_cmdline": "dom0_mem=1024M"}),
    ],
)
def test_accepted_uris(uri, driver, path, params):
    parsed = parse_uri(uri)
    assert (parsed.driver, parsed.path, parsed.params) == (driver, path, params)
    assert parsed.transport is None and not parsed.is_remote


@pytest.mark.parametrize(
    "uri, ssh, local",
    [
        ("xen+ssh://root@host/system", SSHOptions(host="host", user="root"), "xen:///system"),
        ("XEN+SSH://host.example.org/", SSHOptions(host="host.example.org"), "xen:///system"),
        (
            "xen+ssh://ops@10.0.0.5:2222/system?keyfile=/k/id&no_verify=1&command=/opt/xr/bin/xenreconcile",
            SSHOptions(host="10.0.0.5", user="ops", port=2222, keyfile="/k/id", no_verify=True,
                       command="/opt/xr/bin/xenreconcile"),
            "xen:///system",
        ),
        ("xen+ssh://[::1]:22/system?known_hosts=/tmp/kh",
         SSHOptions(host="::1", port=22, known_hosts="/tmp/kh"), "xen:///system"),
        ("test+ssh://root@127.0.0.1:2022/tmp/x/host.json?seed=3&keyfile=/k",
         SSHOptions(host="127.0.0.1", user="root", port=2022, keyfile="/k"), "test:///tmp/x/host.json?seed=3"),
        ("test+ssh://h/default", SSHOptions(host="h"), "test:///default"),
    ],
)
def test_ssh_uris(uri, ssh, local):
    parsed = parse_uri(uri)
    assert parsed.transport == "ssh" and parsed.is_remote
    assert parsed.ssh == ssh
    assert parsed.local_uri() == local
    assert parse_uri(parsed.local_uri()).transport is None  # what the remote side opens is local there


@pytest.mark.parametrize(
    "uri, socket",
    [("xen+unix:///system", DEFAULT_AGENT_SOCKET), ("xen+unix:///?socket=/tmp/a.sock", "/tmp/a.sock")],
)
def test_unix_uris(uri, socket):
    parsed = parse_uri(uri)
    assert (parsed.transport, parsed.socket, parsed.driver) == ("unix", socket, "xen")


def test_remote_uris_have_no_local_backend():
    with pytest.raises(ConfigError, match="read-only verbs .*host agent's job"):
        open_backend("xen+ssh://root@host/system")


@pytest.mark.parametrize(
    "uri, names",
    [
        ("xen://host/system", ["'host'", "xen+ssh://"]),
        ("xen+tcp://host/system", ["'tcp'", "xen+ssh://"]),
        ("xen+tls://host/system", ["'tls'", "xen+ssh://"]),
        ("xen+bogus:///system", ["'bogus'", "ssh or unix"]),
        ("xen+ssh:///system", ["needs a host"]),
        ("xen+ssh://host/session", ["'/session'"]),
        ("xen+ssh://host:99999/system", ["port", "host:99999"]),
        ("xen+ssh://host:0/system", ["port 0"]),
        ("xen+ssh://-oProxyCommand=x/system", ["host", "-oProxyCommand=x"]),
        ("xen+ssh://user:secret@host/system", ["host"]),
        ("xen+ssh://host/system?bogus=1", ["'bogus'", "keyfile", "no_verify"]),
        ("xen+ssh://host/system?no_verify=yes", ["no_verify", "0 or 1"]),
        ("xen+ssh://host/system?seed=1", ["'seed'"]),
        ("xen+ssh://host/system?keyfile=", ["keyfile", "private key"]),
        ("test+ssh://host/dir/", ["'/dir/'"]),
        ("xen+unix://host/system", ["xen+unix:///system"]),
        ("test+unix:///default", ["xen+unix:///system"]),
        ("xen+unix:///system?socket=agent.sock", ["socket", "absolute"]),
        ("xen+unix:///session", ["'/session'"]),
        ("qemu:///system", ["'qemu'"]),
        ("/var/lib/host.json", ["no scheme"]),
        ("xen:///session", ["'/session'"]),
        ("xen:///system?fail_rate=1", ["no parameters"]),
        ("test://host/default", ["'host'", "local"]),
        ("test:///dir/", ["'/dir/'"]),
        ("test:///default?bogus=1", ["'bogus'", "fail_rate"]),
        ("test:///default?fail_rate=1.5", ["fail_rate", "probability"]),
        ("test:///default?latency=0.5-0.1", ["latency"]),
        ("test:///default?cpus=0", ["cpus"]),
        ("test:///default?seed=x", ["seed", "integer"]),
        ("test:///default#frag", ["'frag'"]),
    ],
)
def test_refused_uris_name_the_bad_part(uri, names):
    with pytest.raises(ConfigError) as err:
        parse_uri(uri)
    text = str(err.value)
    assert uri in text
    for name in names:
        assert name in text


def test_default_is_a_fresh_host_each_time():
    first, second = open_backend("test:///default"), open_backend("test:///default")
    assert isinstance(first, SimHost)
    first.create(
        {
            "c_info": {"name": "a", "type": "pv"},
            "b_info": {"max_memkb": 65536, "kernel": "/k", "type.pv": {}},
        }
    )
    assert [d.name for d in second.list_domains()] == ["Domain-0"]


def test_query_parameters_reach_the_host():
    host = open_backend("test:///default?fail_rate=0.25&memory_mib=2048&seed=3")
    assert host.fail_rate == 0.25
    host.fail_rate = 0
    assert host.host_info().total_memory_kib == 2048 * 1024


def test_persisted_host_is_shared(tmp_path):
    uri = f"test://{tmp_path}/host.json"
    open_backend(uri).create(
        {"c_info": {"name": "a", "type": "pv"}, "b_info": {"max_memkb": 65536, "kernel": "/k", "type.pv": {}}}
    )
    assert [d.name for d in open_backend(uri).list_domains()] == ["Domain-0", "a"]


def test_impossible_host_sizes_are_a_uri_error():
    with pytest.raises(ConfigError, match="dom0 memory"):
        open_backend("test:///default?memory_mib=512&dom0_memory_mib=1024")


def test_missing_binding_is_one_clear_sentence(monkeypatch):
    monkeypatch.setitem(sys.modules, "libxl.hosts.binding.host", None)  # makes the import fail
    with pytest.raises(BackendUnavailable, match=r"^xen:///system is unavailable: the libxl binding"):
        open_backend("xen:///system")


def test_no_hypervisor_is_backend_unavailable():
    """On a machine without Xen (CI, this sandbox) the real host says why instead of crashing."""
    if os.path.exists("/dev/xen/privcmd"):
        pytest.skip("this machine runs Xen: xen:///system may well open")
    with pytest.raises(BackendUnavailable):
        open_backend("xen:///system")
