"""``<interface>`` of the host (virInterface, libvirt's interface driver): read to list bridges and NICs."""

from __future__ import annotations

from .base import Children, Prop, PropList, XmlModel


class HostIP(XmlModel):
    TAG = "ip"
    address = Prop("./@address")
    prefix = Prop("./@prefix", int)


class HostInterfaceXml(XmlModel):
    """``type`` is ethernet / bridge / bond / vlan. Not to be confused with a domain's ``Interface``."""

    TAG = "interface"
    type = Prop("./@type")
    name = Prop("./@name")
    mac = Prop("./mac/@address")
    mtu = Prop("./mtu/@size", int)
    link_state = Prop("./link/@state")
    ipv4 = Children(HostIP, "./protocol[@family='ipv4']/ip")
    ipv6 = Children(HostIP, "./protocol[@family='ipv6']/ip")
    bridge_ports = PropList("./bridge/interface/@name")
    bond_ports = PropList("./bond/interface/@name")
    vlan_device = Prop("./vlan/interface/@name")
