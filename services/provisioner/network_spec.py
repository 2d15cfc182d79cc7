"""A network request -> the ``flint.xml`` Network model, and back; every check that needs no host.

Pure: nothing here opens a connection or looks at the host. Each refusal is a ServiceError(422) whose
field is the request's own path (``ipv4.dhcp_ranges[0].start``) and whose message says what to change.
"""

from __future__ import annotations

import ipaddress
import re

from flint.contracts.common import ServiceError
from flint.contracts.networks import DhcpHostSpec, DhcpRangeSpec, IPv4Spec, NetworkSpec, PxeInfo
from flint.xml import DhcpHost, DhcpRange, Network, NetworkIP, validate_name

IFNAME = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
MAC = re.compile(r"(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}")
HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
BOOT_FILE = re.compile(r"[^\s\"'\\]{1,255}")
L2_MODES = ("bridge", "macvtap")  # guests join something that exists: no <ip>, no DNS, no bridge of libvirt's


def fail(field: str, message: str, code: int = 422) -> ServiceError:
    return ServiceError(code, f"{field}: {message}", field)


def check_name(name: str) -> str:
    try:
        return validate_name("network", name)
    except ValueError as exc:
        raise fail("name", str(exc)) from None


def check_ifname(value: str, field: str) -> str:
    if not IFNAME.fullmatch(value) or value in (".", ".."):
        raise fail(field, f"{value!r} is not a valid interface name (1-15 letters, digits, '_', '.', ':', '-')")
    return value


def parse_address(text: str, field: str = "ipv4.address") -> ipaddress.IPv4Interface:
    """``192.168.100.1/24``: the host's own address on the network and the subnet's prefix length."""
    if "/" not in text:
        raise fail(field, f"{text!r} has no prefix length: write the host's address on the network with it, "
                          "like 192.168.100.1/24")
    try:
        iface = ipaddress.IPv4Interface(text.strip())
    except ValueError:
        raise fail(field, f"{text!r} is not a valid IPv4 address with a prefix length, like 192.168.100.1/24") from None
    net = iface.network
    if not 1 <= net.prefixlen <= 30:
        raise fail(field, f"prefix /{net.prefixlen} leaves no room for guests: use /1 to /30 (usually /24)")
    if iface.ip in (net.network_address, net.broadcast_address):
        what = "network" if iface.ip == net.network_address else "broadcast"
        raise fail(field, f"{iface.ip} is the {what} address of {net}: give the host an address inside it, like "
                          f"{net.network_address + 1}/{net.prefixlen}")
    if iface.ip.is_loopback or iface.ip.is_multicast or iface.ip.is_unspecified or iface.ip.is_link_local:
        raise fail(field, f"{iface.ip} cannot be a network's address (loopback, multicast, link-local or unspecified)")
    return iface


def _guest_ip(text: str, iface: ipaddress.IPv4Interface, field: str) -> ipaddress.IPv4Address:
    try:
        ip = ipaddress.IPv4Address(text.strip())
    except ValueError:
        raise fail(field, f"{text!r} is not a valid IPv4 address") from None
    net = iface.network
    if ip not in net:
        raise fail(field, f"{ip} is outside the network's subnet {net}")
    if ip in (net.network_address, net.broadcast_address):
        raise fail(field, f"{ip} is the {'network' if ip == net.network_address else 'broadcast'} address of {net}")
    if ip == iface.ip:
        raise fail(field, f"{ip} is the host's own address on this network")
    return ip


