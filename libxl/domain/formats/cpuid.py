"""CPUID policies: libxl's ``host,NAME=V,...`` string and xend's legacy ``LEAF[,SUB]:REG=BITS`` list.

One reader for the xl front end, the domain-XML builder (``<cpu><feature>``) and the converters.
A policy is a list of leaves, each with up to four 32-character registers (bit 31 first), every
character one of ``x`` (default), ``0``, ``1``, ``k`` (keep the host's) or ``s`` (same as the host
when migrating); libxl's JSON spells it the same way. Names follow libxl's cpuid table (and
libvirt's spellings of the same bits). Fields wider than one bit (``family``, ``model``,
``stepping``, ``clflush`` size, ``apicidsize``...) are refused: this agent only sets single bits.
"""

from __future__ import annotations

import re
from typing import Any

JSON = dict[str, Any]
Leaves = dict[tuple[int, int | None], dict[str, list[str]]]


class CpuidError(ValueError):
    """A policy this agent cannot build (a located ConfigError at the caller)."""


_ECX1, _EDX1 = (1, None, "ecx"), (1, None, "edx")
_EBX7, _ECX7, _EDX7 = (7, 0, "ebx"), (7, 0, "ecx"), (7, 0, "edx")
_ECX81, _EDX81 = (0x80000001, None, "ecx"), (0x80000001, None, "edx")
_EAX6, _EDX87, _EBX88 = (6, None, "eax"), (0x80000007, None, "edx"), (0x80000008, None, "ebx")
#: CPU feature names (libvirt's, plus libxl's own spellings) -> (leaf, subleaf, register, bit).
CPUID_BITS: dict[str, tuple[int, int | None, str, int]] = {
    **{name: (*_ECX1, bit) for bit, names in {
        0: ("pni", "sse3"), 1: ("pclmuldq", "pclmulqdq"), 2: ("dtes64",), 3: ("monitor",),
        4: ("ds_cpl", "dscpl"), 6: ("smx",), 7: ("est",), 8: ("tm2",), 9: ("ssse3",),
        10: ("cid", "cntxid"), 12: ("fma",), 13: ("cx16", "cmpxchg16"), 14: ("xtpr",), 15: ("pdcm",),
        17: ("pcid",), 18: ("dca",), 19: ("sse4.1", "sse4_1"), 20: ("sse4.2", "sse4_2"),
        21: ("x2apic",), 22: ("movbe",), 23: ("popcnt",), 24: ("tsc-deadline", "tsc_deadline"),
        25: ("aes",), 26: ("xsave",), 27: ("osxsave",), 28: ("avx",), 29: ("f16c",), 30: ("rdrand",),
        31: ("hypervisor",)}.items() for name in names},
    **{name: (*_EDX1, bit) for bit, names in {
        0: ("fpu",), 1: ("vme",), 2: ("de",), 3: ("pse",), 4: ("tsc",), 5: ("msr",), 6: ("pae",),
        7: ("mce",), 8: ("cx8", "cmpxchg8"), 9: ("apic",), 11: ("sep", "sysenter"), 12: ("mtrr",),
        13: ("pge",), 14: ("mca",), 15: ("cmov",), 16: ("pat",), 17: ("pse36",), 18: ("pn", "psn"),
        19: ("clflush", "clfsh"), 21: ("ds",), 22: ("acpi",), 23: ("mmx",), 24: ("fxsr",), 25: ("sse",),
        26: ("sse2",), 27: ("ss",), 28: ("ht", "htt"), 29: ("tm",), 30: ("ia64",), 31: ("pbe",)}.items()
       for name in names},
    **{name: (*_EBX7, bit) for bit, names in {
        0: ("fsgsbase",), 1: ("tsc_adjust",), 3: ("bmi1",), 4: ("hle",), 5: ("avx2",), 7: ("smep",),
        8: ("bmi2",), 9: ("erms",), 10: ("invpcid",), 11: ("rtm",), 14: ("mpx",), 16: ("avx512f",),
        17: ("avx512dq",), 18: ("rdseed",), 19: ("adx",), 20: ("smap",), 21: ("avx512ifma",),
        23: ("clflushopt",), 24: ("clwb",), 26: ("avx512pf",), 27: ("avx512er",), 28: ("avx512cd",),
        29: ("sha", "sha-ni"), 30: ("avx512bw",), 31: ("avx512vl",)}.items() for name in names},
    **{name: (*_ECX7, bit) for bit, names in {
        0: ("prefetchwt1",), 1: ("avx512vbmi",), 2: ("umip",), 3: ("pku",), 4: ("ospke",),
        8: ("gfni",), 9: ("vaes",), 10: ("vpclmulqdq",), 22: ("rdpid",)}.items() for name in names},
    **{name: (*_EDX7, bit) for bit, names in {
        2: ("avx512-4vnniw",), 3: ("avx512-4fmaps",), 10: ("md-clear", "md_clear"),
        26: ("spec-ctrl", "ibrsb"), 27: ("stibp",), 28: ("l1d-flush",), 29: ("arch-capabilities",),
        31: ("ssbd",)}.items() for name in names},
    **{name: (*_ECX81, bit) for bit, names in {
        0: ("lahf_lm", "lahfsahf"), 1: ("cmp_legacy", "cmplegacy"), 3: ("extapic",),
        4: ("cr8legacy", "altmovcr8"), 5: ("abm", "lzcnt"), 6: ("sse4a",), 7: ("misalignsse",),
        8: ("3dnowprefetch",), 9: ("osvw",), 10: ("ibs",), 11: ("xop",), 12: ("skinit",), 13: ("wdt",),
        15: ("lwp",), 16: ("fma4",), 17: ("tce",), 19: ("nodeid_msr", "nodeid"), 21: ("tbm",),
        22: ("topoext",), 23: ("perfctr_core",), 24: ("perfctr_nb",)}.items() for name in names},
    **{name: (*_EDX81, bit) for bit, names in {
        11: ("syscall",), 20: ("nx",), 22: ("mmxext",), 25: ("fxsr_opt", "ffxsr"),
        26: ("pdpe1gb", "page1gb"), 27: ("rdtscp",), 29: ("lm",), 30: ("3dnowext",), 31: ("3dnow",)}.items()
       for name in names},
    # Power management and AMD extended leaves (libxl_cpuid.c 4.17): invtsc is what Qubes sets
    # on every HVM/PVH guest.
    "arat": (*_EAX6, 2), "cmt": (*_EBX7, 12), "invtsc": (*_EDX87, 8),
    **{name: (*_EBX88, bit) for bit, name in {
        0: "clzero", 2: "rstr-fp-err-ptrs", 9: "wbnoinvd", 12: "ibpb", 23: "ppin", 24: "amd-ssbd",
        25: "virt-ssbd", 26: "ssb-no"}.items()},
}
#: libxl names of fields wider than one bit (leaf 1 eax/ebx, leaf 0x80000008 ecx).
MULTI_BIT = frozenset({"family", "model", "stepping", "brandid", "clflush", "procpkg", "apicid", "nc",
                       "apicidsize"})
