"""Firewall: rulesets (global, in KV flint-firewall), a VM's firewall settings, and the nwfilter listing.

A rule's ``ports`` may arrive as one port (``22``), a list (``[80, 443]``) or text (``"80,443"``,
``"1000-2000"``); Flint stores and answers it as canonical text (``"80,443,1000-2000"``). Checks that need
more than types (port ranges, CIDRs, macros, protocol/port combinations) are in
``services.firewall.validate`` and name the field they refuse (``rules[2].ports``).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Direction = Literal["in", "out"]
Action = Literal["accept", "drop", "reject"]
Protocol = Literal["tcp", "udp", "icmp", "all"]
Policy = Literal["accept", "drop"]
Ports = int | str | list[int | str]


class _In(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class Rule(_In):
    """One rule. ``source``/``destination`` are packet addresses: for ``in`` the source is the remote side."""

    direction: Direction = "in"
    action: Action = "accept"
    protocol: Protocol | None = None  # None: "all", or what the macro sets
    ports: Ports | None = None  # destination ports; tcp and udp only
    source: str | None = None  # CIDR or address, IPv4 or IPv6
    destination: str | None = None
    macro: str | None = None  # SSH, HTTP, DNS, Ping, ... (GET /firewall/macros)
    comment: str = ""
    enabled: bool = True


class RulesetIn(_In):
    """POST /firewall/rulesets (name required) and PUT /firewall/rulesets/{name} (name optional)."""

    name: str | None = None
    description: str = ""
    rules: Annotated[list[Rule], Meta(max_length=200)] = []


class RulesetDoc(msgspec.Struct, kw_only=True):
    """What KV holds at ``ruleset.<name>``: rules already checked and normalized."""

    name: str
    description: str = ""
    rules: list[Rule] = []
    created_at: float = 0.0
    updated_at: float = 0.0
    updated_by: str = ""


class VMRef(msgspec.Struct, kw_only=True):
    host: str
    id: str
    name: str = ""


class Ruleset(RulesetDoc, kw_only=True):
    """A ruleset as the API shows it: with its KV revision (send it back in If-Match) and its users."""

    revision: int = 0
    used_by: list[VMRef] = []


class MacroEntry(msgspec.Struct, kw_only=True):
    protocol: Protocol
    ports: str | None = None
    icmp_type: int | None = None  # ICMP type (its ICMPv6 twin is used for IPv6)


class Macro(msgspec.Struct, kw_only=True):
    name: str
    description: str
    entries: list[MacroEntry]


class Usage(msgspec.Struct, kw_only=True):
    """KV ``usage.<host>.<vm uuid>``: which rulesets a VM uses. Written by the VM's firewall service; an
    index for refusing to delete a ruleset in use (the truth is the domain's metadata)."""

    host: str
    id: str
    name: str = ""
    rulesets: list[str] = []


class VMFirewallSettings(_In):
    """GET|PUT /vms/{id}/firewall. Kept in the domain's Flint metadata (key ``firewall``).

    ``addresses``: MAC -> IPv4 addresses the NIC may use when ``anti_spoofing`` is on. A NIC without any
    gets libvirt's DHCP lease (libvirt networks) or, failing that, libvirt learns its address from the
    first DHCP exchange or packet (until then only DHCP and ARP pass).
    """

    rulesets: Annotated[list[str], Meta(max_length=32)] = []
    anti_spoofing: bool = False
    default_policy: Policy = "accept"
    addresses: dict[str, list[str]] = {}

    @property
    def active(self) -> bool:
        """Anything to filter: without this the VM's NICs carry no filter at all."""
        return bool(self.rulesets) or self.anti_spoofing or self.default_policy == "drop"


class NicFirewall(msgspec.Struct, kw_only=True):
    mac: str
    type: str | None = None
    source: str | None = None  # network or bridge name
    filter: str | None = None  # the filter the NIC references now (persistent definition, else live)
    attached: bool = False  # references Flint's filter for this NIC
    live: bool | None = None  # running VM: the live NIC references it too (None when not running)
    ip_addresses: list[str] = []  # what anti-spoofing allows (empty: learned by libvirt)
    note: str = ""  # why a NIC is not filtered (unsupported type, another filter, ...)


class VMFirewall(msgspec.Struct, kw_only=True):
    id: str
    name: str
    host: str
    settings: VMFirewallSettings
    nics: list[NicFirewall] = []
    missing_rulesets: list[str] = []  # named by the settings but unknown (deleted behind Flint's back)


class VMFirewallGet(msgspec.Struct, kw_only=True):
    id: str


class VMFirewallSet(msgspec.Struct, kw_only=True):
    id: str
    settings: VMFirewallSettings
    user: str = ""


class NWFilterInfo(msgspec.Struct, kw_only=True):
    name: str
    uuid: str
    chain: str | None = None
    priority: int | None = None
    owner: Literal["libvirt", "flint-ruleset", "flint-vm", "other"] = "other"
    references: list[str] = []
    rules: int = 0
    xml: str = ""


class NWFilterList(msgspec.Struct, kw_only=True):
    host: str
    filters: list[NWFilterInfo] = []


class FirewallChange(msgspec.Struct, kw_only=True):
    """``data`` of ``firewall`` events (``flint.evt.<host>.firewall.<ruleset name or VM uuid>``).

    type ``ruleset.applied`` / ``ruleset.failed`` / ``ruleset.removed``: a host (re)defined, could not
    define, or removed a ruleset's nwfilter (``ruleset``, ``revision``, ``error``); ``vm.applied``: a VM's
    firewall changed (``vm``)."""

    ruleset: str | None = None
    revision: int | None = None
    error: str | None = None
    vm: VMFirewall | None = None
