"""The libvirt side of the firewall: define and remove nwfilters, attach them to a VM's NICs (persistent
definition and running VM), keep the VM's settings in its Flint metadata. Blocking: call in a thread
(``VirtConnection.call``).

Why the domain's metadata holds the settings: libvirt stays the truth. The settings travel with the
domain (redefine, backup, migration), vanish with it, and a host's firewall service can rebuild every
NIC filter from libvirt alone after a restart. KV only holds an index of ruleset users (``usage.*``) for
refusing to delete a ruleset in use, rebuilt by each host on start.
"""

from __future__ import annotations

import json

import libvirt
import msgspec
import structlog
from lxml import etree

from flint.contracts.common import ServiceError
from flint.contracts.firewall import NicFirewall, NWFilterInfo, VMFirewall, VMFirewallSettings
from flint.virt.connection import libvirt_error
from flint.xml import FLINT_NS, Domain, Filter, Interface
from flint.xml.base import parse_xml
from services.firewall.render import (
    NIC_PREFIX,
    RULESET_PREFIX,
    nic_filter,
    nic_filter_name,
    nic_filter_prefix,
)

log = structlog.get_logger()

METADATA_KEY = "firewall"
FILTERABLE = ("bridge", "network", "ethernet")
# libvirt-daemon-config-nwfilter's filters
BUILTIN = {
    "allow-arp", "allow-dhcp", "allow-dhcp-server", "allow-dhcpv6", "allow-dhcpv6-server", "allow-incoming-ipv4",
    "allow-incoming-ipv6", "allow-ipv4", "allow-ipv6", "clean-traffic", "clean-traffic-gateway",
    "no-arp-ip-spoofing", "no-arp-mac-spoofing", "no-arp-spoofing", "no-ip-multicast", "no-ip-spoofing",
    "no-ipv6-multicast", "no-ipv6-spoofing", "no-mac-broadcast", "no-mac-spoofing", "no-other-l2-traffic",
    "no-other-rarp-traffic", "qemu-announce-self", "qemu-announce-self-rarp",
}
_settings_dec = msgspec.json.Decoder(VMFirewallSettings)


class NoNWFilter(ServiceError):
    def __init__(self, detail: str):
        super().__init__(501, f"this host's libvirt has no nwfilter driver ({detail}): no firewall here")


def _code(exc: libvirt.libvirtError) -> int:
    return exc.get_error_code()


def _check_support(exc: libvirt.libvirtError) -> None:
    if _code(exc) == libvirt.VIR_ERR_NO_SUPPORT:
        raise NoNWFilter(exc.get_error_message()) from exc


def _canonical(xml: str) -> bytes:
    return etree.tostring(parse_xml(xml), method="c14n2", strip_text=True)


# ---- filters -------------------------------------------------------------------------------------

def filter_uuid(conn: libvirt.virConnect, name: str) -> str | None:
    try:
        return conn.nwfilterLookupByName(name).UUIDString()
    except libvirt.libvirtError as exc:
        _check_support(exc)
        if _code(exc) == libvirt.VIR_ERR_NO_NWFILTER:
            return None
        raise libvirt_error(exc, f"nwfilter {name}") from exc


def define_filter(conn: libvirt.virConnect, model: Filter) -> bool:
    """Define or redefine (keeping its uuid, which libvirt insists on); False when nothing changed.
    libvirt re-instantiates a redefined filter on every running NIC that uses it."""
    try:
        existing = conn.nwfilterLookupByName(model.name)
    except libvirt.libvirtError as exc:
        _check_support(exc)
        if _code(exc) != libvirt.VIR_ERR_NO_NWFILTER:
            raise libvirt_error(exc, f"nwfilter {model.name}") from exc
        existing = None
    if existing is not None:
        model.uuid = existing.UUIDString()
        try:
            if _canonical(existing.XMLDesc(0)) == _canonical(model.to_xml()):
                return False
        except libvirt.libvirtError:
            pass
    try:
        conn.nwfilterDefineXML(model.to_xml())
    except libvirt.libvirtError as exc:
        _check_support(exc)
        raise libvirt_error(exc, f"define nwfilter {model.name}") from exc
    return True