def check_ipv4(ipv4: IPv4Spec) -> ipaddress.IPv4Interface:
    iface = parse_address(ipv4.address)
    ranges: list[tuple[ipaddress.IPv4Address, ipaddress.IPv4Address, str]] = []
    for i, r in enumerate(ipv4.dhcp_ranges):
        field = f"ipv4.dhcp_ranges[{i}]"
        start = _guest_ip(r.start, iface, f"{field}.start")
        end = _guest_ip(r.end, iface, f"{field}.end")
        if end < start:
            raise fail(f"{field}.end", f"the range ends ({end}) before it starts ({start})")
        if start <= iface.ip <= end:
            raise fail(field, f"{start}-{end} includes the host's own address {iface.ip}")
        for other_start, other_end, other in ranges:
            if start <= other_end and other_start <= end:
                raise fail(field, f"{start}-{end} overlaps {other} ({other_start}-{other_end})")
        ranges.append((start, end, field))
    macs: dict[str, str] = {}
    ips: dict[ipaddress.IPv4Address, str] = {}
    for i, h in enumerate(ipv4.dhcp_hosts):
        field = f"ipv4.dhcp_hosts[{i}]"
        if not MAC.fullmatch(h.mac.strip()) or int(h.mac.strip()[:2], 16) & 1:
            raise fail(f"{field}.mac", f"{h.mac!r} is not a unicast MAC address like 52:54:00:12:34:56")
        mac = h.mac.strip().lower()
        if mac in macs:
            raise fail(f"{field}.mac", f"MAC {mac} already has a static address ({macs[mac]})")
        ip = _guest_ip(h.ip, iface, f"{field}.ip")
        if ip in ips:
            raise fail(f"{field}.ip", f"{ip} is already given to {ips[ip]}")
        if h.name is not None and not HOSTNAME.fullmatch(h.name):
            raise fail(f"{field}.name", f"{h.name!r} is not a host name (letters, digits and '-', up to 63)")
        macs[mac], ips[ip] = field, field
    if ipv4.tftp_root is not None:
        root = ipv4.tftp_root
        if not root.startswith("/") or "\n" in root or "/../" in f"{root}/" or len(root) > 4096:
            raise fail("ipv4.tftp_root", f"{root!r} must be an absolute directory path on the host")
    if ipv4.bootp_file is not None:
        if not BOOT_FILE.fullmatch(ipv4.bootp_file):
            raise fail("ipv4.bootp_file", f"{ipv4.bootp_file!r} is not a boot file name (no spaces or quotes)")
        if not ipv4.dhcp_ranges and not ipv4.dhcp_hosts:
            raise fail("ipv4.bootp_file", "the boot file is handed out by DHCP: add a DHCP range or a static host")
    if ipv4.bootp_server is not None:
        if ipv4.bootp_file is None:
            raise fail("ipv4.bootp_server", "a PXE server address goes with a boot file: set bootp_file too")
        try:
            ipaddress.IPv4Address(ipv4.bootp_server.strip())
        except ValueError:
            raise fail("ipv4.bootp_server", f"{ipv4.bootp_server!r} is not a valid IPv4 address") from None
    return iface


def check_spec(spec: NetworkSpec) -> None:
    """Everything that can be judged from the request alone."""
    mode = spec.mode
    if spec.bridge is not None:
        check_ifname(spec.bridge, "bridge")
    if spec.interface is not None:
        check_ifname(spec.interface, "interface")
    if mode == "bridge" and not spec.bridge:
        raise fail("bridge", "a bridge network joins an existing host bridge: name it (e.g. br0)")
    if mode == "macvtap":
        if not spec.interface:
            raise fail("interface", "a macvtap network attaches guests to a host interface: name it (e.g. eth0)")
        if spec.bridge:
            raise fail("bridge", "a macvtap network has no bridge: leave it out, or use mode 'bridge'")
    if mode in L2_MODES:
        if spec.ipv4 is not None:
            raise fail("ipv4", f"a {mode} network has no address of its own: DHCP and PXE come from the LAN "
                               f"behind {'bridge ' + spec.bridge if mode == 'bridge' else spec.interface}")
        if spec.domain is not None:
            raise fail("domain", f"a {mode} network has no DNS of libvirt's: leave the domain out")
    if mode in ("bridge", "isolated") and spec.interface:
        why = "a bridge network uses its bridge" if mode == "bridge" else "an isolated network forwards to nothing"
        raise fail("interface", f"{why}: leave the interface out")
    if mode in ("nat", "route") and spec.ipv4 is None:
        raise fail("ipv4.address", f"a {mode} network needs an address for the host, like 192.168.100.1/24")
    if spec.ipv4 is not None:
        check_ipv4(spec.ipv4)
    if spec.domain is not None:
        labels = spec.domain.rstrip(".").split(".")
        if not all(HOSTNAME.fullmatch(label) for label in labels):
            raise fail("domain", f"{spec.domain!r} is not a DNS domain name (like lab.example)")


def _drop(net: Network, tag: str) -> None:
    for el in net.node.findall(tag):
        net.node.remove(el)


def apply_spec(net: Network, spec: NetworkSpec) -> Network:
    """Make ``net`` (a new model, or the parsed definition being edited) say what ``spec`` says. What the
    spec does not cover (DNS hosts, port groups, IPv6 addresses, the bridge's MAC) is kept where the new
    mode allows it."""
    check_spec(spec)
    mode = spec.mode
    net.forward_mode = None  # drops the whole <forward> (NAT ports, macvtap devices) before rebuilding it
    if mode in ("nat", "route"):
        net.forward_mode = mode
        net.forward_dev = spec.interface
    elif mode == "bridge":
        net.forward_mode = "bridge"
    elif mode == "macvtap":
        net.forward_mode = spec.macvtap_mode
        net.forward_interfaces = [spec.interface]
    if mode in L2_MODES:
        for ip in list(net.ips):
            net.ips.remove(ip)
        net.bridge_stp = net.bridge_delay = None
        net.mac = None
        net.domain_name = net.domain_local_only = None
        _drop(net, "dns")
        net.bridge_name = spec.bridge if mode == "bridge" else None
        if mode == "macvtap":
            _drop(net, "bridge")
    else:
        if spec.bridge:
            net.bridge_name = spec.bridge
        if net.bridge_stp is None:
            net.bridge_stp, net.bridge_delay = True, 0
        for ip in [ip for ip in net.ips if (ip.family or "ipv4") == "ipv4"]:
            net.ips.remove(ip)
        if spec.ipv4 is not None:
            net.ips.append(ip_model(spec.ipv4))
        net.domain_local_only = None
        net.domain_name = spec.domain.rstrip(".") if spec.domain else None
        if spec.domain:
            net.domain_local_only = True  # answer for the domain, never forward its queries upstream
    net.mtu = spec.mtu
    return net


