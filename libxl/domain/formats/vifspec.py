"""vif specs per xl-network-configuration(5), shared by xl, xm (same syntax) and sxpr (same fields).

``vif = [ "mac=..,bridge=..,ip=..,script=..,model=..,type=..,vifname=..,rate=..,backend=.." ]``.
A bridge may carry Open vSwitch VLANs: ``br.42`` (one access tag) or ``br:42:43`` (a trunk), which
become ``<vlan>`` plus ``<virtualport type='openvswitch'/>``. The writer emits keys in libvirt's
order so the output compares equal with libvirt's own.

``rate`` (``N[GMK](B|b)/s[@N[s|ms|us]]``) is parsed here and nowhere else (``parse_vif_rate``): the
xl front end and the domain-XML builder take libxl's bytes per interval from it, the converters
libvirt's outbound bandwidth in KB/s. libvirt reads the prefixes as binary (K = 1024 bytes), xl as
decimal (K = 1000): ``VifRate`` keeps what was written so each reader applies its own scale.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libxl.domain.model import Interface, IPAddress, canonical_mac

_KEYS = ("mac", "bridge", "ip", "script", "model", "type", "vifname", "rate", "backend",
         "gatewaydev", "accel", "mtu", "devid", "trusted", "forwarddev")
_RATE = re.compile(r"(\d+)([GMK]?)([Bb])/s(?:@(\d+)(s|ms|us)?)?")
_RATE_SCALE_KB = {"G": 1024 * 1024, "M": 1024, "K": 1, "": 1 / 1024}
_XL_SCALE = {"G": 10**9, "M": 10**6, "K": 10**3, "": 1}
_USECS = {"s": 10**6, "ms": 10**3, "us": 1, None: 10**6}
#: xl's credit interval when the rate names none (xl-network-configuration(5)).
DEFAULT_RATE_INTERVAL_USECS = 50_000
#: Scripts that imply a bridged interface even without ``bridge=``.
_BRIDGE_SCRIPTS = ("vif-bridge", "vif-vnic")


@dataclass(frozen=True)
class VifRate:
    """One ``rate=`` value as written: amount, unit prefix, bits or bytes, credit interval."""
    amount: int
    prefix: str  # "", "K", "M" or "G"
    bits: bool
    interval_usecs: int

    @property
    def bytes_per_second(self) -> int:
        """xl's reading (decimal prefixes)."""
        value = self.amount * _XL_SCALE[self.prefix]
        return value // 8 if self.bits else value

    @property
    def bytes_per_interval(self) -> int:
        """libxl's ``rate_bytes_per_interval``."""
        return self.bytes_per_second * self.interval_usecs // 10**6

    @property
    def libvirt_kbytes_per_second(self) -> int:
        """libvirt's reading (binary prefixes), for ``<bandwidth><outbound average>``."""
        kbytes = self.amount * _RATE_SCALE_KB[self.prefix]
        return int(kbytes / 8 if self.bits else kbytes)


def parse_vif_rate(text: str) -> VifRate:
    """The one reader of the rate grammar, as strict as xl's (no blanks, upper-case prefixes, a
    bare interval number counts seconds). Raises ``ValueError`` with xl's reason."""
    m = _RATE.fullmatch(text)
    if not m:
        raise ValueError(f"invalid rate in {text!r}")
    amount, prefix, unit, interval, scale = m.groups()
    rate = VifRate(int(amount), prefix, unit == "b",
                   int(interval) * _USECS[scale] if interval else DEFAULT_RATE_INTERVAL_USECS)
    if rate.bytes_per_second == 0:
        raise ValueError(f"rate overflow in {text!r} (zero bytes per second)")
    if rate.interval_usecs == 0 or rate.interval_usecs >= 2**32:
        raise ValueError(f"replenishment interval overflow in {text!r}")
    return rate


