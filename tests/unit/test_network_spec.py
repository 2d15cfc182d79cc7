"""Network requests -> libvirt network XML (validated by libvirt's own schema), and every refusal with its
field and reason."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from lxml import etree

from flint.contracts.common import ServiceError
from flint.contracts.networks import NetworkCreate, NetworkSpec
from flint.xml import Network
from services.provisioner.network_spec import apply_spec, build_network, ipv4_of, pxe_info

RNG = Path("/usr/share/libvirt/schemas/network.rng")


def spec(**fields) -> NetworkSpec:
    return msgspec.convert(fields, NetworkSpec)


def valid(net: Network) -> str:
    text = net.to_xml()
    if RNG.exists():
        rng = etree.RelaxNG(etree.parse(str(RNG)))
        assert rng.validate(etree.fromstring(text.encode())), f"{rng.error_log}\n{text}"
    return text


def refused(name: str = "n1", **fields) -> ServiceError:
    with pytest.raises(ServiceError) as exc:
        build_network(name, spec(**fields))
    return exc.value


def test_nat_network_with_dhcp_static_host_and_pxe():
    net = build_network("lab", spec(mode="nat", bridge="virbr42", interface="eth0", domain="lab.example", mtu=9000,
                                    ipv4={"address": "10.42.0.1/24",
                                          "dhcp_ranges": [{"start": "10.42.0.100", "end": "10.42.0.199"}],
                                          "dhcp_hosts": [{"mac": "52:54:00:AA:BB:CC", "ip": "10.42.0.10",
                                                          "name": "web"}],
                                          "tftp_root": "/srv/tftp", "bootp_file": "pxelinux.0"}))
    text = valid(net)
    assert net.forward_mode == "nat" and net.forward_dev == "eth0" and net.bridge_name == "virbr42"
    ip = net.ip()
    assert (ip.address, ip.prefix, ip.tftp_root, ip.bootp_file) == ("10.42.0.1", 24, "/srv/tftp", "pxelinux.0")
    assert [(h.mac, h.ip, h.name) for h in ip.dhcp_hosts] == [("52:54:00:aa:bb:cc", "10.42.0.10", "web")]
    assert "<domain name=\"lab.example\" localOnly=\"yes\"/>" in text and "<mtu size=\"9000\"/>" in text
    assert ipv4_of(net).address == "10.42.0.1/24"
    info = pxe_info(net)
    assert info.ready and "pxelinux.0" in info.note and "/srv/tftp" in info.note


def test_isolated_network_without_ip_is_pure_l2_and_cannot_serve_pxe():
    net = build_network("iso", spec())
    text = valid(net)
    assert "<ip" not in text and "<forward" not in text and net.mode == "isolated"
    info = pxe_info(net)
    assert not info.ready and "no IPv4 address" in info.note


def test_bridge_and_macvtap_networks():
    br = build_network("br", spec(mode="bridge", bridge="br0"))
    valid(br)
    assert (br.forward_mode, br.bridge_name, br.mode) == ("bridge", "br0", "bridge")
    assert "cannot see" in pxe_info(br).note
    mv = build_network("mv", spec(mode="macvtap", interface="eth1", macvtap_mode="vepa"))
    text = valid(mv)
    assert (mv.forward_mode, mv.forward_interfaces, mv.mode) == ("vepa", ["eth1"], "macvtap")
    assert "<bridge" not in text


def test_editing_keeps_what_the_spec_does_not_cover_and_drops_what_the_mode_forbids():
    current = Network.parse(
        "<network><name>lab</name><uuid>3e1f0c8a-5b6d-4f7e-8a9b-0c1d2e3f4a5b</uuid><forward mode='nat'/>"
        "<bridge name='virbr7' stp='on' delay='0'/><mac address='52:54:00:01:02:03'/>"
        "<dns><host ip='10.7.0.5'><hostname>db</hostname></host></dns>"
        "<ip address='10.7.0.1' prefix='24'><dhcp><range start='10.7.0.2' end='10.7.0.9'/></dhcp></ip>"
        "<ip family='ipv6' address='fd00:7::1' prefix='64'/></network>")
    edited = apply_spec(current, spec(mode="isolated", ipv4={"address": "10.8.0.1/24"}))
    text = valid(edited)
    assert edited.uuid == "3e1f0c8a-5b6d-4f7e-8a9b-0c1d2e3f4a5b" and edited.bridge_name == "virbr7"
    assert edited.mac == "52:54:00:01:02:03" and "<hostname>db</hostname>" in text
    assert edited.ip().address == "10.8.0.1" and len(edited.ip().dhcp_ranges) == 0
    assert edited.ip("ipv6").address == "fd00:7::1" and edited.forward_mode is None
    bridged = apply_spec(edited, spec(mode="bridge", bridge="br0"))
    text = valid(bridged)
    assert "<ip" not in text and "<dns" not in text and "<mac" not in text and bridged.bridge_name == "br0"


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"mode": "nat", "ipv4": {"address": "10.0.0.300/24"}}, "ipv4.address", "not a valid IPv4 address"),
    ({"mode": "nat", "ipv4": {"address": "10.0.0.1"}}, "ipv4.address", "no prefix length"),
    ({"mode": "nat", "ipv4": {"address": "10.0.0.0/24"}}, "ipv4.address", "network address"),
    ({"mode": "nat", "ipv4": {"address": "10.0.0.1/31"}}, "ipv4.address", "no room"),
    ({"mode": "nat"}, "ipv4.address", "needs an address"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "dhcp_ranges": [{"start": "10.0.1.10",
                                                                              "end": "10.0.1.20"}]}},
     "ipv4.dhcp_ranges[0].start", "outside the network's subnet 10.0.0.0/24"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "dhcp_ranges": [{"start": "10.0.0.10",
                                                                              "end": "10.0.0.255"}]}},
     "ipv4.dhcp_ranges[0].end", "broadcast"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "dhcp_ranges": [{"start": "10.0.0.20",
                                                                              "end": "10.0.0.10"}]}},
     "ipv4.dhcp_ranges[0].end", "before it starts"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.50/24", "dhcp_ranges": [{"start": "10.0.0.10",
                                                                               "end": "10.0.0.90"}]}},
     "ipv4.dhcp_ranges[0]", "host's own address"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "dhcp_ranges": [
        {"start": "10.0.0.10", "end": "10.0.0.90"}, {"start": "10.0.0.80", "end": "10.0.0.99"}]}},
     "ipv4.dhcp_ranges[1]", "overlaps"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "dhcp_hosts": [{"mac": "01:00:5e:00:00:01",
                                                                             "ip": "10.0.0.5"}]}},
     "ipv4.dhcp_hosts[0].mac", "unicast"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "dhcp_hosts": [{"mac": "52:54:00:00:00:01",
                                                                             "ip": "192.168.1.5"}]}},
     "ipv4.dhcp_hosts[0].ip", "outside"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "bootp_file": "pxelinux.0"}},
     "ipv4.bootp_file", "add a DHCP range"),
    ({"mode": "isolated", "ipv4": {"address": "10.0.0.1/24", "tftp_root": "srv/tftp"}},
     "ipv4.tftp_root", "absolute"),
    ({"mode": "bridge"}, "bridge", "name it"),
    ({"mode": "bridge", "bridge": "br0", "ipv4": {"address": "10.0.0.1/24"}}, "ipv4", "no address of its own"),
    ({"mode": "macvtap"}, "interface", "name it"),
    ({"mode": "isolated", "interface": "eth0"}, "interface", "leave the interface out"),
    ({"mode": "bridge", "bridge": "bad name!"}, "bridge", "not a valid interface name"),
    ({"domain": "not a domain"}, "domain", "not a DNS domain"),
])
def test_each_invalid_input_is_refused_with_its_field_and_reason(fields, field, words):
    err = refused(**fields)
    assert err.code == 422 and err.field == field and words in err.message, (err.field, err.message)


def test_bad_names_are_refused():
    err = refused(name="no/slash")
    assert (err.code, err.field) == (422, "name")


def test_create_body_shape():
    body = msgspec.json.decode(b'{"name": "x", "mode": "isolated"}', type=NetworkCreate)
    assert body.start and body.autostart and body.ipv4 is None
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"name": "x", "mode": "tunnel"}', type=NetworkCreate)
