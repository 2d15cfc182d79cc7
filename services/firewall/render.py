"""Rulesets and VM settings -> libvirt nwfilter XML, through the flint.xml models. Pure.

Layout (names are the contract with libvirt and with other hosts):

- ``flint-rs-<ruleset>``: one filter per ruleset, its enabled rules in order, every rule at priority 0.
- ``flint-vm-<first 8 hex of the VM uuid>-<mac without colons>``: one filter per VM NIC, referenced by the
  NIC's ``<filterref>``. It holds, in this order of evaluation:
    -900  accept ESTABLISHED,RELATED both ways (IPv4 and IPv6): replies always pass, so a drop rule only
          ever stops new traffic (Proxmox's conntrack rule);
       0  the VM's rulesets (``<filterref>``s) in the VM's order;
     900  default policy drop only: DHCP/DHCPv6 replies and IPv6 neighbour discovery in, so the guest keeps
          its address;
    1000  default policy drop only: drop whatever else comes in (NEW and INVALID, IPv4 and IPv6).
  and ``clean-traffic`` (with the NIC's IP parameter when known) when anti-spoofing is on.

libvirt sorts a NIC's rules by priority and keeps equal priorities in the order it meets them walking the
filter tree (measured on libvirt 9.0 and asserted by the e2e test): so a VM's rulesets apply in the VM's
order and a ruleset's rules in the ruleset's order, although one ruleset filter serves many VMs.

Drop and reject rules match ``state='NEW,INVALID'``: without a state libvirt also drops the reverse
direction (a ``drop in all`` would stop the VM's own outgoing traffic). Accept rules keep libvirt's
default state matching (NEW,ESTABLISHED one way, ESTABLISHED back).
"""

from __future__ import annotations

import ipaddress

from flint.contracts.firewall import MacroEntry, Rule, RulesetDoc, VMFirewallSettings
from flint.xml import Filter, FilterParameter, FilterRef
from flint.xml import Rule as XRule
from services.firewall.macros import find_macro
from services.firewall.validate import parse_ports

RULESET_PREFIX = "flint-rs-"
NIC_PREFIX = "flint-vm-"
CLEAN_TRAFFIC = "clean-traffic"
RULE_PRIORITY = 0
ESTABLISHED_PRIORITY = -900
SERVICE_PRIORITY = 900
POLICY_PRIORITY = 1000
DROP_STATE = "NEW,INVALID"

_PROTO = {
    ("tcp", 4): "tcp", ("tcp", 6): "tcp-ipv6",
    ("udp", 4): "udp", ("udp", 6): "udp-ipv6",
    ("icmp", 4): "icmp", ("icmp", 6): "icmpv6",
    ("all", 4): "all", ("all", 6): "all-ipv6",
}
# ICMP types with an ICMPv6 twin: echo request and reply
_ICMP6_TWIN = {8: 128, 0: 129}


def ruleset_filter_name(name: str) -> str:
    return f"{RULESET_PREFIX}{name}"


def nic_filter_name(vm_uuid: str, mac: str) -> str:
    return f"{NIC_PREFIX}{vm_uuid.replace('-', '')[:8].lower()}-{mac.replace(':', '').lower()}"


def nic_filter_prefix(vm_uuid: str) -> str:
    return f"{NIC_PREFIX}{vm_uuid.replace('-', '')[:8].lower()}-"


def _entries(rule: Rule) -> list[MacroEntry]:
    if rule.macro:
        macro = find_macro(rule.macro)
        if macro is None:  # validated on the way in; a macro removed from the table matches nothing
            return []
        return macro.entries
    return [MacroEntry(protocol=rule.protocol or "all", ports=rule.ports if isinstance(rule.ports, str) else None)]


def _families(rule: Rule) -> list[int]:
    for value in (rule.source, rule.destination):
        if value:
            return [ipaddress.ip_network(value, strict=False).version]
    return [4, 6]


