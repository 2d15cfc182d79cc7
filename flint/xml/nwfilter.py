"""``<filter>``: a libvirt network filter (nwfilter), its rules and references to other filters."""

from __future__ import annotations

from lxml import etree

from .base import Children, Converter, Prop, XmlModel
from .names import validator

PROTOCOLS = ("mac", "vlan", "stp", "arp", "rarp", "ip", "ipv6", "tcp", "udp", "sctp", "icmp", "igmp", "esp",
             "ah", "udplite", "all", "tcp-ipv6", "udp-ipv6", "sctp-ipv6", "icmpv6", "esp-ipv6", "ah-ipv6",
             "udplite-ipv6", "all-ipv6")
TRUE_FALSE = Converter(lambda s: s not in ("false", "0"), lambda v: "true" if v else "false")


class FilterParameter(XmlModel):
    """``<parameter name='IP' value='10.0.0.5'/>`` inside a ``<filterref>``."""

    TAG = "parameter"
    name = Prop("./@name")
    value = Prop("./@value")


class FilterRef(XmlModel):
    """``<filterref filter='clean-traffic'>`` with optional parameters."""

    TAG = "filterref"
    filter = Prop("./@filter")
    parameters = Children(FilterParameter, "./parameter")

    def __init__(self, node=None, /, parameters: dict[str, str] | None = None, **fields):
        super().__init__(node, **fields)
        for key, value in (parameters or {}).items():
            self.parameters.append(FilterParameter(name=key, value=value))


class Rule(XmlModel):
    """``<rule action direction priority>`` with one protocol element (``tcp``, ``ip``, ``all``, ...).

    The match fields after ``protocol`` are attributes of that protocol element, so ``protocol`` must
    be set first (the constructor does so whatever the keyword order).
    """

    TAG = "rule"
    action = Prop("./@action", doc="accept, drop, reject, return, continue")
    direction = Prop("./@direction", doc="in, out, inout")
    priority = Prop("./@priority", int, doc="-1000..1000, lower runs first")
    statematch = Prop("./@statematch", TRUE_FALSE)

    @property
    def protocol(self) -> str | None:
        child = next(self.node.iterchildren(tag=etree.Element), None)
        return None if child is None else child.tag

    @protocol.setter
    def protocol(self, value: str) -> None:
        if value not in PROTOCOLS:
            raise ValueError(f"rule protocol {value!r} is not one of {', '.join(PROTOCOLS)}")
        child = next(self.node.iterchildren(tag=etree.Element), None)
        if child is None:
            etree.SubElement(self.node, value)
        else:
            child.tag = value

    srcmacaddr = Prop("./*/@srcmacaddr")
    srcipaddr = Prop("./*/@srcipaddr")
    srcipmask = Prop("./*/@srcipmask")
    srcipfrom = Prop("./*/@srcipfrom")
    srcipto = Prop("./*/@srcipto")
    dstipaddr = Prop("./*/@dstipaddr")
    dstipmask = Prop("./*/@dstipmask")
    dstipfrom = Prop("./*/@dstipfrom")
    dstipto = Prop("./*/@dstipto")
    srcportstart = Prop("./*/@srcportstart", int)
    srcportend = Prop("./*/@srcportend", int)
    dstportstart = Prop("./*/@dstportstart", int)
    dstportend = Prop("./*/@dstportend", int)
    type = Prop("./*/@type", int, doc="icmp type")
    code = Prop("./*/@code", int, doc="icmp code")
    state = Prop("./*/@state", doc="NEW, ESTABLISHED, RELATED, INVALID, NONE (comma separated)")
    comment = Prop("./*/@comment")


class Filter(XmlModel):
    """A named filter: ``chain`` (root, ipv4, ipv6, arp, mac, ...) and ``priority`` order it."""

    TAG = "filter"
    name = Prop("./@name", validate=validator("filter"))
    chain = Prop("./@chain")
    priority = Prop("./@priority", int)
    uuid = Prop("./uuid")
    filterrefs = Children(FilterRef, "./filterref")
    rules = Children(Rule, "./rule")
