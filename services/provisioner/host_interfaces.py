"""The host's network interfaces and bridges, for bridge and macvtap networks and for NICs on a bridge.

On the hypervisor itself (an agent, or `flint up` against a local URI) the kernel's own view is read:
/sys/class/net and `ip -j addr`. For a remote URI nothing local may answer for the remote host, so the
answer comes from libvirt's interface driver. Every function here BLOCKS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import libvirt
import structlog

from flint.contracts.common import ServiceError
from flint.contracts.networks import HostInterface
from flint.virt.connection import libvirt_error
from flint.xml.hostiface import HostInterfaceXml

log = structlog.get_logger()
SYS_NET = Path("/sys/class/net")
_KINDS = {"bridge", "bond", "vlan", "macvtap", "macvlan", "veth", "tun", "dummy", "ifb", "vxlan", "team",
          "wireguard"}


def is_local(uri: str) -> bool:
    """A URI without a host name (qemu:///system, test:///...) is this machine."""
    return not urlparse(uri).hostname


def network_bridges(conn: libvirt.virConnect) -> dict[str, str]:
    """bridge name -> the libvirt network that owns it (defined networks, running or not)."""
    owners = {}
    for net in conn.listAllNetworks(0):
        try:
            owners[net.bridgeName()] = net.name()
        except libvirt.libvirtError:
            continue  # macvtap networks have no bridge
    return owners


def _ip_addresses() -> dict[str, dict]:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    try:
        proc = subprocess.run([ip, "-j", "-d", "addr", "show"], capture_output=True, text=True, timeout=10)
        return {entry["ifname"]: entry for entry in json.loads(proc.stdout or "[]")}
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        log.info("ip -j addr unavailable: interfaces listed without addresses", error=str(exc))
        return {}


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _local_type(name: str, info: dict) -> str:
    kind = (info.get("linkinfo") or {}).get("info_kind")
    base = SYS_NET / name
    if (base / "bridge").is_dir() or kind == "bridge":
        return "bridge"
    if (base / "bonding").is_dir():
        return "bond"
    if kind in _KINDS:
        return {"macvlan": "macvtap"}.get(kind, kind)
    if name == "lo" or info.get("link_type") == "loopback":
        return "loopback"
    if (base / "wireless").is_dir() or (base / "phy80211").exists():
        return "wireless"
    if (base / "tun_flags").exists():
        return "tun"
    return "ethernet" if (base / "device").exists() or info.get("link_type") == "ether" else "other"


def local_interfaces(owners: dict[str, str]) -> list[HostInterface]:
    addrs = _ip_addresses()
    names = sorted(p.name for p in SYS_NET.iterdir()) if SYS_NET.is_dir() else sorted(addrs)
    found = []
    for name in names:
        info = addrs.get(name, {})
        base = SYS_NET / name
        kind = _local_type(name, info)
        state = (_read(base / "operstate") or info.get("operstate") or "unknown").lower()
        mtu = _read(base / "mtu")
        master = os.path.basename(os.readlink(base / "master")) if (base / "master").is_symlink() else None
        members = sorted(p.name for p in (base / "brif").iterdir()) if (base / "brif").is_dir() else []
        if kind == "bond":
            members = (_read(base / "bonding" / "slaves") or "").split()
        found.append(HostInterface(
            name=name, type=kind, mac=_read(base / "address") or info.get("address"),
            state=state if state in ("up", "down") else "unknown", mtu=int(mtu) if mtu and mtu.isdigit() else None,
            addresses=[f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", []) if "local" in a],
            bridge=master if master and (SYS_NET / master / "bridge").is_dir() else None,
            members=members, network=owners.get(name),
        ))
    return found


def remote_interfaces(conn: libvirt.virConnect, owners: dict[str, str]) -> list[HostInterface]:
    try:
        ifaces = conn.listAllInterfaces(0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, "list the host's interfaces") from exc
    found: list[HostInterface] = []
    port_of: dict[str, str] = {}
    for iface in ifaces:
        try:
            xml = HostInterfaceXml.parse(iface.XMLDesc(0))
            active = bool(iface.isActive())
        except libvirt.libvirtError:
            continue  # gone while we looked
        for port in xml.bridge_ports:
            port_of[port] = xml.name
        found.append(HostInterface(
            name=xml.name or iface.name(), type=xml.type or "other", mac=xml.mac,
            state=xml.link_state or ("up" if active else "down"), mtu=xml.mtu,
            addresses=[f"{ip.address}/{ip.prefix}" for ip in [*xml.ipv4, *xml.ipv6] if ip.address],
            members=xml.bridge_ports or xml.bond_ports, network=owners.get(xml.name or ""),
        ))
    for entry in found:
        entry.bridge = port_of.get(entry.name)
    return sorted(found, key=lambda i: i.name)


def list_interfaces(conn: libvirt.virConnect, uri: str) -> list[HostInterface]:
    owners = network_bridges(conn)
    return local_interfaces(owners) if is_local(uri) else remote_interfaces(conn, owners)


def find_interface(conn: libvirt.virConnect, uri: str, name: str) -> HostInterface | None:
    """One interface by name, or None when the host has none of that name."""
    if is_local(uri):
        if not (SYS_NET / name).exists():
            return None
        return next((i for i in local_interfaces({}) if i.name == name), None)
    try:
        iface = conn.interfaceLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_INTERFACE:
            return None
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            raise ServiceError(422, f"host interfaces cannot be listed on this host ({exc.get_error_message()})") from None
        raise libvirt_error(exc, f"host interface {name!r}") from exc
    xml = HostInterfaceXml.parse(iface.XMLDesc(0))
    return HostInterface(name=name, type=xml.type or "other", mac=xml.mac, mtu=xml.mtu,
                         members=xml.bridge_ports or xml.bond_ports)