def ip_model(ipv4: IPv4Spec) -> NetworkIP:
    iface = parse_address(ipv4.address)
    ip = NetworkIP(address=str(iface.ip), prefix=iface.network.prefixlen)
    if ipv4.tftp_root:
        ip.tftp_root = ipv4.tftp_root
    for r in ipv4.dhcp_ranges:
        ip.dhcp_ranges.append(DhcpRange(start=r.start.strip(), end=r.end.strip()))
    for h in ipv4.dhcp_hosts:
        host = DhcpHost(mac=h.mac.strip().lower(), ip=h.ip.strip())
        if h.name:
            host.name = h.name
        ip.dhcp_hosts.append(host)
    if ipv4.bootp_file:
        ip.bootp_file = ipv4.bootp_file
        ip.bootp_server = ipv4.bootp_server.strip() if ipv4.bootp_server else None
    return ip


def build_network(name: str, spec: NetworkSpec, uuid: str | None = None) -> Network:
    net = Network(name=check_name(name))
    if uuid:
        net.uuid = uuid
    return apply_spec(net, spec)


# ---- reading back ------------------------------------------------------------------------------------

def mode_of(net: Network) -> str:
    return net.mode


def ipv4_of(net: Network) -> IPv4Spec | None:
    ip = net.ip("ipv4")
    if ip is None or not ip.address:
        return None
    prefix = ip.prefix
    if prefix is None:
        prefix = ipaddress.IPv4Network(f"0.0.0.0/{ip.netmask}").prefixlen if ip.netmask else 24
    return IPv4Spec(
        address=f"{ip.address}/{prefix}",
        dhcp_ranges=[DhcpRangeSpec(start=r.start or "", end=r.end or "") for r in ip.dhcp_ranges],
        dhcp_hosts=[DhcpHostSpec(mac=h.mac or "", ip=h.ip or "", name=h.name) for h in ip.dhcp_hosts if h.mac],
        tftp_root=ip.tftp_root,
        bootp_file=ip.bootp_file,
        bootp_server=ip.bootp_server,
    )


def pxe_info(net: Network) -> PxeInfo:
    """Can a guest PXE-boot from this network? Only libvirt's own DHCP is known; anything else is a guess,
    and said so."""
    mode = mode_of(net)
    name = net.name
    if mode == "bridge":
        return PxeInfo(ready=False, note=f"network {name!r} joins host bridge {net.bridge_name}: PXE needs a DHCP "
                                         "and PXE server on that LAN, which Flint cannot see from here")
    if mode == "macvtap":
        return PxeInfo(ready=False, note=f"network {name!r} attaches to {', '.join(net.forward_interfaces)} "
                                         "(macvtap): PXE needs a DHCP and PXE server on that LAN, which Flint "
                                         "cannot see from here")
    ipv4 = ipv4_of(net)
    if ipv4 is None:
        return PxeInfo(ready=False, note=f"network {name!r} has no IPv4 address, so libvirt runs no DHCP server "
                                         "on it: a guest only boots from it if another machine there serves PXE")
    if not ipv4.dhcp_ranges and not ipv4.dhcp_hosts:
        return PxeInfo(ready=False, note=f"network {name!r} has no DHCP range or static host: add one, with a "
                                         "boot file, for PXE")
    if not ipv4.bootp_file:
        return PxeInfo(ready=False, note=f"network {name!r} serves DHCP but no boot file: set a TFTP root and a "
                                         "boot file (e.g. pxelinux.0), or a boot file and the PXE server's address")
    if ipv4.bootp_server:
        return PxeInfo(ready=True, note=f"DHCP hands out boot file {ipv4.bootp_file} from server {ipv4.bootp_server}")
    if ipv4.tftp_root:
        return PxeInfo(ready=True, note=f"DHCP hands out boot file {ipv4.bootp_file}, served over TFTP from "
                                        f"{ipv4.tftp_root}")
    return PxeInfo(ready=False, note=f"network {name!r} hands out boot file {ipv4.bootp_file} but serves no TFTP: "
                                     "set a TFTP root, or the address of the PXE server")