def _set_net(xrule: XRule, side: str, value: str | None) -> None:
    if not value:
        return
    net = ipaddress.ip_network(value, strict=False)
    setattr(xrule, f"{side}ipaddr", str(net.network_address))
    if net.prefixlen != net.max_prefixlen:
        setattr(xrule, f"{side}ipmask", str(net.prefixlen))


def rule_elements(rule: Rule, priority: int = RULE_PRIORITY) -> list[XRule]:
    """The nwfilter ``<rule>``s one Flint rule becomes: per macro entry, port range and address family."""
    if not rule.enabled:
        return []
    out: list[XRule] = []
    for entry in _entries(rule):
        ranges: list[tuple[int, int] | None] = list(parse_ports(entry.ports)) if entry.ports else [None]
        for port_range in ranges:
            for family in _families(rule):
                xrule = XRule(action=rule.action, direction=rule.direction, priority=priority,
                              protocol=_PROTO[(entry.protocol, family)])
                _set_net(xrule, "src", rule.source)
                _set_net(xrule, "dst", rule.destination)
                if port_range is not None:
                    xrule.dstportstart = port_range[0]
                    if port_range[1] != port_range[0]:
                        xrule.dstportend = port_range[1]
                if entry.icmp_type is not None:
                    xrule.type = entry.icmp_type if family == 4 else _ICMP6_TWIN.get(entry.icmp_type, entry.icmp_type)
                if rule.action in ("drop", "reject"):
                    xrule.state = DROP_STATE
                if rule.comment:
                    xrule.comment = rule.comment
                out.append(xrule)
    return out


def ruleset_filter(doc: RulesetDoc, uuid: str | None = None) -> Filter:
    flt = Filter(name=ruleset_filter_name(doc.name), chain="root")
    if uuid:
        flt.uuid = uuid
    for rule in doc.rules:
        for xrule in rule_elements(rule):
            flt.rules.append(xrule)
    return flt


def _rule(action: str, direction: str, priority: int, protocol: str, **fields) -> XRule:
    return XRule(action=action, direction=direction, priority=priority, protocol=protocol, **fields)


def nic_filter(name: str, settings: VMFirewallSettings, ip_addresses: list[str] | None = None,
               uuid: str | None = None, rulesets: list[str] | None = None) -> Filter:
    """A VM NIC's own filter. ``rulesets`` (default: the settings') lets a caller leave out unknown ones."""
    flt = Filter(name=name, chain="root")
    if uuid:
        flt.uuid = uuid
    if settings.anti_spoofing:
        ref = flt.filterrefs.append(FilterRef(filter=CLEAN_TRAFFIC))
        for ip in ip_addresses or []:  # several addresses: the IP parameter repeats
            ref.parameters.append(FilterParameter(name="IP", value=ip))
    names = settings.rulesets if rulesets is None else rulesets
    for rs in names:
        flt.filterrefs.append(FilterRef(filter=ruleset_filter_name(rs)))
    if names or settings.default_policy == "drop":
        for proto in ("all", "all-ipv6"):
            flt.rules.append(_rule("accept", "inout", ESTABLISHED_PRIORITY, proto, state="ESTABLISHED,RELATED"))
    if settings.default_policy == "drop":
        flt.rules.append(_rule("accept", "in", SERVICE_PRIORITY, "udp", srcportstart=67, dstportstart=68,
                               comment="DHCP replies"))
        flt.rules.append(_rule("accept", "in", SERVICE_PRIORITY, "udp-ipv6", srcportstart=547, dstportstart=546,
                               comment="DHCPv6 replies"))
        for icmp_type, what in ((134, "router advertisement"), (135, "neighbour solicitation"),
                                (136, "neighbour advertisement")):
            flt.rules.append(_rule("accept", "in", SERVICE_PRIORITY, "icmpv6", statematch=False, type=icmp_type,
                                   comment=f"IPv6 {what}"))
        for proto in ("all", "all-ipv6"):
            flt.rules.append(_rule("drop", "in", POLICY_PRIORITY, proto, state=DROP_STATE,
                                   comment="default policy drop"))
    return flt