def undefine_filter(conn: libvirt.virConnect, name: str) -> bool:
    """Remove a filter; False when it did not exist. A filter in use is refused by libvirt (409)."""
    try:
        flt = conn.nwfilterLookupByName(name)
    except libvirt.libvirtError as exc:
        _check_support(exc)
        if _code(exc) == libvirt.VIR_ERR_NO_NWFILTER:
            return False
        raise libvirt_error(exc, f"nwfilter {name}") from exc
    try:
        flt.undefine()
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"remove nwfilter {name}") from exc
    return True


def filter_names(conn: libvirt.virConnect, prefix: str = "") -> list[str]:
    try:
        return sorted(f.name() for f in conn.listAllNWFilters(0) if f.name().startswith(prefix))
    except libvirt.libvirtError as exc:
        _check_support(exc)
        raise libvirt_error(exc, "list nwfilters") from exc


def list_filters(conn: libvirt.virConnect) -> list[NWFilterInfo]:
    out = []
    try:
        filters = conn.listAllNWFilters(0)
    except libvirt.libvirtError as exc:
        _check_support(exc)
        raise libvirt_error(exc, "list nwfilters") from exc
    for flt in filters:
        try:
            xml = flt.XMLDesc(0)
        except libvirt.libvirtError:
            continue  # removed meanwhile
        model = Filter.parse(xml)
        name = flt.name()
        owner = ("libvirt" if name in BUILTIN else "flint-ruleset" if name.startswith(RULESET_PREFIX)
                 else "flint-vm" if name.startswith(NIC_PREFIX) else "other")
        out.append(NWFilterInfo(name=name, uuid=flt.UUIDString(), chain=model.chain, priority=model.priority,
                                owner=owner, references=[r.filter for r in model.filterrefs],
                                rules=len(model.rules), xml=xml))
    return sorted(out, key=lambda f: f.name)


# ---- settings in the domain's metadata -----------------------------------------------------------

def settings_of(dom_xml: Domain) -> VMFirewallSettings | None:
    raw = dom_xml.flint_metadata().get(METADATA_KEY)
    if not raw:
        return None
    try:
        return _settings_dec.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        log.warning("unreadable firewall settings in domain metadata", vm=dom_xml.uuid)
        return None


def _affect_flags(dom: libvirt.virDomain) -> list[int]:
    flags = []
    if dom.isActive():
        flags.append(libvirt.VIR_DOMAIN_AFFECT_LIVE)
    if dom.isPersistent():
        flags.append(libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    return flags


def _metadata_values(text: str | None) -> dict[str, str]:
    """What virDomainGetMetadata answers for Flint's namespace: ``<vm><key>text</key>...</vm>``, the
    elements without a namespace prefix (libvirt strips it)."""
    if not text:
        return {}
    root = parse_xml(text)
    return {etree.QName(c).localname: c.text or "" for c in root if isinstance(c.tag, str)}


def _metadata_element(values: dict[str, str]) -> str:
    """The element virDomainSetMetadata wants: no namespace declared (libvirt adds ``flint:`` itself,
    and refuses an element that declares it: "failed to create a new XML namespace")."""
    root = etree.Element("vm")
    for key, text in values.items():
        etree.SubElement(root, key).text = text
    return etree.tostring(root, encoding="unicode")


def write_settings(dom: libvirt.virDomain, settings: VMFirewallSettings) -> None:
    """Merge into Flint's metadata element (other keys stay), live and persistent."""
    value = None if settings == VMFirewallSettings() else json.dumps(msgspec.to_builtins(settings), sort_keys=True)
    for flag in _affect_flags(dom):
        try:
            current = _metadata_values(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, FLINT_NS, flag))
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_DOMAIN_METADATA:
                raise libvirt_error(exc, f"read metadata of VM {dom.name()}") from exc
            current = {}
        if current.get(METADATA_KEY) == value:
            continue
        merged = {k: v for k, v in {**current, METADATA_KEY: value}.items() if v is not None}
        try:
            if merged:
                dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, _metadata_element(merged), "flint", FLINT_NS,
                                flag)
            else:
                dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, FLINT_NS, flag)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"store firewall settings of VM {dom.name()}") from exc


