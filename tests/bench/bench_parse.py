"""Benchmark 3: parse throughput (files per second), ours against libxlutil's C parser.

The files are libvirt's Xen test corpus (../shared/corpus/xlconfigdata: the same guests as domain
XML and as xl.cfg), read into memory first so only parsing is timed. Measured, each on the same
files: domain XML -> model; domain XML -> model -> libxl JSON (what a cold start does per file);
xl.cfg syntax alone (``libxl.domain.formats.xlcfg.parse_cfg``) and xl.cfg -> model (``parse_xl``); and
libxlutil's ``xlu_cfg_init`` + ``xlu_cfg_readdata`` + ``xlu_cfg_destroy``, which parse the syntax
only, so the like-for-like ratio is C against ``parse_cfg``.

The C side is a tiny cffi module built for this benchmark in a temporary directory against the
system's libxlutil (``pkg-config xlutil``, from libxen-dev); without it that part is skipped and
the reason printed.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from libxl.domain.formats.domxml import parse_domain_xml
from libxl.domain.formats.xl import parse_xl
from libxl.domain.formats.xlcfg import parse_cfg
from libxl.errors import ConfigError
from libxl.frontends.libvirt import build_config
from tests.bench.common import ROOT, Row

BENCH = "parse"
CORPUS = ROOT.parent / "shared" / "corpus" / "xlconfigdata"
#: Each parser loops over the file set for at least this long.
MIN_SECONDS = 2.0

_C_SOURCE = r"""
#include <stdio.h>
#include <libxlutil.h>

static FILE *sink;

/* What xl does with a config file's text, minus the lookups: init, parse, free. */
int bench_parse(const char *data, int length) {
    XLU_Config *cfg;
    int rc;
    if (!sink && !(sink = fopen("/dev/null", "w")))
        return -1;
    cfg = xlu_cfg_init(sink, "bench");
    if (!cfg)
        return -1;
    rc = xlu_cfg_readdata(cfg, data, length);
    xlu_cfg_destroy(cfg);
    return rc;
}
"""


def build_libxlutil(tmp: Path) -> Callable[[bytes], int]:
    """Compile the cffi module in ``tmp`` and return its ``bench_parse``; raises RuntimeError why not."""
    if shutil.which("pkg-config") is None:
        raise RuntimeError("pkg-config is not installed")
    probe = subprocess.run(["pkg-config", "--cflags", "--libs", "xlutil"], capture_output=True, text=True)
    if probe.returncode != 0:
        raise RuntimeError("libxlutil not found by pkg-config (install libxen-dev)")
    from cffi import FFI
    flags = probe.stdout.split()
    ffi = FFI()
    ffi.cdef("int bench_parse(const char *data, int length);")
    ffi.set_source("_xr_bench_xlu", _C_SOURCE,
                   include_dirs=[f[2:] for f in flags if f.startswith("-I")],
                   library_dirs=[f[2:] for f in flags if f.startswith("-L")],
                   libraries=[f[2:] for f in flags if f.startswith("-l")], extra_compile_args=["-O2"])
    try:
        built = ffi.compile(tmpdir=str(tmp), verbose=False)
    except Exception as err:  # a missing compiler or header: say which, skip the C column
        raise RuntimeError(f"building the libxlutil cffi module failed: {err}") from err
    spec = importlib.util.spec_from_file_location("_xr_bench_xlu", built)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lib.bench_parse  # type: ignore[no-any-return]


def _accepted(texts: dict[str, str], parse: Callable[[str, str], Any]) -> dict[str, str]:
    """The files ``parse`` accepts (a corpus case our parser rejects is left out of every column)."""
    out = {}
    for name, text in texts.items():
        try:
            parse(text, name)
        except ConfigError:
            continue
        out[name] = text
    return out


def throughput(items: list[Any], parse: Callable[[Any], Any]) -> float:
    """Files per second: whole passes over ``items`` for at least ``MIN_SECONDS``."""
    passes = 0
    start = time.perf_counter()
    while True:
        for item in items:
            parse(item)
        passes += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SECONDS:
            return passes * len(items) / elapsed


def run() -> tuple[list[Row], dict]:
    if not CORPUS.is_dir():
        print(f"parse: skipped, {CORPUS} is absent (the shared corpus sits next to the checkout)")
        return [], {"skipped": f"{CORPUS} absent"}
    xml = _accepted({p.name: p.read_text() for p in sorted(CORPUS.glob("*.xml"))},
                    lambda t, n: build_config(parse_domain_xml(t, file=n)))
    cfg = _accepted({p.name: p.read_text() for p in sorted(CORPUS.glob("*.cfg"))},
                    lambda t, n: parse_xl(t, file=n))
    xml_items, cfg_items = list(xml.items()), list(cfg.items())
    figures = {
        "domain XML -> model": throughput(xml_items, lambda i: parse_domain_xml(i[1], file=i[0])),
        "domain XML -> model -> libxl JSON": throughput(
            xml_items, lambda i: build_config(parse_domain_xml(i[1], file=i[0]))),
        "xl.cfg syntax (parse_cfg)": throughput(cfg_items, lambda i: parse_cfg(i[1], file=i[0])),
        "xl.cfg -> model (parse_xl)": throughput(cfg_items, lambda i: parse_xl(i[1], file=i[0])),
    }
    raw: dict[str, Any] = {"xml_files": len(xml), "cfg_files": len(cfg), "files_per_s": figures}
    rows = [Row(BENCH, f"{label} ({len(xml) if 'XML' in label else len(cfg)} files)", value, "files/s")
            for label, value in figures.items()]
    with tempfile.TemporaryDirectory(prefix="xr-bench-cffi-") as tmp:
        try:
            c_parse = build_libxlutil(Path(tmp))
        except RuntimeError as err:
            print(f"parse: libxlutil column skipped: {err}", file=sys.stderr)
            raw["libxlutil"] = f"skipped: {err}"
            return rows, raw
        data = [text.encode() for text in cfg.values()]
        failures = sum(1 for d in data if c_parse(d, len(d)) != 0)
        c_rate = throughput(data, lambda d: c_parse(d, len(d)))
    syntax, full = figures["xl.cfg syntax (parse_cfg)"], figures["xl.cfg -> model (parse_xl)"]
    raw.update({"libxlutil_files_per_s": c_rate, "libxlutil_rejected": failures})
    rows += [
        Row(BENCH, f"libxlutil xlu_cfg_readdata, C via cffi ({len(cfg)} files, {failures} rejected)", c_rate,
            "files/s"),
        Row(BENCH, "ratio libxlutil / ours, xl.cfg syntax (like for like)", c_rate / syntax, "x"),
        Row(BENCH, "ratio libxlutil / ours, xl.cfg -> model", c_rate / full, "x"),
    ]
    return rows, raw
