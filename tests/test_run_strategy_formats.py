"""The run strategy in both desired formats: domain XML metadata and the xl.cfg key xl ignores."""

from __future__ import annotations

from pathlib import Path

import pytest
from reconcile_fixtures import domain_xml

from libxl.domain.formats.domxml import parse_domain_xml
from libxl.domain.formats.domxml_format import format_domain_xml
from libxl.domain.formats.xl import RUN_STRATEGY_KEY, format_xl, parse_xl
from libxl.errors import ConfigError
from reconcilers.desired import load_desired

XR = "https://xenreconcile.dev/schemas/domain/1.0"
CFG = 'name = "web"\nmemory = 128\nkernel = "/boot/vmlinuz"\n'


def with_meta(xml: str, meta: str) -> str:
    return xml.replace("<memory", f"<metadata>{meta}</metadata><memory", 1)


def strategy_xml(name: str, strategy: str, state: str | None = None) -> str:
    meta = f"<xr:runStrategy xmlns:xr='{XR}'>{strategy}</xr:runStrategy>"
    if state:
        meta = f"<xr:state xmlns:xr='{XR}'>{state}</xr:state>" + meta
    return with_meta(domain_xml(name), meta)


@pytest.mark.parametrize("strategy", ["Always", "RerunOnFailure", "Manual", "Halted"])
def test_domain_xml_reads_and_writes_the_run_strategy(strategy: str) -> None:
    dom = parse_domain_xml(strategy_xml("web", strategy), "web.xml")
    assert dom.run_strategy == strategy
    again = parse_domain_xml(format_domain_xml(dom), "again.xml")
    assert (again.run_strategy, again.power_state) == (strategy, None)


def test_domain_xml_refuses_an_unknown_strategy_naming_the_element() -> None:
    with pytest.raises(ConfigError) as err:
        parse_domain_xml(strategy_xml("web", "Sometimes"), "web.xml")
    assert "web.xml" in str(err.value) and "runStrategy" in str(err.value) and "'Sometimes'" in str(err.value)


def test_halted_contradicting_a_running_state_is_refused() -> None:
    with pytest.raises(ConfigError, match="Halted keeps the guest stopped; xr:state says 'running'"):
        parse_domain_xml(strategy_xml("web", "Halted", "running"), "web.xml")
    assert parse_domain_xml(strategy_xml("web", "Halted", "stopped"), "web.xml").run_strategy == "Halted"


def test_xl_cfg_key_round_trips_and_bad_values_name_the_line() -> None:
    dom = parse_xl(CFG + f'{RUN_STRATEGY_KEY} = "RerunOnFailure"\n', "web.cfg")
    assert dom.run_strategy == "RerunOnFailure"
    assert f'{RUN_STRATEGY_KEY} = "RerunOnFailure"' in format_xl(dom)
    assert parse_xl(CFG, "web.cfg").run_strategy is None
    with pytest.raises(ConfigError, match=r"web.cfg:4: xenreconcile_run_strategy: must be one of"):
        parse_xl(CFG + f'{RUN_STRATEGY_KEY} = "always"\n', "web.cfg")


def test_desired_defaults_to_always_and_halted_means_stopped(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(domain_xml("a"))
    (tmp_path / "h.xml").write_text(strategy_xml("h", "Halted"))
    (tmp_path / "m.cfg").write_text(CFG.replace("web", "m") + f'{RUN_STRATEGY_KEY} = "Manual"\n')
    desired = load_desired(tmp_path)
    got = {n: (d.run_strategy, d.power_state) for n, d in desired.domains.items()}
    assert got == {"a": ("Always", "running"), "h": ("Halted", "stopped"), "m": ("Manual", "running")}


def test_real_xl_ignores_the_key(tmp_path: Path) -> None:
    from realxl import libxl_missing, xl_dry_run

    missing = libxl_missing()
    if missing:
        pytest.skip(missing)
    plain, marked = tmp_path / "plain.cfg", tmp_path / "marked.cfg"
    plain.write_text(CFG + 'uuid = "9b1f3f4e-1111-4222-8333-444455556666"\n')
    marked.write_text(plain.read_text() + f'{RUN_STRATEGY_KEY} = "Manual"\n')
    assert xl_dry_run(marked) == xl_dry_run(plain)
