"""Rulesets and VM settings -> nwfilter XML: one golden file per rule shape, each valid for libvirt."""

from __future__ import annotations

import pytest

from flint.contracts.firewall import Rule, RulesetDoc, RulesetIn, VMFirewallSettings
from flint.xml import Filter
from services.firewall.render import (
    nic_filter,
    nic_filter_name,
    nic_filter_prefix,
    rule_elements,
    ruleset_filter,
    ruleset_filter_name,
)
from services.firewall.validate import normalize_ruleset

VM = "5b0c3e2d-8f1a-4c6b-9d7e-1a2b3c4d5e6f"


def _ruleset(name: str, *rules: Rule) -> RulesetDoc:
    """Through the same normalization the API applies, as KV would hold it."""
    final, description, normalized = normalize_ruleset(RulesetIn(name=name, rules=list(rules)))
    return RulesetDoc(name=final, description=description, rules=normalized)


SHAPES = {
    "tcp-port": [Rule(protocol="tcp", ports=22, comment="SSH")],
    "port-range": [Rule(protocol="tcp", ports="1000-2000")],
    "udp-list": [Rule(protocol="udp", ports=[53, "123", "5000-5010"], direction="out")],
    "icmp": [Rule(protocol="icmp")],
    "all": [Rule(protocol="all", action="accept", direction="out")],
    "cidr-v4": [Rule(protocol="tcp", ports="443", source="10.0.0.0/8", destination="192.168.1.10")],
    "cidr-v6": [Rule(protocol="tcp", ports="443", source="fd00::/64"), Rule(protocol="icmp", source="2001:db8::1")],
    "macro": [Rule(macro="ssh", source="10.1.0.0/16"), Rule(macro="DNS", direction="out"), Rule(macro="Ping")],
    "disabled": [Rule(protocol="tcp", ports=22), Rule(protocol="tcp", ports=23, enabled=False),
                 Rule(protocol="tcp", ports=24)],
    "drop-reject": [Rule(protocol="tcp", ports=22), Rule(action="reject", protocol="tcp", ports=25),
                    Rule(action="drop")],
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_ruleset_shapes(golden, shape):
    flt = ruleset_filter(_ruleset(f"t-{shape}", *SHAPES[shape]))
    text = golden.check(flt, f"rs-{shape}-out.xml")
    golden.validate(text)


def test_ruleset_filter_keeps_rule_order_at_one_priority():
    flt = ruleset_filter(_ruleset("order", Rule(protocol="tcp", ports=1), Rule(protocol="udp", ports=2),
                                  Rule(action="drop")))
    assert [(r.protocol, r.dstportstart) for r in flt.rules] == [
        ("tcp", 1), ("tcp-ipv6", 1), ("udp", 2), ("udp-ipv6", 2), ("all", None), ("all-ipv6", None)]
    assert {r.priority for r in flt.rules} == {0}


def test_disabled_rule_is_left_out():
    assert rule_elements(Rule(protocol="tcp", ports="22", enabled=False)) == []


def test_drop_rules_match_new_traffic_only_accept_rules_keep_libvirts_states():
    accept, = rule_elements(Rule(protocol="tcp", ports="22", source="10.0.0.0/8"))
    drop, = rule_elements(Rule(action="drop", protocol="tcp", ports="22", source="10.0.0.0/8"))
    assert accept.state is None and drop.state == "NEW,INVALID"


def test_cidr_picks_the_family_and_a_single_address_has_no_mask():
    v6, = rule_elements(Rule(protocol="udp", ports="53", destination="2001:db8::53/128"))
    assert (v6.protocol, v6.dstipaddr, v6.dstipmask) == ("udp-ipv6", "2001:db8::53", None)
    v4, = rule_elements(Rule(protocol="all", source="172.16.0.0/12"))
    assert (v4.protocol, v4.srcipaddr, v4.srcipmask) == ("all", "172.16.0.0", "12")


def test_ping_macro_uses_echo_request_for_both_families():
    v4, v6 = rule_elements(Rule(macro="Ping"))
    assert (v4.protocol, v4.type, v6.protocol, v6.type) == ("icmp", 8, "icmpv6", 128)


def test_nic_filter_default_policy_drop(golden):
    settings = VMFirewallSettings(rulesets=["web", "ssh"], default_policy="drop")
    text = golden.check(nic_filter(nic_filter_name(VM, "52:54:00:0a:0b:0c"), settings), "nic-default-drop-out.xml")
    golden.validate(text)


def test_nic_filter_clean_traffic_with_ip_parameters(golden):
    settings = VMFirewallSettings(rulesets=["web"], anti_spoofing=True)
    flt = nic_filter(nic_filter_name(VM, "52:54:00:0a:0b:0c"), settings, ["10.20.0.11", "10.20.0.12"],
                     uuid="0f4f0e4c-1d7b-4d2e-9a0b-3c5d6e7f8091")
    text = golden.check(flt, "nic-clean-traffic-out.xml")
    golden.validate(text)


def test_nic_filter_anti_spoofing_without_address_lets_libvirt_learn_it(golden):
    flt = nic_filter(nic_filter_name(VM, "52:54:00:0a:0b:0c"), VMFirewallSettings(anti_spoofing=True))
    text = golden.check(flt, "nic-learn-ip-out.xml")
    golden.validate(text)
    assert [r.filter for r in flt.filterrefs] == ["clean-traffic"] and not flt.filterrefs[0].parameters
    assert len(flt.rules) == 0  # nothing else to filter: no conntrack rule either


def test_nic_filter_accept_policy_has_no_final_drop():
    flt = nic_filter("flint-vm-x", VMFirewallSettings(rulesets=["a"]))
    assert [r.action for r in flt.rules] == ["accept", "accept"]
    assert [r.priority for r in flt.rules] == [-900, -900]


def test_nic_filter_leaves_out_rulesets_the_caller_does_not_know():
    flt = nic_filter("flint-vm-x", VMFirewallSettings(rulesets=["a", "gone", "b"]), rulesets=["a", "b"])
    assert [r.filter for r in flt.filterrefs] == ["flint-rs-a", "flint-rs-b"]


def test_names():
    assert ruleset_filter_name("web") == "flint-rs-web"
    assert nic_filter_name(VM, "52:54:00:AA:bb:0C") == "flint-vm-5b0c3e2d-525400aabb0c"
    assert nic_filter_name(VM, "52:54:00:aa:bb:0c").startswith(nic_filter_prefix(VM))
    Filter(name=nic_filter_name(VM, "52:54:00:aa:bb:0c"))  # a valid libvirt filter name
    Filter(name=ruleset_filter_name("A" * 48))
