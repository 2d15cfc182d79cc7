"""``<network>``: a libvirt virtual network (NAT, routed, isolated, bridged, macvtap, ...)."""

from __future__ import annotations

from .base import ON_OFF, YES_NO, Children, Prop, PropList, XmlModel
from .names import validator


class DhcpRange(XmlModel):
    TAG = "range"
    start = Prop("./@start")
    end = Prop("./@end")


class DhcpHost(XmlModel):
    """A static lease: ``mac`` (IPv4) or ``id`` (IPv6 DUID), ``name`` and ``ip``."""

    TAG = "host"
    mac = Prop("./@mac")
    id = Prop("./@id")
    name = Prop("./@name")
    ip = Prop("./@ip")


class NetworkIP(XmlModel):
    """``<ip address prefix|netmask>`` with DHCP ranges, static hosts, TFTP and BOOTP (PXE) settings."""

    TAG = "ip"
    family = Prop("./@family", doc="ipv4 (default) or ipv6")
    address = Prop("./@address")
    prefix = Prop("./@prefix", int)
    netmask = Prop("./@netmask")
    tftp_root = Prop("./tftp/@root")
    dhcp_ranges = Children(DhcpRange, "./dhcp/range")
    dhcp_hosts = Children(DhcpHost, "./dhcp/host")
    bootp_file = Prop("./dhcp/bootp/@file")
    bootp_server = Prop("./dhcp/bootp/@server")


class Network(XmlModel):
    """No ``forward_mode`` means an isolated network; no ``ips`` means pure L2 (no libvirt DHCP/DNS)."""

    TAG = "network"
    name = Prop("./name", validate=validator("network"))
    uuid = Prop("./uuid")
    forward_mode = Prop("./forward/@mode", doc="nat, route, open, bridge, passthrough, private, vepa; "
                        "None removes <forward> (isolated)", drop_element=True)
    forward_dev = Prop("./forward/@dev")
    nat_port_start = Prop("./forward/nat/port/@start", int)
    nat_port_end = Prop("./forward/nat/port/@end", int)
    forward_interfaces = PropList("./forward/interface/@dev", doc="host devices for bridge/macvtap modes")
    bridge_name = Prop("./bridge/@name")
    bridge_stp = Prop("./bridge/@stp", ON_OFF)
    bridge_delay = Prop("./bridge/@delay", int)
    mtu = Prop("./mtu/@size", int)
    mac = Prop("./mac/@address")
    domain_name = Prop("./domain/@name", doc="DNS domain")
    domain_local_only = Prop("./domain/@localOnly", YES_NO)
    ips = Children(NetworkIP, "./ip")

    @property
    def isolated(self) -> bool:
        return self.forward_mode is None

    @property
    def mode(self) -> str:
        """What kind of network this is, in Flint's words: nat, route, isolated, bridge (guests join a host
        bridge), macvtap (guests attach to host interfaces), else libvirt's own forward mode (open, hostdev)."""
        fwd = self.forward_mode
        if fwd is None:
            return "isolated"
        if fwd == "bridge" and self.bridge_name:
            return "bridge"
        if fwd in ("bridge", "vepa", "private", "passthrough") and self.forward_interfaces:
            return "macvtap"
        return fwd

    def ip(self, family: str = "ipv4") -> NetworkIP | None:
        """The first address of ``family`` (an ``<ip>`` without family is IPv4)."""
        return next((ip for ip in self.ips if (ip.family or "ipv4") == family), None)
