"""Seed documents for the structure-aware fuzz tests.

The seeds are the project's own examples (always there: ``*.xml`` and ``*.cfg``) plus libvirt's
Xen conversion corpus when ../shared/corpus is present; xl.cfg and xm seeds are also derived from
the examples through the formatters, so every fuzz test runs even without the corpus (with fewer
seeds).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from libxl.domain.formats.domxml import parse_domain_xml
from libxl.domain.formats.xl import format_xl
from libxl.domain.formats.xm import format_xm
from libxl.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"

#: Used when the corpus (the only source of real xend dumps) is absent.
_SXPR_FALLBACK = """(domain (domid 6) (name pvtest) (memory 420) (maxmem 512) (vcpus 2)
  (uuid 596a5d2171f48fb2e068e2386a5c413e) (on_poweroff destroy) (on_reboot destroy)
  (image (linux (kernel /tmp/vmlinuz) (ramdisk /tmp/initrd) (args 'ks=x') (vnc 1) (vncdisplay 3)))
  (device (vbd (dev xvda) (uname phy:/dev/MainVG/GuestLV) (mode w)))
  (device (vif (mac 00:11:22:33:44:55) (bridge xenbr2) (script vif-bridge))))
"""


class Seeds:
    """Seed documents per format (a plain class: hypothesis prints dataclasses field by field)."""

    def __init__(self, xml: list[str], xl: list[str], xm: list[str], sxpr: list[str]) -> None:
        self.xml, self.xl, self.xm, self.sxpr = xml, xl, xm, sxpr

    def __repr__(self) -> str:
        """Short, so hypothesis failure reports show the input rather than every seed."""
        return f"Seeds(xml={len(self.xml)}, xl={len(self.xl)}, xm={len(self.xm)}, sxpr={len(self.sxpr)})"


def _read_all(folder: Path, pattern: str) -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted(folder.glob(pattern))]


def _derived(xml_docs: list[str]) -> tuple[list[str], list[str]]:
    """xl and xm renderings of the example guests (what each formatter can express)."""
    xl, xm = [], []
    for doc in xml_docs:
        dom = parse_domain_xml(doc)
        for fmt, out in ((format_xl, xl), (format_xm, xm)):
            with contextlib.suppress(ConfigError):  # e.g. xm has no PVH guests
                out.append(fmt(dom))
    return xl, xm


@pytest.fixture(scope="session")
def seeds() -> Seeds:
    examples = _read_all(REPO_ROOT / "examples" / "desired", "*.xml")
    xl, xm = _derived(examples)
    xl += _read_all(REPO_ROOT / "examples" / "desired", "*.cfg")
    xml, sxpr = list(examples), [_SXPR_FALLBACK]
    if (SHARED_CORPUS / "MANIFEST.tsv").is_file():
        for suite in ("xlconfigdata", "xmconfigdata", "sexpr2xmldata", "libxlxml2domconfigdata"):
            xml += _read_all(SHARED_CORPUS / suite, "*.xml")
        xl += _read_all(SHARED_CORPUS / "xlconfigdata", "*.cfg")
        xm += _read_all(SHARED_CORPUS / "xmconfigdata", "*.cfg")
        sxpr += _read_all(SHARED_CORPUS / "sexpr2xmldata", "*.sexpr")
    return Seeds(xml=xml, xl=xl, xm=xm, sxpr=sxpr)
