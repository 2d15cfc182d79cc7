"""nwfilter: libvirt's built-in filters read back, Flint-style filters built, rules edited."""

from __future__ import annotations

import pytest

from flint.xml import Filter, FilterParameter, FilterRef, Interface, Rule


def test_builtin_filters_round_trip(golden):
    for name in ("nwfilter-clean-traffic-in.xml", "nwfilter-allow-dhcp-in.xml"):
        source = golden.read(name)
        assert golden.canonical(Filter.parse(source).to_xml()) == golden.canonical(source)


def test_read_builtin_filters(golden):
    clean = Filter.parse(golden.read("nwfilter-clean-traffic-in.xml"))
    assert (clean.name, clean.chain, clean.priority) == ("clean-traffic", "root", None)
    assert [r.filter for r in clean.filterrefs] == [
        "no-mac-spoofing", "no-ip-spoofing", "allow-incoming-ipv4", "no-arp-spoofing", "no-other-l2-traffic",
        "qemu-announce-self"]
    assert [(r.action, r.direction, r.priority, r.protocol) for r in clean.rules] == [
        ("accept", "out", -650, "mac"), ("accept", "inout", -500, "mac")]
    dhcp = Filter.parse(golden.read("nwfilter-allow-dhcp-in.xml"))
    out = dhcp.rules[0]
    assert (out.protocol, out.srcipaddr, out.dstipaddr, out.srcportstart, out.dstportstart) == (
        "ip", "0.0.0.0", "255.255.255.255", 68, 67)
    assert (dhcp.chain, dhcp.priority) == ("ipv4", -700)


def test_build_vm_nic_filter(golden):
    nic_filter = Filter(name="flint-web01-nic0", chain="root", uuid="5b0c3e2d-8f1a-4c6b-9d7e-1a2b3c4d5e6f")
    nic_filter.filterrefs.append(FilterRef(filter="clean-traffic", parameters={"IP": "10.20.0.11"}))
    nic_filter.filterrefs.append(FilterRef(filter="flint-rs-web"))
    text = golden.check(nic_filter, "nwfilter-build-nic-out.xml")
    golden.validate(text, "nwfilter")


def test_build_ruleset_filter(golden):
    rs = Filter(name="flint-rs-web", chain="root", priority=-500)
    rs.rules.append(Rule(action="accept", direction="in", priority=500, protocol="tcp", srcipaddr="10.0.0.0",
                         srcipmask="8", dstportstart=22, state="NEW", comment="SSH from the LAN"))
    rs.rules.append(Rule(action="accept", direction="in", priority=510, protocol="tcp", dstportstart=8000,
                         dstportend=8080, comment="app ports"))
    rs.rules.append(Rule(action="accept", direction="in", priority=520, protocol="icmp", type=8))
    rs.rules.append(Rule(action="accept", direction="in", priority=530, protocol="tcp-ipv6", dstportstart=443,
                         dstipaddr="fd00::", dstipmask="64"))
    rs.rules.append(Rule(action="accept", direction="out", priority=900, protocol="all", statematch=False))
    rs.rules.append(Rule(action="drop", direction="in", priority=1000, protocol="all"))
    text = golden.check(rs, "nwfilter-build-ruleset-out.xml")
    golden.validate(text, "nwfilter")


def test_edit_rules_in_place(golden):
    rs = Filter.parse(golden.read("nwfilter-build-ruleset-out.xml"))
    ssh = rs.rules[0]
    ssh.srcipaddr, ssh.srcipmask, ssh.comment = "192.168.1.0", "24", None
    ssh.protocol = "udp"  # keeps the match attributes
    rs.rules.remove(rs.rules[2])
    assert [(r.protocol, r.dstportstart) for r in rs.rules][:2] == [("udp", 22), ("tcp", 8000)]
    assert ssh.srcipaddr == "192.168.1.0" and ssh.comment is None and ssh.state == "NEW"
    assert rs.rules[-2].statematch is False and rs.rules[-1].statematch is None
    text = golden.check(rs, "nwfilter-edit-ruleset-out.xml")
    golden.validate(text, "nwfilter")


def test_rule_protocol_is_checked_and_needed_first():
    with pytest.raises(ValueError, match="rule protocol 'smtp'"):
        Rule(protocol="smtp")
    with pytest.raises(ValueError, match="element missing"):
        Rule().dstportstart = 22


def test_filter_name_is_validated():
    with pytest.raises(ValueError, match="filter name"):
        Filter(name="a;b")


def test_interface_filter_reference():
    nic = Interface(type="network", source_network="lab")
    nic.set_filter("flint-web01-nic0", {"IP": "10.0.0.5", "MAC": "52:54:00:00:00:01"})
    assert nic.filter_params() == {"IP": ["10.0.0.5"], "MAC": ["52:54:00:00:00:01"]}
    nic.filter_parameters.append(FilterParameter(name="IP", value="10.0.0.6"))
    assert nic.filter_params()["IP"] == ["10.0.0.5", "10.0.0.6"]
    nic.filter = None  # dropping the reference drops its parameters too
    assert "filterref" not in nic.to_xml() and nic.filter_params() == {}
    nic.set_filter("other")
    assert '<filterref filter="other"/>' in nic.to_xml()
    nic.set_filter(None)
    assert "filterref" not in nic.to_xml()