def parse_rate(text: str) -> int:
    """``10240KB/s`` -> 10240 (libvirt's KB/s); ``100Mb/s`` -> 12800. Raises ``ValueError``."""
    try:
        return parse_vif_rate(text.strip()).libvirt_kbytes_per_second
    except ValueError:
        raise ValueError(f"malformed rate {text!r}") from None


def split_spec(text: str) -> dict[str, str]:
    """``a=b,c=d`` -> dict; every item must be ``key=value``."""
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _apply_bridge(nic: Interface, bridge: str) -> None:
    name, dot, tag = bridge.partition(".")
    if dot and tag.isdigit():
        nic.source_bridge, nic.vlan_tags, nic.virtualport = name, [int(tag)], "openvswitch"
        return
    name, colon, tags = bridge.partition(":")
    if colon and all(t.isdigit() for t in tags.split(":")):
        nic.source_bridge, nic.vlan_tags = name, [int(t) for t in tags.split(":")]
        nic.vlan_trunk, nic.virtualport = True, "openvswitch"
        return
    nic.source_bridge = bridge


def interface_from_settings(opts: dict[str, str], netfront_type: str) -> Interface:
    """Build an interface from vif settings (``netfront_type``: the ``type=`` that means PV nic)."""
    unknown = set(opts) - set(_KEYS)
    if unknown:
        raise ValueError(f"unknown vif parameter {sorted(unknown)[0]!r}")
    script = opts.get("script") or None
    bridge = opts.get("bridge") or ""
    nic = Interface(type="bridge" if bridge or script in _BRIDGE_SCRIPTS else "ethernet")
    if opts.get("mac"):
        nic.mac = canonical_mac(opts["mac"])
    if bridge:
        _apply_bridge(nic, bridge)
    nic.script = script
    if opts.get("model"):
        nic.model = opts["model"]
    elif opts.get("type") == netfront_type:
        nic.model = "netfront"
    for addr in (opts.get("ip") or "").split():
        ip, _, prefix = addr.partition("/")
        nic.ips.append(IPAddress(ip, "ipv6" if ":" in ip else "ipv4", int(prefix) if prefix else None))
    nic.target_dev = opts.get("vifname") or None
    if opts.get("rate"):
        nic.bandwidth_out_average = parse_rate(opts["rate"])
        if "@" in opts["rate"]:
            nic.rate = opts["rate"]
    nic.backend_domain = opts.get("backend") or None
    return nic


def parse_vif(text: str, netfront_type: str = "vif") -> Interface:
    return interface_from_settings(split_spec(text), netfront_type)


def format_vif(nic: Interface, netfront_type: str = "vif") -> str:
    """libvirt's order: mac, bridge, ip, script, model/type, vifname, rate, backend."""
    if nic.type not in ("bridge", "ethernet"):
        raise ValueError(f"interface type {nic.type!r} has no vif form (use type='bridge')")
    parts = [f"mac={nic.mac}"] if nic.mac else []
    if nic.type == "bridge" and nic.source_bridge:
        bridge = nic.source_bridge
        if nic.vlan_tags:
            sep = ":" if nic.vlan_trunk or len(nic.vlan_tags) > 1 else "."
            bridge += sep + sep.join(str(t) for t in nic.vlan_tags)
        parts.append(f"bridge={bridge}")
    if nic.ips:
        ips = " ".join(ip.address + (f"/{ip.prefix}" if ip.prefix is not None else "") for ip in nic.ips)
        parts.append(f"ip={ips}")
    if nic.script:
        parts.append(f"script={nic.script}")
    if nic.model == "netfront":
        parts.append(f"type={netfront_type}")
    elif nic.model:
        parts.append(f"model={nic.model}")
    if nic.target_dev:
        parts.append(f"vifname={nic.target_dev}")
    if nic.rate:
        parts.append(f"rate={nic.rate}")
    elif nic.bandwidth_out_average is not None:
        parts.append(f"rate={nic.bandwidth_out_average}KB/s")
    if nic.backend_domain:
        parts.append(f"backend={nic.backend_domain}")
    return ",".join(parts)