# ---- attaching -----------------------------------------------------------------------------------

def lookup(conn: libvirt.virConnect, vm_id: str) -> libvirt.virDomain:
    try:
        return conn.lookupByUUIDString(vm_id)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"VM {vm_id}") from exc


def _xmls(dom: libvirt.virDomain) -> tuple[Domain | None, Domain | None]:
    """(persistent definition, live definition); either may be None."""
    config = Domain.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)) if dom.isPersistent() else None
    live = Domain.parse(dom.XMLDesc(0)) if dom.isActive() else None
    return config, live


def _nics(config: Domain | None, live: Domain | None) -> list[Interface]:
    """The persistent NICs, then any only the running VM has (hot-plugged without --config)."""
    nics = list(config.interfaces) if config is not None else []
    macs = {(n.mac or "").lower() for n in nics}
    nics += [n for n in (live.interfaces if live is not None else []) if (n.mac or "").lower() not in macs]
    return nics


def _by_mac(domain: Domain | None, mac: str) -> Interface | None:
    if domain is None:
        return None
    return next((i for i in domain.interfaces if (i.mac or "").lower() == mac), None)


def _point_at(dom: libvirt.virDomain, iface: Interface, name: str | None, flag: int) -> None:
    """Make one NIC (live or persistent) reference ``name`` (None: no filter) via updateDeviceFlags."""
    iface.set_filter(name)
    try:
        dom.updateDeviceFlags(iface.to_xml(), flag)
    except libvirt.libvirtError as exc:
        where = "running VM" if flag == libvirt.VIR_DOMAIN_AFFECT_LIVE else "VM definition"
        raise libvirt_error(exc, f"{'attach' if name else 'detach'} filter on NIC {iface.mac} of the {where}") from exc


def apply_vm(conn: libvirt.virConnect, vm_id: str, settings: VMFirewallSettings, host: str,
             known_rulesets: set[str] | None = None, store: bool = True) -> VMFirewall:
    """Make the VM's NICs match ``settings``: per-NIC filters defined and referenced (live and
    persistent), or all removed when the settings filter nothing. Idempotent."""
    dom = lookup(conn, vm_id)
    config, live = _xmls(dom)
    usable = [r for r in settings.rulesets if known_rulesets is None or r in known_rulesets]
    wanted = settings.active
    notes: dict[str, str] = {}
    for nic in _nics(config, live):
        mac = (nic.mac or "").lower()
        if not mac:
            continue
        name = nic_filter_name(vm_id, mac)
        if nic.type not in FILTERABLE:
            notes[mac] = f"nwfilter does not apply to {nic.type} interfaces"
            continue
        copies = [(d, f) for d, f in ((config, libvirt.VIR_DOMAIN_AFFECT_CONFIG), (live, libvirt.VIR_DOMAIN_AFFECT_LIVE))
                  if d is not None]
        if wanted:
            define_filter(conn, nic_filter(name, settings, settings.addresses.get(mac, []), rulesets=usable))
            for domain, flag in copies:
                iface = _by_mac(domain, mac)
                if iface is None:
                    continue
                if iface.filter == name and not iface.filter_parameters:
                    continue
                if iface.filter and not iface.filter.startswith(NIC_PREFIX):
                    notes[mac] = f"replaced filter {iface.filter!r}"
                _point_at(dom, iface, name, flag)
        else:
            for domain, flag in copies:
                iface = _by_mac(domain, mac)
                if iface is not None and iface.filter and iface.filter.startswith(NIC_PREFIX):
                    _point_at(dom, iface, None, flag)
            undefine_filter(conn, name)
    # filters of NICs that are gone
    present = {nic_filter_name(vm_id, (n.mac or "").lower()) for n in _nics(config, live) if n.mac}
    for stale in filter_names(conn, nic_filter_prefix(vm_id)):
        if stale not in present or not wanted:
            try:
                undefine_filter(conn, stale)
            except ServiceError as exc:
                log.warning("stale NIC filter kept", filter=stale, error=exc.message)
    if store:
        write_settings(dom, settings)
    return describe(conn, vm_id, host, notes, known_rulesets)


