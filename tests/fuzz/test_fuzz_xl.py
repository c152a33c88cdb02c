"""Fuzzing the xl.cfg(5) syntax (``parse_cfg``) and the xl and xm readers built on it.

Invariant: any text yields a value or a located ConfigError; and a config that parses formats to
text that parses back to the same guest.

"The same guest" is not strict model equality, and cannot be: the readers keep the model as
written (absent stays ``None``/empty) while the writers, like libvirt's, spell out xl's effective
values. Found by fuzzing, the fields concerned are:

- an HVM guest without ``boot`` is written ``boot = "c"`` and reads back as ``["hd"]``;
- an xm HVM guest without ``kernel`` is written with libvirt's hvmloader path;
- a vnuma node without ``vdistances`` is written with a full distance row (mirrored from its
  siblings' rows, else 10/20) and reads back with those distances;
- a PV guest's ``cpuid = "host"`` (libxl's default policy, no change) reads as
  ``<cpu mode='host-passthrough'/>`` but the writer only writes a cpuid that changes something, so
  it comes back without a ``<cpu>``. Equivalent for libxl; left as libvirt maps it.

So the first model is compared through ``with_defaults`` (libvirt's defaults: boot ``hd``, the
hvmloader) with the vnuma rows the writer completed taken over; and the written text must then be a
fixed point: formatting the second model and reading it again gives it back exactly.
"""

from __future__ import annotations

from fuzz_helpers import FUZZ, mutated, outcome, token_soup
from hypothesis import given
from hypothesis import strategies as st

from libxl.domain.formats.defaults import with_defaults
from libxl.domain.formats.xl import format_xl, parse_xl
from libxl.domain.formats.xlcfg import parse_cfg
from libxl.domain.formats.xm import format_xm, parse_xm
from libxl.domain.model import CPU, Domain
from libxl.errors import ConfigError

_CFG_TOKENS = ["name", "memory", "vif", "disk", " = ", "+=", "[", "]", ",", ";", "\n", "'", '"', '"""',
               "'''", "#", "\\", "\\\n", "0x1f", "-3", "1.5", "'a'", '"b\\x41"', "\\777", " "]


def _xl_edits(text: str) -> st.SearchStrategy[str]:
    """Append a setting the seed may lack, with a nasty or list value."""
    keys = st.sampled_from(["type", "builder", "vnuma", "cpuid", "channel", "usbctrl", "usbdev", "pci",
                            "serial", "vfb", "boot", "cpus", "maxvcpus", "vcpus", "maxmem", "bios",
                            "passthrough", "spice", "spiceport", "tsc_mode", "usbdevice", "soundhw",
                            "rtc_timeoffset", "vncdisplay", "max_grant_frames", "device_model_args"])
    scalar = st.one_of(st.integers(-2**70, 2**70).map(str),
                       st.sampled_from(["'x'", "'hvm'", "'pv'", "'a,b=c'", "'1'", "'ovmf'"]))
    value = st.one_of(scalar, st.lists(scalar, max_size=3).map(lambda v: "[" + ",".join(v) + "]"),
                      st.just("[['pnode=0','size=x','vcpus=0']]"))
    return st.builds(lambda k, v: f"{text}\n{k} = {v}\n", keys, value)


def _as_written_back(first: Domain, second: Domain) -> Domain:
    """``first`` with what the writer fills in (see the module docstring) filled in."""
    expected = with_defaults(first)
    if expected.cpu == CPU(mode="host-passthrough") and not expected.os.is_hvm and second.cpu is None:
        expected.cpu = None
    if expected.cpu is not None and second.cpu is not None and len(second.cpu.numa) == len(expected.cpu.numa):
        for cell, written in zip(expected.cpu.numa, second.cpu.numa, strict=True):
            cell.distances = cell.distances or written.distances
    return expected


def _roundtrip(parse, fmt, text: str) -> None:  # noqa: ANN001 (parse/format pairs)
    first = outcome(parse, text)
    if isinstance(first, ConfigError):
        return
    try:
        again = fmt(first)
    except ConfigError:
        return  # a model the format cannot write back (reported as such, never a crash)
    second = outcome(parse, again)
    assert not isinstance(second, ConfigError), f"formatted output does not re-parse: {second}\n{again}"
    assert with_defaults(second) == _as_written_back(first, second), \
        f"round trip changed the guest\n--- input\n{text}\n--- formatted\n{again}"
    assert parse(fmt(second)) == second, f"formatted output is not a fixed point\n{again}"


@FUZZ
@given(st.one_of(st.text(), token_soup(_CFG_TOKENS)))
def test_cfg_syntax_random_text(text: str) -> None:
    outcome(parse_cfg, text)


@FUZZ
@given(st.data())
def test_xl_random_and_mutated(seeds, data: st.DataObject) -> None:  # noqa: ANN001 (fixture)
    text = data.draw(st.one_of(token_soup(_CFG_TOKENS), mutated(seeds.xl, _xl_edits)))
    outcome(parse_xl, text)


@FUZZ
@given(st.data())
def test_xl_parse_format_parse(seeds, data: st.DataObject) -> None:  # noqa: ANN001 (fixture)
    _roundtrip(parse_xl, format_xl, data.draw(mutated(seeds.xl, _xl_edits, max_steps=2)))


@FUZZ
@given(st.data())
def test_xm_parse_format_parse(seeds, data: st.DataObject) -> None:  # noqa: ANN001 (fixture)
    _roundtrip(parse_xm, format_xm, data.draw(mutated(seeds.xm, _xl_edits, max_steps=2)))
