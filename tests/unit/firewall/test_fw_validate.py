"""Every refusal names its field and says why; what passes is stored in one canonical form."""

from __future__ import annotations

import msgspec
import pytest

from flint.contracts.firewall import Rule, RulesetIn, VMFirewallSettings
from services.firewall.macros import MACROS, find_macro
from services.firewall.validate import (
    FieldErrors,
    format_ports,
    normalize_ruleset,
    normalize_vm_settings,
    parse_ports,
)


def refused(*rules: Rule, name: str = "web", description: str = "") -> list[dict]:
    with pytest.raises(FieldErrors) as info:
        normalize_ruleset(RulesetIn(name=name, description=description, rules=list(rules)))
    assert info.value.code == 400
    return info.value.errors


def one(*rules: Rule) -> tuple[str, str]:
    errors = refused(*rules)
    assert len(errors) == 1, errors
    return errors[0]["field"], errors[0]["message"]


@pytest.mark.parametrize(("ports", "canonical"), [
    (22, "22"), ("22", "22"), ("80,443", "80,443"), (" 80 , 443 ", "80,443"), ("1000-2000", "1000-2000"),
    ([80, "443", "8000-8080"], "80,443,8000-8080"), ("5-5", "5"), (65535, "65535"), ("1", "1"),
])
def test_ports_accepted_and_canonical(ports, canonical):
    _, _, rules = normalize_ruleset(RulesetIn(name="a", rules=[Rule(protocol="tcp", ports=ports)]))
    assert rules[0].ports == canonical


@pytest.mark.parametrize(("ports", "reason"), [
    (0, "port 0 is out of range"),
    (65536, "port 65536 is out of range"),
    ("70000", "out of range"),
    ("2000-1000", "range 2000-1000 is reversed: write 1000-2000"),
    ("22,", "an empty entry"),
    ("", "ports is empty"),
    ([], "ports is empty"),
    ("ssh", "'ssh' is not a port"),
    ("1-2-3", "is not a port or a range"),
    (-1, "out of range"),
    (",".join(str(p) for p in range(1, 20)), "at most 16"),
])
def test_bad_ports(ports, reason):
    field, message = one(Rule(protocol="tcp"), Rule(protocol="udp", ports=ports))
    assert field == "rules[1].ports"
    assert reason in message


@pytest.mark.parametrize("protocol", ["icmp", "all", None])
def test_ports_only_with_tcp_or_udp(protocol):
    field, message = one(Rule(protocol=protocol, ports=22))
    assert field == "rules[0].ports"
    assert "ports need protocol tcp or udp" in message and (protocol or "all") in message


@pytest.mark.parametrize(("value", "reason"), [
    ("10.0.0.300/8", "not an IPv4 or IPv6 address"),
    ("10.0.0.5/8", "has host bits set: did you mean 10.0.0.0/8?"),
    ("10.0.0.0/33", "not an IPv4 or IPv6 address"),
    ("fd00::/129", "not an IPv4 or IPv6 address"),
    ("example.com", "not an IPv4 or IPv6 address"),
    ("", "an empty address"),
])
@pytest.mark.parametrize("side", ["source", "destination"])
def test_bad_addresses(side, value, reason):
    field, message = one(Rule(protocol="tcp", ports=22, **{side: value}))
    assert field == f"rules[0].{side}"
    assert reason in message


def test_addresses_normalized():
    _, _, rules = normalize_ruleset(RulesetIn(name="a", rules=[
        Rule(source="10.0.0.7", destination="192.168.0.0/16"), Rule(source="FD00:0::/64")]))
    assert (rules[0].source, rules[0].destination, rules[1].source) == ("10.0.0.7/32", "192.168.0.0/16", "fd00::/64")


def test_mixed_families_refused():
    field, message = one(Rule(source="10.0.0.0/8", destination="fd00::1"))
    assert field == "rules[0].destination" and "IPv4" in message and "IPv6" in message


def test_macros():
    _, _, rules = normalize_ruleset(RulesetIn(name="a", rules=[Rule(macro="ssh"), Rule(macro="PING", direction="in")]))
    assert [r.macro for r in rules] == ["SSH", "Ping"]
    assert all(r.protocol is None and r.ports is None for r in rules)
    field, message = one(Rule(macro="gopher"))
    assert field == "rules[0].macro" and "unknown macro 'gopher'" in message and "SSH" in message
    errors = refused(Rule(macro="SSH", protocol="tcp", ports=22))
    assert [e["field"] for e in errors] == ["rules[0].protocol", "rules[0].ports"]


