"""The agent's TOML settings: defaults, every key checked, CLI overrides, one clear error."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from agent.config import CHECKS, AgentConfig, AgentConfigError, load_config, parse_listen

SAMPLE = Path(__file__).resolve().parent.parent / "etc" / "xenreconcile.toml"


def test_every_setting_has_a_checker() -> None:
    assert set(CHECKS) == {f.name for f in fields(AgentConfig)}


def test_sample_file_documents_every_setting_with_its_default() -> None:
    if not SAMPLE.exists():
        pytest.skip(f"{SAMPLE} not written yet")
    text = SAMPLE.read_text()
    # Every key appears commented out, with its default value, and parses back to the default.
    defaults = AgentConfig()
    for f in fields(AgentConfig):
        lines = [line for line in text.splitlines() if line.startswith(f"# {f.name} = ")]
        assert len(lines) == 1, f"{f.name} is not documented exactly once"
        value = tomllib.loads(lines[0][2:])[f.name]
        value = tuple(value) if isinstance(value, list) else value  # list settings are held as tuples
        assert value == getattr(defaults, f.name), f.name
    # The file itself, with everything commented, loads to the defaults.
    assert load_config(SAMPLE) == defaults


def test_file_values_are_read_and_cli_overrides_win(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text('uri = "test:///default"\nworkers = 8\ndebounce = 1\nprune = "shutdown"\n')
    loaded = load_config(cfg, {"workers": 2, "desired_dir": None})
    assert loaded.uri == "test:///default"
    assert loaded.workers == 2
    assert loaded.debounce == 1.0 and isinstance(loaded.debounce, float)
    assert loaded.prune == "shutdown"
    assert loaded.policy().prune == "shutdown"
    assert loaded.desired_dir == AgentConfig().desired_dir


@pytest.mark.parametrize(("text", "key", "problem"), [
    ("wokers = 3", "wokers", "unknown setting"),
    ("workers = 0", "workers", ">= 1"),
    ("workers = 1.5", "workers", "integer"),
    ('prune = true', "prune", "one of"),
    ('adopt = "yes"', "adopt", "true or false"),
    ('restart = "sometimes"', "restart", "one of"),
    ('metrics_listen = "localhost"', "metrics_listen", "HOST:PORT"),
    ('metrics_listen = "127.0.0.1:99999"', "metrics_listen", "0..65535"),
    ("resync_interval = 0", "resync_interval", "> 0"),
    ("resync_jitter = 1.5", "resync_jitter", "below 1"),
    ("backoff_base = 2.0\nbackoff_cap = 1.0", "backoff_cap", ">= backoff_base"),
    ("[agent]\nworkers = 2", "agent", "top-level"),
    ("debounce = true", "debounce", "number"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str, problem: str) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text + "\n")
    with pytest.raises(AgentConfigError) as info:
        load_config(cfg)
    assert info.value.key == key
    assert problem in str(info.value)
    assert str(cfg) in str(info.value)


def test_missing_explicit_file_and_broken_toml_are_errors(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="cannot read"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("uri = \n")
    with pytest.raises(AgentConfigError, match="not valid TOML"):
        load_config(broken)


def test_bad_cli_override_names_the_key() -> None:
    with pytest.raises(AgentConfigError, match="command line: metrics_listen"):
        load_config(Path("/dev/null"), {"metrics_listen": "nope"})


def test_parse_listen_accepts_ipv6_brackets() -> None:
    assert parse_listen("[::1]:9977") == ("::1", 9977)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)


def test_security_settings_reach_the_policy(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('strict_modes = false\nallow_device_model_args = true\n'
                    'hotplug_script_dirs = ["/etc/xen/scripts", "/usr/local/lib/xen/scripts"]\n')
    security = load_config(path).security()
    assert (security.strict_modes, security.allow_device_model_args, security.allow_pci_passthrough) == \
        (False, True, False)
    assert security.hotplug_script_dirs == ("/etc/xen/scripts", "/usr/local/lib/xen/scripts")
    path.write_text('allowed_bootloaders = ["pygrub"]\n')
    with pytest.raises(AgentConfigError, match="allowed_bootloaders: must be a list of absolute paths"):
        load_config(path)


def test_metrics_listen_on_loopback_by_default() -> None:
    """/status names every guest: the endpoint is only reachable from the host unless configured."""
    host, _port = AgentConfig().metrics_address
    assert ipaddress.ip_address(host).is_loopback
