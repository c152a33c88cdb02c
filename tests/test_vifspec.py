"""xl-network-configuration(5) vif specs."""

from __future__ import annotations

import pytest

from libxl.domain.formats.vifspec import format_vif, parse_rate, parse_vif
from libxl.domain.model import Interface, IPAddress


def test_bridge_script_model_vifname_backend() -> None:
    nic = parse_vif("mac=00:16:3E:66:92:9C,bridge=xenbr1,script=vif-bridge,model=e1000,vifname=v1,backend=d")
    assert (nic.type, nic.mac, nic.source_bridge, nic.script, nic.model, nic.target_dev, nic.backend_domain) \
        == ("bridge", "00:16:3e:66:92:9c", "xenbr1", "vif-bridge", "e1000", "v1", "d")


def test_no_bridge_is_ethernet_unless_a_bridge_script() -> None:
    assert parse_vif("mac=5a:36:0e:be:00:09").type == "ethernet"
    assert parse_vif("script=vif-bridge").type == "bridge"


def test_openvswitch_tag_and_trunk() -> None:
    tagged = parse_vif("bridge=ovsbr0.42")
    assert (tagged.source_bridge, tagged.vlan_tags, tagged.vlan_trunk, tagged.virtualport) == \
        ("ovsbr0", [42], False, "openvswitch")
    trunk = parse_vif("bridge=ovsbr0:42:43")
    assert (trunk.source_bridge, trunk.vlan_tags, trunk.vlan_trunk) == ("ovsbr0", [42, 43], True)
    assert parse_vif("bridge=br.lan").source_bridge == "br.lan"


def test_ip_list_and_netfront_type() -> None:
    nic = parse_vif("ip=10.0.0.1 2000::1/64,type=vif")
    assert nic.ips == [IPAddress("10.0.0.1", "ipv4"), IPAddress("2000::1", "ipv6", 64)]
    assert nic.model == "netfront"
    assert parse_vif("type=netfront", netfront_type="netfront").model == "netfront"
    assert parse_vif("type=ioemu").model is None


@pytest.mark.parametrize(("rate", "kbs"), [("10240KB/s", 10240), ("1MB/s", 1024), ("8Mb/s", 1024),
                                           ("1GB/s", 1048576), ("2048B/s", 2), ("100MB/s@20ms", 102400)])
def test_rates(rate: str, kbs: int) -> None:
    assert parse_rate(rate) == kbs


def test_bad_rate_and_unknown_key() -> None:
    with pytest.raises(ValueError, match="rate"):
        parse_vif("rate=fast")
    with pytest.raises(ValueError, match="colour"):
        parse_vif("colour=red")
    with pytest.raises(ValueError, match="key=value"):
        parse_vif("xenbr0")


def test_rate_with_interval_is_kept_verbatim() -> None:
    nic = parse_vif("rate=100MB/s@20ms")
    assert format_vif(nic) == "rate=100MB/s@20ms"


def test_format_in_libvirt_order_and_round_trip() -> None:
    nic = Interface(type="bridge", mac="00:16:3e:66:92:9c", source_bridge="xenbr1", script="vif-bridge",
                    ips=[IPAddress("10.0.0.1", "ipv4"), IPAddress("2000::1", "ipv6")], model="netfront",
                    target_dev="vif9", bandwidth_out_average=10240, backend_domain="d")
    text = format_vif(nic)
    assert text == ("mac=00:16:3e:66:92:9c,bridge=xenbr1,ip=10.0.0.1 2000::1,script=vif-bridge,type=vif,"
                    "vifname=vif9,rate=10240KB/s,backend=d")
    assert parse_vif(text) == nic
    trunk = parse_vif("bridge=ovsbr0:42:43")
    assert format_vif(trunk) == "bridge=ovsbr0:42:43" and format_vif(parse_vif("bridge=b.7")) == "bridge=b.7"


def test_network_interfaces_have_no_vif_form() -> None:
    with pytest.raises(ValueError, match="network"):
        format_vif(Interface(type="network", source_network="default"))