_VALUES = frozenset("01xks")


def _mask(leaves: Leaves, leaf: int, subleaf: int | None, register: str) -> list[str]:
    return leaves.setdefault((leaf, subleaf), {}).setdefault(register, ["x"] * 32)


def legacy_leaf(spec: str, leaves: dict[tuple[int, int | None], dict[str, list[str]]]) -> None:
    """xl's legacy ``"LEAF[,SUBLEAF]:REG=BITS,..."`` form, BITS being 32 of x/0/1/k/s (bit 0 last)."""
    match = re.fullmatch(r"\s*(\w+)(?:,(\w+))?:(.*)", spec)
    try:
        if not match:
            raise ValueError(spec)
        key = (int(match[1], 0), int(match[2], 0) if match[2] else None)
        masks = leaves.setdefault(key, {})
        for item in match[3].split(","):
            register, _, bits = item.strip().partition("=")
            if register not in ("eax", "ebx", "ecx", "edx") or not re.fullmatch(r"[01xks]{32}", bits):
                raise ValueError(item)
            masks[register] = list(bits)
    except ValueError:
        raise CpuidError(f"malformed cpuid entry {spec!r}") from None


def to_json(leaves: Leaves) -> list[JSON]:
    out = []
    for (leaf, subleaf), masks in leaves.items():
        entry: JSON = {"leaf": leaf}
        if subleaf is not None:
            entry["subleaf"] = subleaf
        for register in ("eax", "ebx", "ecx", "edx"):
            if register in masks:
                entry[register] = "".join(masks[register])
        out.append(entry)
    return out


def split_policy(text: str) -> tuple[bool, list[tuple[str, str | None]]]:
    """libxl's ``host,NAME=V,...``: (whether it starts with ``host``, the NAME/V pairs after it, V
    None where the ``=`` is missing). The one reader of the string form, for the xl front end and
    the converters."""
    words = [w.strip() for w in text.split(",") if w.strip()]
    has_host = bool(words) and words[0] == "host"
    pairs = []
    for word in words[1:] if has_host else words:
        name, eq, value = word.partition("=")
        pairs.append((name, value if eq else None))
    return has_host, pairs


def cpuid_from_string(text: str) -> tuple[list[JSON], list[str]]:
    """libxl's string form: (leaves, problems xl reports and skips). The first word must be
    ``host`` (xl then ignores the whole string, which is a problem too)."""
    has_host, pairs = split_policy(text)
    if not pairs and not has_host:
        return [], []
    if not has_host:
        return [], [f"{text!r}: the first word must be \"host\", so xl ignores the whole string"]
    leaves: Leaves = {}
    problems = []
    for name, value in pairs:
        word = name if value is None else f"{name}={value}"
        if value is None:
            problems.append(f"{word!r}: missing \"=\" in key=value")
        elif name in MULTI_BIT:
            raise CpuidError(f"{word!r}: {name} is a field wider than one bit; not supported by this agent")
        elif name not in CPUID_BITS:
            problems.append(f"{word!r}: unknown CPUID flag name")
        elif value not in _VALUES:
            problems.append(f"{word!r}: illegal CPUID value (must be: [0|1|x|k|s])")
        else:
            leaf, subleaf, register, bit = CPUID_BITS[name]
            _mask(leaves, leaf, subleaf, register)[31 - bit] = value
    return to_json(leaves), problems


def cpuid_from_legacy(entries: list[str]) -> tuple[list[JSON], list[str]]:
    """xend's list form: (leaves, entries xl reports as malformed and skips)."""
    leaves: Leaves = {}
    problems = []
    for entry in entries:
        try:
            legacy_leaf(entry, leaves)
        except CpuidError as err:
            problems.append(str(err))
    return to_json(leaves), problems


__all__ = ["CPUID_BITS", "MULTI_BIT", "CpuidError", "legacy_leaf", "split_policy", "cpuid_from_string",
           "cpuid_from_legacy", "to_json"]
