"""Virtual networks and host interfaces: the bodies of /hosts/{host}/networks... and the provisioner's replies.

Shape errors (a wrong type, an unknown field, a mode that does not exist) are caught by decoding; what
depends on the values together or on the host (the range lies in the subnet, the bridge exists, the name
is free) is checked by the provisioner, which names the field in its ServiceError.

Modes, as libvirt builds them:
- ``nat``: a bridge libvirt makes, with an address, DHCP/DNS (dnsmasq) and NAT to the host's uplinks;
- ``route``: the same, routed instead of NATed;
- ``isolated``: a bridge libvirt makes with no forwarding; with ``ipv4`` libvirt serves DHCP/DNS on it,
  without it the network is pure L2 between the guests;
- ``bridge``: guests join an existing host bridge (``bridge``); the LAN's own DHCP serves them;
- ``macvtap``: guests attach directly to a host interface (``interface``) through macvtap.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

NETWORK_MODES = ("nat", "route", "isolated", "bridge", "macvtap")
NETWORK_ACTIONS = ("start", "stop", "autostart", "noautostart")
Mode = Literal["nat", "route", "isolated", "bridge", "macvtap"]
MacvtapMode = Literal["bridge", "vepa", "private", "passthrough"]
Action = Literal["start", "stop", "autostart", "noautostart"]
NetworkName = Annotated[str, Meta(min_length=1, max_length=63)]
IfName = Annotated[str, Meta(min_length=1, max_length=15)]


class _Spec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class DhcpRangeSpec(_Spec, kw_only=True):
    start: str
    end: str


class DhcpHostSpec(_Spec, kw_only=True):
    """A static lease: the guest with this MAC always gets ``ip`` (and ``name`` in DNS)."""

    mac: str
    ip: str
    name: str | None = None


class IPv4Spec(_Spec, kw_only=True):
    """The host's address on the network with the subnet's prefix ("192.168.100.1/24"), DHCP, and PXE."""

    address: Annotated[str, Meta(min_length=1, max_length=43)]
    dhcp_ranges: list[DhcpRangeSpec] = []
    dhcp_hosts: list[DhcpHostSpec] = []
    tftp_root: str | None = None  # a host directory served over TFTP by libvirt's dnsmasq
    bootp_file: str | None = None  # the boot file DHCP hands out (pxelinux.0, ipxe.efi, ...)
    bootp_server: str | None = None  # the PXE/TFTP server's address when it is not this network's own


class NetworkSpec(_Spec, kw_only=True):
    """What a network is; the body of PUT /hosts/{host}/networks/{name} (the whole definition)."""

    mode: Mode = "isolated"
    # bridge: the existing host bridge; nat/route/isolated: the bridge libvirt makes (default virbrN)
    bridge: IfName | None = None
    # nat/route: the host interface traffic leaves by (default: any); macvtap: the host interface (required)
    interface: IfName | None = None
    macvtap_mode: MacvtapMode = "bridge"
    ipv4: IPv4Spec | None = None  # nat/route need it; bridge/macvtap cannot have it
    domain: Annotated[str, Meta(min_length=1, max_length=253)] | None = None  # DNS domain of the guests
    mtu: Annotated[int, Meta(ge=68, le=65535)] | None = None


class NetworkCreate(NetworkSpec, kw_only=True):
    """POST /hosts/{host}/networks: a definition plus what to do with it now."""

    name: NetworkName
    start: bool = True
    autostart: bool = True


class NetworkUpdate(NetworkSpec, kw_only=True):
    name: NetworkName


class NetworkRef(_Spec, kw_only=True):
    name: NetworkName


class NetworkDelete(_Spec, kw_only=True):
    name: NetworkName
    force: bool = False  # delete although stopped VMs still name it (they cannot start until it is back)


class NetworkAction(_Spec, kw_only=True):
    name: NetworkName
    action: Action
    force: bool = False  # stop although running VMs are attached (they lose their link)


class PxeInfo(msgspec.Struct, kw_only=True):
    """Whether a guest that boots from this network can expect an answer, in words."""

    ready: bool
    note: str


class NetworkDetail(msgspec.Struct, kw_only=True):
    """One network as libvirt has it now (its persistent definition; ``pending_restart`` when the running
    one differs)."""

    host: str
    name: str
    uuid: str
    mode: str  # one of NETWORK_MODES, or libvirt's own forward mode for kinds Flint does not create
    active: bool
    autostart: bool
    persistent: bool
    bridge: str | None = None
    interface: str | None = None
    interfaces: list[str] = []
    macvtap_mode: str | None = None
    ipv4: IPv4Spec | None = None
    domain: str | None = None
    mtu: int | None = None
    pending_restart: bool = False
    pxe: PxeInfo
    vms: list[str] = []  # VMs whose NICs name this network


class NetworkDeleted(msgspec.Struct, kw_only=True):
    deleted: str


class InterfacesList(_Spec, kw_only=True):
    pass


class HostInterface(msgspec.Struct, kw_only=True):
    """A network interface of the host, as a user chooses one for a bridge or macvtap network."""

    name: str
    type: str  # ethernet, bridge, bond, vlan, loopback, tun, veth, macvtap, wireless, other
    mac: str | None = None
    state: str = "unknown"  # up, down, unknown
    mtu: int | None = None
    addresses: list[str] = []  # CIDR
    bridge: str | None = None  # the bridge this interface is a port of
    members: list[str] = []  # a bridge's or bond's ports
    network: str | None = None  # the libvirt network whose bridge this is


class InterfaceList(msgspec.Struct, kw_only=True):
    """The reply of `interfaces.list` (GET /hosts/{host}/interfaces answers its ``interfaces``)."""

    host: str
    interfaces: list[HostInterface] = []
