"""Virtual networks on the host's libvirt: create, edit, delete, start/stop/autostart, details.

Every function here BLOCKS (libvirt calls): the handlers run them with ``ctx.virt.call``. The XML is built
from ``flint.xml.Network`` (network_spec), never by formatting text. A refusal names the request field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import libvirt
import structlog

from flint.contracts.common import ServiceError
from flint.contracts.networks import (
    NetworkAction,
    NetworkCreate,
    NetworkDelete,
    NetworkDeleted,
    NetworkDetail,
    NetworkSpec,
    NetworkUpdate,
)
from flint.virt.connection import libvirt_error
from flint.xml import Domain, Network, parse_xml
from services.provisioner import host_interfaces
from services.provisioner.network_spec import (
    apply_spec,
    build_network,
    check_name,
    fail,
    ipv4_of,
    mode_of,
    parse_address,
    pxe_info,
)

log = structlog.get_logger()
INACTIVE = libvirt.VIR_NETWORK_XML_INACTIVE


def lookup(conn: libvirt.virConnect, name: str, field: str = "name") -> libvirt.virNetwork:
    check_name(name)
    try:
        return conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            raise ServiceError(404, f"no network named {name!r} on this host", field) from None
        raise libvirt_error(exc, f"network {name!r}") from exc


def _exists(conn: libvirt.virConnect, name: str) -> bool:
    try:
        conn.networkLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_NETWORK:
            return False
        raise libvirt_error(exc, f"network {name!r}") from exc
    return True


def _canonical(xml: str) -> bytes:
    from lxml import etree

    return etree.tostring(parse_xml(xml), method="c14n2", strip_text=True)


def vms_on(conn: libvirt.virConnect, name: str, running_only: bool = False) -> list[str]:
    """Names of the VMs with a NIC on network ``name`` (persistent or live definition)."""
    users = []
    for dom in conn.listAllDomains(0):
        try:
            active = bool(dom.isActive())
            if running_only and not active:
                continue
            xmls = [dom.XMLDesc(0)] if active else []
            if dom.isPersistent() and not running_only:
                xmls.append(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if any(i.type == "network" and i.source_network == name
                   for xml in xmls for i in Domain.parse(xml).interfaces):
                users.append(dom.name())
        except libvirt.libvirtError:
            continue  # gone while we looked
    return sorted(users)


def detail(conn: libvirt.virConnect, host: str, net: libvirt.virNetwork) -> NetworkDetail:
    persistent = bool(net.isPersistent())
    active = bool(net.isActive())
    xml = net.XMLDesc(INACTIVE if persistent else 0)
    model = Network.parse(xml)
    mode = mode_of(model)
    return NetworkDetail(
        host=host,
        name=net.name(),
        uuid=net.UUIDString(),
        mode=mode,
        active=active,
        autostart=bool(net.autostart()) if persistent else False,
        persistent=persistent,
        bridge=model.bridge_name,
        interface=model.forward_dev if mode in ("nat", "route") else (model.forward_interfaces or [None])[0],
        interfaces=model.forward_interfaces,
        macvtap_mode=model.forward_mode if mode == "macvtap" else None,
        ipv4=ipv4_of(model),
        domain=model.domain_name,
        mtu=model.mtu,
        pending_restart=active and persistent and _canonical(net.XMLDesc(0)) != _canonical(xml),
        pxe=pxe_info(model),
        vms=vms_on(conn, net.name()),
    )


def get_network(conn: libvirt.virConnect, host: str, name: str) -> NetworkDetail:
    return detail(conn, host, lookup(conn, name))


# ---- checks that need the host ------------------------------------------------------------------------

def _subnets(conn: libvirt.virConnect, skip: str | None) -> list[tuple[str, ipaddress.IPv4Network]]:
    found = []
    for net in conn.listAllNetworks(0):
        try:
            if net.name() == skip:
                continue
            ip = ipv4_of(Network.parse(net.XMLDesc(INACTIVE if net.isPersistent() else 0)))
        except libvirt.libvirtError:
            continue
        if ip is not None:
            found.append((net.name(), ipaddress.IPv4Interface(ip.address).network))
    return found


def check_host(conn: libvirt.virConnect, uri: str, name: str, spec: NetworkSpec,
               current: Network | None = None) -> None:
    """The bridge exists (or is free), the interface exists, the subnet collides with nothing."""
    owners = host_interfaces.network_bridges(conn)
    if spec.mode == "bridge":
        br = host_interfaces.find_interface(conn, uri, spec.bridge)
        if br is None:
            raise fail("bridge", f"host bridge {spec.bridge!r} does not exist on this host: create it first "
                                 "(e.g. ip link add NAME type bridge), or pick one from the host's interfaces")
        if br.type != "bridge":
            raise fail("bridge", f"host interface {spec.bridge!r} is a {br.type} interface, not a bridge: use "
                                 "mode 'macvtap' to attach guests to it directly")
        if owners.get(spec.bridge) not in (None, name) and mode_of_name(conn, owners[spec.bridge]) != "bridge":
            raise fail("bridge", f"bridge {spec.bridge!r} belongs to libvirt network {owners[spec.bridge]!r}: "
                                 "attach VMs to that network instead", 409)
    elif spec.mode != "macvtap" and spec.bridge and (current is None or current.bridge_name != spec.bridge):
        if spec.bridge in owners and owners[spec.bridge] != name:
            raise fail("bridge", f"bridge name {spec.bridge!r} is taken by network {owners[spec.bridge]!r}", 409)
        if host_interfaces.find_interface(conn, uri, spec.bridge) is not None:
            raise fail("bridge", f"an interface named {spec.bridge!r} already exists on this host: libvirt makes "
                                 "this network's bridge itself, so give a new name (or none for virbrN)", 409)
    if spec.interface:
        dev = host_interfaces.find_interface(conn, uri, spec.interface)
        if dev is None:
            raise fail("interface", f"host interface {spec.interface!r} does not exist on this host")
        if spec.mode == "macvtap" and dev.type == "bridge":
            raise fail("interface", f"{spec.interface!r} is a bridge: use mode 'bridge' for it")
    if spec.ipv4 is not None:
        subnet = parse_address(spec.ipv4.address).network
        for other, other_net in _subnets(conn, name):
            if subnet.overlaps(other_net):
                raise fail("ipv4.address", f"{subnet} overlaps network {other!r} ({other_net})", 409)
        if host_interfaces.is_local(uri):
            mine = current.bridge_name if current is not None else None
            for iface in host_interfaces.local_interfaces(owners):
                if iface.name == mine or iface.network == name:
                    continue
                for addr in iface.addresses:
                    try:
                        theirs = ipaddress.ip_interface(addr).network
                    except ValueError:
                        continue
                    if theirs.version == 4 and subnet.overlaps(theirs):
                        raise fail("ipv4.address", f"{subnet} overlaps {theirs} on host interface {iface.name}: "
                                                   "pick another subnet", 409)


def mode_of_name(conn: libvirt.virConnect, name: str) -> str:
    try:
        return mode_of(Network.parse(conn.networkLookupByName(name).XMLDesc(INACTIVE)))
    except libvirt.libvirtError:
        return ""


# ---- create, update, delete, actions -------------------------------------------------------------------

def _undo(steps: list[tuple[str, Callable[[], object]]]) -> str:
    left = []
    for what, fn in reversed(steps):
        try:
            fn()
        except libvirt.libvirtError as exc:
            left.append(f"{what}: {exc.get_error_message()}")
    return "; nothing was left behind" if not left else f"; could not undo: {'; '.join(left)}"


def create_network(conn: libvirt.virConnect, uri: str, host: str, req: NetworkCreate) -> NetworkDetail:
    """define → start → autostart; a step that fails undoes the earlier ones."""
    model = build_network(req.name, req)
    if _exists(conn, req.name):
        raise fail("name", f"a network named {req.name!r} already exists on this host", 409)
    check_host(conn, uri, req.name, req)
    undo: list[tuple[str, Callable[[], object]]] = []
    step = "define"
    try:
        net = conn.networkDefineXML(model.to_xml())
        undo.append(("undefine", net.undefine))
        if req.start:
            step = "start"
            net.create()
            undo.append(("stop", net.destroy))
        if req.autostart:
            step = "autostart"
            net.setAutostart(1)
        log.info("network created", network=req.name, mode=req.mode, started=req.start)
        return detail(conn, host, net)
    except libvirt.libvirtError as exc:
        tail = _undo(undo)
        err = libvirt_error(exc, f"{step} network {req.name!r}")
        code = 422 if err.code == 502 else err.code  # the host refused what the request described
        raise ServiceError(code, err.message.replace(": libvirt said:", ":") + tail) from exc


def update_network(conn: libvirt.virConnect, uri: str, host: str, req: NetworkUpdate) -> NetworkDetail:
    """Redefine with the new settings (same UUID). A running network keeps its running definition until it
    is restarted: the reply says so (``pending_restart``)."""
    net = lookup(conn, req.name)
    if not net.isPersistent():
        raise fail("name", f"network {req.name!r} is transient: it has no definition to edit", 409)
    current = Network.parse(net.XMLDesc(INACTIVE))
    if net.isActive() and mode_of(current) != req.mode:
        raise fail("mode", f"network {req.name!r} is running: stop it before changing its mode", 409)
    check_host(conn, uri, req.name, req, current)
    edited = apply_spec(Network.parse(net.XMLDesc(INACTIVE)), req)
    try:
        net = conn.networkDefineXML(edited.to_xml())
    except libvirt.libvirtError as exc:
        err = libvirt_error(exc, f"save network {req.name!r}")
        raise ServiceError(422 if err.code == 502 else err.code, err.message.replace(": libvirt said:", ":")) from exc
    log.info("network updated", network=req.name, mode=req.mode)
    return detail(conn, host, net)


def delete_network(conn: libvirt.virConnect, req: NetworkDelete) -> NetworkDeleted:
    net = lookup(conn, req.name)
    running = vms_on(conn, req.name, running_only=True)
    if running:
        raise ServiceError(409, f"network {req.name!r} is in use by running VMs: {', '.join(running)}; stop them "
                                "or move their NICs first", "name")
    defined = vms_on(conn, req.name)
    if defined and not req.force:
        raise ServiceError(409, f"network {req.name!r} is named by VMs {', '.join(defined)}: they could not start "
                                "without it; move their NICs, or delete with force", "force")
    try:
        if net.isActive():
            net.destroy()
        if net.isPersistent():
            net.undefine()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
            raise libvirt_error(exc, f"delete network {req.name!r}") from exc
    log.info("network deleted", network=req.name)
    return NetworkDeleted(deleted=req.name)


def network_action(conn: libvirt.virConnect, host: str, req: NetworkAction) -> NetworkDetail:
    net = lookup(conn, req.name)
    active = bool(net.isActive())
    try:
        if req.action == "start" and not active:
            net.create()
        elif req.action == "stop" and active:
            running = vms_on(conn, req.name, running_only=True)
            if running and not req.force:
                raise ServiceError(409, f"network {req.name!r} has running VMs attached ({', '.join(running)}): "
                                        "they would lose their link; stop them first, or stop with force", "force")
            net.destroy()
        elif req.action in ("autostart", "noautostart"):
            if not net.isPersistent():
                raise fail("action", f"network {req.name!r} is transient: it cannot start with the host", 409)
            net.setAutostart(1 if req.action == "autostart" else 0)
    except libvirt.libvirtError as exc:
        err = libvirt_error(exc, f"{req.action} network {req.name!r}")
        raise ServiceError(422 if err.code == 502 else err.code, err.message.replace(": libvirt said:", ":"),
                           "action") from exc
    log.info("network action done", network=req.name, action=req.action)
    return detail(conn, host, net)