def test_every_macro_is_valid():
    assert len({m.name.lower() for m in MACROS}) == len(MACROS)
    for macro in MACROS:
        assert find_macro(macro.name.upper()) is macro
        for entry in macro.entries:
            assert entry.protocol in ("tcp", "udp", "icmp")
            assert (entry.ports is None) == (entry.protocol == "icmp")
            if entry.ports:
                assert format_ports(parse_ports(entry.ports)) == entry.ports
    assert {"SSH", "HTTP", "HTTPS", "DNS", "Ping", "RDP"} <= {m.name for m in MACROS}


def test_comment_and_description():
    field, message = one(Rule(comment="x" * 257))
    assert field == "rules[0].comment" and "256" in message
    field, _ = one(Rule(comment="two\nlines"))
    assert field == "rules[0].comment"
    errors = refused(description="d" * 1001)
    assert errors[0]["field"] == "description"


@pytest.mark.parametrize("name", ["", "-web", "web.prod", "a b", "x" * 49, "web/1", "ü"])
def test_bad_ruleset_names(name):
    errors = refused(name=name)
    assert errors[0]["field"] == "name"


def test_every_problem_reported_at_once():
    errors = refused(Rule(protocol="icmp", ports=1), Rule(protocol="tcp", ports="9-1", source="nope"),
                     name="bad name")
    assert [e["field"] for e in errors] == ["name", "rules[0].ports", "rules[1].ports", "rules[1].source"]


def test_rename_through_put_refused():
    with pytest.raises(FieldErrors) as info:
        normalize_ruleset(RulesetIn(name="other"), name="web")
    assert info.value.field == "name" and "cannot be renamed" in info.value.message


def test_shape_errors_come_from_decoding_with_their_path():
    with pytest.raises(msgspec.ValidationError, match=r"rules\[1\]\.protocol"):
        msgspec.json.decode(b'{"name":"a","rules":[{},{"protocol":"sctp"}]}', type=RulesetIn)
    with pytest.raises(msgspec.ValidationError, match=r"rules\[0\]\.action"):
        msgspec.json.decode(b'{"name":"a","rules":[{"action":"allow"}]}', type=RulesetIn)
    with pytest.raises(msgspec.ValidationError, match=r"rules\[0\]"):
        msgspec.json.decode(b'{"name":"a","rules":[{"port":22}]}', type=RulesetIn)


# ---- VM settings ---------------------------------------------------------------------------------

MACS = ["52:54:00:00:00:01", "52:54:00:00:00:02"]


def test_vm_settings_normalized():
    settings = normalize_vm_settings(
        VMFirewallSettings(rulesets=["web", "ssh"], anti_spoofing=True, default_policy="drop",
                           addresses={"52:54:00:00:00:0A".replace("0A", "01"): [" 10.0.0.5 "]}),
        {"web", "ssh", "db"}, MACS)
    assert settings.rulesets == ["web", "ssh"]
    assert settings.addresses == {"52:54:00:00:00:01": ["10.0.0.5"]}


def test_vm_settings_unknown_and_duplicate_rulesets():
    with pytest.raises(FieldErrors) as info:
        normalize_vm_settings(VMFirewallSettings(rulesets=["web", "nope"]), {"web"}, MACS)
    assert info.value.code == 422 and info.value.errors == [
        {"field": "rulesets[1]", "message": "no ruleset named 'nope'"}]
    with pytest.raises(FieldErrors) as info:
        normalize_vm_settings(VMFirewallSettings(rulesets=["web", "web"]), {"web"}, MACS)
    assert info.value.code == 400 and info.value.field == "rulesets[1]" and "twice" in info.value.message


def test_vm_settings_addresses():
    with pytest.raises(FieldErrors) as info:
        normalize_vm_settings(VMFirewallSettings(addresses={
            "52:54:00:00:00:09": ["10.0.0.1"], "zz": ["10.0.0.1"], "52:54:00:00:00:02": ["fd00::1", "10.0.0.300"]}),
            set(), MACS)
    fields = [e["field"] for e in info.value.errors]
    assert fields == ["addresses.52:54:00:00:00:09", "addresses.zz", "addresses.52:54:00:00:00:02[0]",
                      "addresses.52:54:00:00:00:02[1]"]
    assert "no NIC with MAC" in info.value.errors[0]["message"]
    assert "IPv4 addresses only" in info.value.errors[2]["message"]


def test_vm_settings_active():
    assert not VMFirewallSettings().active
    assert VMFirewallSettings(default_policy="drop").active
    assert VMFirewallSettings(anti_spoofing=True).active
    assert VMFirewallSettings(rulesets=["a"]).active
