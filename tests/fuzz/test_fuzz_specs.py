"""Fuzzing the disk and vif spec parsers, on their own and inside xl/xm configs.

On their own they are helpers that raise ``ValueError`` (the contract the xl/xm readers rely on);
inside a config every problem must come out as a located ConfigError naming the ``disk``/``vif`` key.
"""

from __future__ import annotations

from collections.abc import Callable

from fuzz_helpers import FUZZ, NASTY, outcome, watchdog
from hypothesis import given
from hypothesis import strategies as st

from libxl.domain.formats import diskspec, vifspec
from libxl.domain.formats.xl import parse_xl
from libxl.domain.formats.xlcfg import quote
from libxl.domain.formats.xm import parse_xm
from libxl.errors import ConfigError

_DISK_PARTS = ["target=", "format=", "vdev=", "access=", "devtype=", "backend=", "backendtype=", "script=",
               "discard", "no-discard", "cdrom", "colo", "phy:", "file:", "tap:", "tap:aio:", "qcow2:",
               "/dev/vg/lv", "hda", "xvda", "hdc:cdrom", "ioemu:", "raw", "qcow2", "r", "rw", "w!", "!",
               "qdisk", "phy", ",", ",", ":", "=", " "]
_VIF_PARTS = ["mac=", "bridge=", "ip=", "script=", "model=", "type=", "vifname=", "rate=", "backend=",
              "00:16:3e:00:00:01", "xenbr0", "br.42", "br:1:2", "10.0.0.1/24", "fe80::1/64",
              "100Mb/s", "10240KB/s@20ms", "1GB/s@5us", "netfront", "vif", "e1000", ",", ",", "=", " "]


def _spec(parts: list[str]) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(parts), st.sampled_from(NASTY), st.text(max_size=4)),
                    max_size=14).map("".join)


def _value_or_valueerror(parse: Callable[[str], object], spec: str) -> None:
    try:
        with watchdog():
            parse(spec)
    except ValueError:
        pass


@FUZZ
@given(_spec(_DISK_PARTS))
def test_disk_specs(spec: str) -> None:
    _value_or_valueerror(diskspec.parse_xl_disk, spec)
    _value_or_valueerror(diskspec.parse_xm_disk, spec)


@FUZZ
@given(_spec(_VIF_PARTS))
def test_vif_specs(spec: str) -> None:
    _value_or_valueerror(vifspec.parse_vif, spec)
    _value_or_valueerror(lambda s: vifspec.parse_vif(s, "netfront"), spec)


@FUZZ
@given(_spec(_DISK_PARTS), _spec(_VIF_PARTS), st.sampled_from([parse_xl, parse_xm]))
def test_specs_inside_configs(disk: str, vif: str, parse: Callable[..., object]) -> None:
    text = f'name = "g"\nmemory = 64\ndisk = [ {quote(disk)} ]\nvif = [ {quote(vif)} ]\n'
    result = outcome(parse, text)
    if isinstance(result, ConfigError):
        assert result.element in ("disk", "vif") and result.line in (3, 4), str(result)
