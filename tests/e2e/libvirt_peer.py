"""``make e2e-libvirt``: libvirt 9.0's Xen driver side by side with the project, in the same dom0.

A separate boot because libvirtd needs ``-cpu Westmere`` (with ``max`` it fails: "Cannot find
suitable CPU model for given data"); Westmere runs PV guests only, which is all this compares. The
image already lacks libvirt's QEMU driver module (libvirtd refuses to start with it in this dom0).

What is compared: ``virsh domxml-from-native xen-xl`` and ``domxml-to-native xen-xl`` against
``xenreconcile``'s on the example configs and the test guest (the core fields must agree, the rest is
reported), and the time to a running guest through ``virsh create``, ``xl create`` and the agent.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable

import scenarios as sc
from lxml import etree

CPU = "Westmere"
VIRSH = "virsh -q -c xen:///system"
#: Fields both tools must render identically; everything else is reported as a difference.
CORE_XML = ("name", "memory", "currentMemory", "vcpu", "os/type", "os/kernel", "os/initrd", "os/cmdline",
            "bootloader")
CORE_XL = ("name", "memory", "maxmem", "vcpus", "kernel", "ramdisk", "bootloader", "type", "builder")


def flatten_xml(text: str) -> dict[str, str]:
    """Domain XML as ``path -> value`` (text, and ``path@attr`` for attributes), repeated paths numbered."""
    root = etree.fromstring(text.encode())
    flat: dict[str, str] = {}

    def walk(node: etree._Element, path: str) -> None:
        if (node.text or "").strip():
            flat[path] = node.text.strip()
        for key, value in sorted(node.attrib.items()):
            flat[f"{path}@{key}"] = value
        seen: dict[str, int] = {}
        for child in node:
            if not isinstance(child.tag, str):
                continue
            tag = etree.QName(child).localname
            seen[tag] = seen.get(tag, 0) + 1
            walk(child, f"{path}/{tag}" if seen[tag] == 1 else f"{path}/{tag}[{seen[tag]}]")
    walk(root, "")
    return {k.lstrip("/"): v for k, v in flat.items()}


def flatten_xl(text: str) -> dict[str, str]:
    """xl.cfg as ``key -> value`` with quotes and list whitespace normalised (one line per key)."""
    flat: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([A-Za-z_][\w]*)\s*=\s*(.*?)\s*$", line)
        if m:
            flat[m.group(1)] = re.sub(r"\s*([,\[\]])\s*", r"\1", m.group(2)).replace('"', "'")
    return flat


def compare(ours: dict[str, str], theirs: dict[str, str], core: tuple[str, ...]) -> tuple[list[str], str]:
    """(core mismatches, one-line summary of every other difference)."""
    mismatches = [f"{k}: ours {ours.get(k)!r}, libvirt {theirs.get(k)!r}" for k in core
                  if ours.get(k) != theirs.get(k)]
    only_ours = sorted(set(ours) - set(theirs))
    only_theirs = sorted(set(theirs) - set(ours))
    differ = sorted(k for k in set(ours) & set(theirs) if ours[k] != theirs[k])
    shown = [f"{k}: ours {ours[k][:60]!r} libvirt {theirs[k][:60]!r}" for k in differ[:3]]
    summary = (f"{len(set(ours) & set(theirs)) - len(differ)} same, {len(differ)} differ {shown}, "
               f"only libvirt {only_theirs[:6]}, only ours {only_ours[:6]}")
    return mismatches, summary


def _inputs(e: sc.E2E, pattern: str) -> list[str]:
    listing = e.d.check(f"ls /opt/src/examples/desired/{pattern} /root/e2e-guest.* 2>/dev/null || true")
    return [p for p in listing.split() if p.endswith(pattern.lstrip("*"))]


def _convert_all(e: sc.E2E, pattern: str, verb: str, flatten: Callable[[str], dict[str, str]],
                 core: tuple[str, ...]) -> str:
    lines, failures = [], []
    for path in _inputs(e, pattern):
        theirs = e.d.sh(f"{VIRSH} {verb} xen-xl {path}", 60)
        ours = e.d.sh(f"{sc.XR} {verb} xen-xl {path}", 60)
        name = path.rsplit("/", 1)[-1]
        if not theirs.ok:
            lines.append(f"{name}: libvirt refused it ({theirs.text()[:100]})")
            continue
        if not ours.ok:
            failures.append(f"{name}: xenreconcile failed: {ours.text()[:300]}")
            continue
        mismatches, summary = compare(flatten(ours.out), flatten(theirs.out), core)
        failures += [f"{name}: {m}" for m in mismatches]
        lines.append(f"{name}: {summary}")
    if failures:
        raise sc.ScenarioFailed("core fields differ from libvirt:\n" + "\n".join(failures + lines))
    return "\n    " + "\n    ".join(lines)


def s_libvirtd(e: sc.E2E) -> str:
    e.d.write("/root/e2e-guest.cfg", sc.xl_cfg("e2e-guest"))
    e.d.write("/root/e2e-guest.xml", sc.domain_xml("e2e-guest"))
    e.d.check("mkdir -p /run/libvirt /var/log/libvirt /var/lib/libvirt; "
              "(command -v virtlogd >/dev/null && virtlogd -d) ; libvirtd -d")
    version = e.wait("libvirtd to answer on xen:///system",
                     lambda: e.d.sh(f"{VIRSH} version", 30).out.strip(), timeout=120)
    return " ".join(str(version).split())


def s_from_native(e: sc.E2E) -> str:
    return _convert_all(e, "*.cfg", "domxml-from-native", flatten_xml, CORE_XML)


def s_to_native(e: sc.E2E) -> str:
    return _convert_all(e, "*.xml", "domxml-to-native", flatten_xl, CORE_XL)


def _time_to_running(e: sc.E2E, trigger: str, name: str) -> float:
    out = e.d.check(f"s=$(date +%s.%N); {trigger}; bash /root/poll-running.sh {name}; e=$(date +%s.%N); "
                    f"python3 -c \"print($e - $s)\"", 300)
    return float(out.split()[-1])


def s_create_times(e: sc.E2E) -> str:
    """virsh create, xl create and the agent, each from trigger to a running unpaused guest (3 each)."""
    e.d.write("/root/poll-running.sh", sc.POLL_RUNNING)
    e.d.write("/root/e2e-time.cfg", sc.xl_cfg("e2e-time"))
    e.d.write("/root/e2e-time.xml", sc.domain_xml("e2e-time"))
    # allow_empty: each round empties the desired directory, which the agent otherwise (rightly)
    # treats as suspicious and does not prune.
    e.start_agent(prune="destroy", allow_empty=True)
    times: dict[str, list[float]] = {"virsh": [], "xl": [], "agent": []}
    for _ in range(3):
        virsh_create = f"{VIRSH} create /root/e2e-time.xml >/dev/null"
        times["virsh"].append(_time_to_running(e, virsh_create, "e2e-time"))
        e.d.check(f"{VIRSH} destroy e2e-time")
        e.wait("e2e-time gone", lambda: e.domid("e2e-time") is None)
        times["xl"].append(_time_to_running(e, "xl create /root/e2e-time.cfg >/dev/null 2>&1", "e2e-time"))
        e.d.check("xl destroy e2e-time")
        drop_file = f"cp /root/e2e-time.cfg /root/.t.cfg && mv /root/.t.cfg {sc.DESIRED}/e2e-time.cfg"
        times["agent"].append(_time_to_running(e, drop_file, "e2e-time"))
        e.d.check(f"rm -f {sc.DESIRED}/e2e-time.cfg")
        e.wait("e2e-time pruned", lambda: e.domid("e2e-time") is None)
    med = {k: statistics.median(v) for k, v in times.items()}
    e.figures.update({f"{k}_create_s": v for k, v in med.items()})
    e.figures.update(virsh_vs_xl_ratio=med["virsh"] / med["xl"], agent_vs_xl_ratio=med["agent"] / med["xl"])
    return (f"median of 3: virsh {med['virsh']:.2f} s, xl {med['xl']:.2f} s, agent {med['agent']:.2f} s; "
            f"virsh/xl {med['virsh'] / med['xl']:.2f}, agent/xl {med['agent'] / med['xl']:.2f}")


SCENARIOS = [
    sc.Scenario(sc.INSTALL, sc.s_install_deb),
    sc.Scenario("libvirtd on xen:///system", s_libvirtd),
    sc.Scenario("domxml-from-native xen-xl vs libvirt", s_from_native, (sc.INSTALL, "libvirtd on xen:///system")),
    sc.Scenario("domxml-to-native xen-xl vs libvirt", s_to_native, (sc.INSTALL, "libvirtd on xen:///system")),
    sc.Scenario("create time: virsh, xl, agent", s_create_times, (sc.INSTALL, "libvirtd on xen:///system")),
]


def run_all(e: sc.E2E, report: Callable[[sc.Outcome], None]) -> list[sc.Outcome]:
    return sc.run_scenarios(SCENARIOS, e, report)