def describe(conn: libvirt.virConnect, vm_id: str, host: str, notes: dict[str, str] | None = None,
             known_rulesets: set[str] | None = None) -> VMFirewall:
    dom = lookup(conn, vm_id)
    config, live = _xmls(dom)
    base = config or live
    settings = (settings_of(base) if base is not None else None) or VMFirewallSettings()
    nics = []
    for nic in _nics(config, live):
        mac = (nic.mac or "").lower()
        name = nic_filter_name(vm_id, mac)
        live_nic = _by_mac(live, mac)
        note = (notes or {}).get(mac, "")
        if not note and nic.type not in FILTERABLE:
            note = f"nwfilter does not apply to {nic.type} interfaces"
        nics.append(NicFirewall(
            mac=mac, type=nic.type, source=nic.source_network or nic.source_bridge or nic.source_dev,
            filter=nic.filter, attached=nic.filter == name,
            live=None if live is None else (live_nic is not None and live_nic.filter == name),
            ip_addresses=settings.addresses.get(mac, []) if settings.anti_spoofing else [], note=note,
        ))
    missing = [r for r in settings.rulesets if known_rulesets is not None and r not in known_rulesets]
    return VMFirewall(id=dom.UUIDString(), name=dom.name(), host=host, settings=settings, nics=nics,
                      missing_rulesets=missing)


def vm_macs(conn: libvirt.virConnect, vm_id: str) -> list[str]:
    dom = lookup(conn, vm_id)
    config, live = _xmls(dom)
    return [(n.mac or "").lower() for n in _nics(config, live) if n.mac]


def all_settings(conn: libvirt.virConnect) -> dict[str, tuple[str, VMFirewallSettings]]:
    """Every domain with firewall settings: uuid -> (name, settings). One XMLDesc per domain."""
    found = {}
    for dom in conn.listAllDomains(0):
        try:
            flags = libvirt.VIR_DOMAIN_XML_INACTIVE if dom.isPersistent() else 0
            domain = Domain.parse(dom.XMLDesc(flags))
        except libvirt.libvirtError:
            continue  # gone meanwhile
        settings = settings_of(domain)
        if settings is not None:
            found[dom.UUIDString()] = (dom.name(), settings)
    return found


def domain_ids(conn: libvirt.virConnect) -> set[str]:
    return {d.UUIDString() for d in conn.listAllDomains(0)}


def orphan_nic_filters(conn: libvirt.virConnect) -> list[str]:
    """``flint-vm-*`` filters whose VM (uuid prefix) and NIC (MAC) no longer exist on this libvirt."""
    wanted = set()
    for dom in conn.listAllDomains(0):
        try:
            flags = libvirt.VIR_DOMAIN_XML_INACTIVE if dom.isPersistent() else 0
            domain = Domain.parse(dom.XMLDesc(flags))
        except libvirt.libvirtError:
            return []  # a domain vanished while we looked: decide next time
        wanted.update(nic_filter_name(dom.UUIDString(), (i.mac or "").lower()) for i in domain.interfaces if i.mac)
    return [name for name in filter_names(conn, NIC_PREFIX) if name not in wanted]
