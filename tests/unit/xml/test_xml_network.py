"""Networks: NAT with DHCP/PXE, isolated without any <ip>, bridge and macvtap modes."""

from __future__ import annotations

import pytest

from flint.xml import DhcpHost, DhcpRange, Network, NetworkIP


def test_build_nat_network_with_dhcp_pxe_and_ipv6(golden):
    net = Network(name="lab", uuid="3e1f0c8a-5b6d-4f7e-8a9b-0c1d2e3f4a5b", forward_mode="nat",
                  nat_port_start=1024, nat_port_end=65535, bridge_name="virbr10", bridge_stp=True,
                  bridge_delay=0, mac="52:54:00:aa:bb:cc", domain_name="lab.internal", domain_local_only=True)
    v4 = net.ips.append(NetworkIP(address="10.20.0.1", netmask="255.255.255.0", tftp_root="/srv/tftp",
                                  bootp_file="undionly.kpxe"))
    v4.dhcp_ranges.append(DhcpRange(start="10.20.0.100", end="10.20.0.199"))
    v4.dhcp_hosts.append(DhcpHost(mac="52:54:00:47:2d:c5", name="web01", ip="10.20.0.11"))
    v6 = net.ips.append(NetworkIP(family="ipv6", address="fd00:20::1", prefix=64))
    v6.dhcp_ranges.append(DhcpRange(start="fd00:20::100", end="fd00:20::1ff"))
    text = golden.check(net, "network-build-nat-out.xml")
    golden.validate(text, "network")
    assert not net.isolated and net.ip("ipv6").prefix == 64 and net.ip().bootp_file == "undionly.kpxe"


def test_build_isolated_network_has_no_ip_element(golden):
    net = Network(name="isolated0", bridge_name="flint-iso0", bridge_stp=False, bridge_delay=0)
    text = golden.check(net, "network-build-isolated-out.xml")
    golden.validate(text, "network")
    assert "<ip" not in text and "<forward" not in text
    assert net.isolated and net.ip() is None and len(net.ips) == 0


def test_build_host_bridge_and_macvtap_networks(golden):
    bridged = Network(name="host-br0", forward_mode="bridge", bridge_name="br0")
    golden.validate(golden.check(bridged, "network-build-bridge-out.xml"), "network")
    macvtap = Network(name="macvtap", forward_mode="passthrough", forward_interfaces=["eth1", "eth2"])
    golden.validate(golden.check(macvtap, "network-build-macvtap-out.xml"), "network")
    assert macvtap.forward_interfaces == ["eth1", "eth2"] and macvtap.bridge_name is None


def test_read_and_edit_libvirt_default_network(golden):
    source = golden.read("network-default-in.xml")
    net = Network.parse(source)
    assert golden.canonical(net.to_xml()) == golden.canonical(source)
    assert (net.name, net.forward_mode, net.bridge_name, net.bridge_stp, net.bridge_delay) == (
        "default", "nat", "virbr0", True, 0)
    ip = net.ip()
    assert (ip.address, ip.netmask, ip.prefix, ip.family) == ("192.168.122.1", "255.255.255.0", None, None)
    assert [(r.start, r.end) for r in ip.dhcp_ranges] == [("192.168.122.2", "192.168.122.254")]
    ip.dhcp_hosts.append(DhcpHost(mac="52:54:00:47:2d:c5", name="web01", ip="192.168.122.11"))
    ip.dhcp_ranges[0].start = "192.168.122.100"
    net.forward_mode = None  # make it isolated: no forwarding, DHCP stays
    text = golden.check(net, "network-default-edit-out.xml")
    golden.validate(text, "network")


def test_drop_all_addresses():
    net = Network.parse(
        "<network><name>n</name><bridge name='virbr9'/><ip address='10.0.0.1' prefix='24'/></network>")
    net.ips.clear()
    assert net.to_xml() == '<network>\n  <name>n</name>\n  <bridge name="virbr9"/>\n</network>\n'


def test_network_name_is_validated():
    with pytest.raises(ValueError, match="network name"):
        Network(name="lab net")
