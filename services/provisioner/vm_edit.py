"""Changing an existing VM in place: settings (PATCH), disks and NICs attached and detached.

Blocking libvirt work (call in a thread). The persistent definition always changes; the running VM
changes too where libvirt allows, and the reply says which fields wait for the next boot."""

from __future__ import annotations

import libvirt

from flint.contracts.common import ServiceError
from flint.contracts.vm_edit import (
    DeviceChange,
    DiskAttach,
    DiskDetach,
    NicAttach,
    NicDetach,
    VMUpdate,
    VMUpdateReply,
)
from flint.virt.connection import libvirt_error
from flint.xml import Disk, Domain, Interface, StorageVolume
from services.provisioner.build_names import next_target
from services.provisioner.vm_create_check import random_mac

GIB = 1024**3
AFFECT_CONFIG = libvirt.VIR_DOMAIN_AFFECT_CONFIG
AFFECT_LIVE = libvirt.VIR_DOMAIN_AFFECT_LIVE


def lookup(conn: libvirt.virConnect, vm_id: str) -> libvirt.virDomain:
    try:
        return conn.lookupByUUIDString(vm_id)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            raise ServiceError(404, f"no VM with id {vm_id!r}", "id") from exc
        raise libvirt_error(exc, f"VM {vm_id}") from exc


def inactive(dom: libvirt.virDomain) -> Domain:
    return Domain.parse(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def _flags(dom: libvirt.virDomain) -> int:
    return AFFECT_CONFIG | (AFFECT_LIVE if dom.isActive() else 0)


# ------------------------------------------------------------------------------------------- PATCH


def update_vm(conn: libvirt.virConnect, req: VMUpdate) -> VMUpdateReply:
    dom = lookup(conn, req.id)
    name = dom.name()
    active = bool(dom.isActive())
    reply = VMUpdateReply(id=req.id)
    if req.vcpus is None and req.memory_mib is None and req.autostart is None and req.description is None:
        raise ServiceError(422, "nothing to change: give vcpus, memory_mib, autostart or description", "body")
    if req.memory_mib is not None:
        try:
            host_mib = conn.getInfo()[1]
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, "host memory") from exc
        if req.memory_mib > host_mib:
            raise ServiceError(422, f"{req.memory_mib} MiB is more than the host's {host_mib} MiB", "memory_mib")
    if req.vcpus is not None or req.memory_mib is not None or req.description is not None:
        model = inactive(dom)
        if req.vcpus is not None:
            model.vcpus = req.vcpus
            vcpu = model.node.find("vcpu")
            if vcpu is not None:
                vcpu.attrib.pop("current", None)
        if req.memory_mib is not None:
            model.memory_mib = req.memory_mib
            model.current_memory_mib = req.memory_mib
        if req.description is not None:
            model.description = req.description or None
        try:
            conn.defineXML(model.to_xml())
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"save the definition of {name!r}") from exc
    if req.autostart is not None:
        try:
            dom.setAutostart(int(req.autostart))
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"autostart of {name!r}") from exc
        reply.live.append("autostart")
    for fname, value in (("vcpus", req.vcpus), ("memory_mib", req.memory_mib), ("description", req.description)):
        if value is None:
            continue
        if not active:
            reply.live.append(fname)  # a shut-off VM: the definition is what it boots with
            continue
        (reply.live if _apply_live(dom, fname, value) else reply.next_boot).append(fname)
    if reply.next_boot:
        reply.message = f"{', '.join(reply.next_boot)} saved; takes effect at next boot"
    else:
        reply.message = "saved"
    return reply


def _apply_live(dom: libvirt.virDomain, field: str, value) -> bool:
    try:
        if field == "vcpus":
            if value > dom.maxVcpus():
                return False
            dom.setVcpusFlags(value, AFFECT_LIVE)
        elif field == "memory_mib":
            if value * 1024 > dom.maxMemory():
                return False
            dom.setMemoryFlags(value * 1024, AFFECT_LIVE)
        else:
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_DESCRIPTION, value or None, None, None, AFFECT_LIVE)
    except libvirt.libvirtError:
        return False
    return True


# ------------------------------------------------------------------------------------------- disks


def _volume(conn: libvirt.virConnect, ref: str, field: str) -> tuple[str, str, libvirt.virStorageVol]:
    pool, _, vol = ref.partition("/")
    if not pool or not vol:
        raise ServiceError(422, f"{ref!r} is not \"pool/volume\"", field)
    try:
        return pool, vol, conn.storagePoolLookupByName(pool).storageVolLookupByName(vol)
    except libvirt.libvirtError as exc:
        raise ServiceError(404, f"no volume {ref!r}: {exc.get_error_message()}", field) from exc


def _used_by(conn: libvirt.virConnect, path: str) -> list[str]:
    users = []
    for other in conn.listAllDomains(0):
        try:
            disks = inactive(other).disks
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue  # undefined since the list was taken
            raise
        for disk in disks:
            if disk.path == path:
                users.append(other.name())
            elif disk.source_pool and disk.source_volume:
                try:
                    p = conn.storagePoolLookupByName(disk.source_pool).storageVolLookupByName(disk.source_volume)
                    if p.path() == path:
                        users.append(other.name())
                except libvirt.libvirtError:
                    pass
    return users


def attach_disk(conn: libvirt.virConnect, req: DiskAttach) -> DeviceChange:
    dom = lookup(conn, req.id)
    name = dom.name()
    if (req.volume is None) == (req.size_gib is None):
        raise ServiceError(422, "give either size_gib (with pool) for a new disk, or volume \"pool/vol\"",
                           "volume" if req.volume else "size_gib")
    if req.size_gib is not None and not req.pool:
        raise ServiceError(422, "a new disk needs the pool to make it in", "pool")
    model = inactive(dom)
    taken = [d.target_dev for d in model.disks if d.target_dev]
    if dom.isActive():
        taken += [d.target_dev for d in Domain.parse(dom.XMLDesc(0)).disks if d.target_dev]
    target = next_target(req.bus, taken)
    created: libvirt.virStorageVol | None = None
    if req.volume is not None:
        pool, vol_name, vol = _volume(conn, req.volume, "volume")
        users = _used_by(conn, vol.path())
        if users:
            raise ServiceError(409, f"volume {req.volume!r} is already used by {', '.join(sorted(set(users)))}", "volume")
        fmt = StorageVolume.parse(vol.XMLDesc(0)).format or "raw"
        if fmt not in ("qcow2", "raw"):
            raise ServiceError(422, f"volume {req.volume!r} is {fmt}, not a disk image (qcow2 or raw)", "volume")
    else:
        pool, fmt = req.pool, "qcow2"
        try:
            p = conn.storagePoolLookupByName(pool)
        except libvirt.libvirtError as exc:
            raise ServiceError(404, f"no pool {pool!r}", "pool") from exc
        size = int(req.size_gib * GIB)
        free = p.info()[3]
        if size > free:
            raise ServiceError(422, f"{req.size_gib} GiB does not fit pool {pool!r} ({free / GIB:.1f} GiB free)",
                               "size_gib")
        vol_name = f"{name}-{target}.qcow2"
        try:
            created = p.createXML(StorageVolume(name=vol_name, capacity=size, allocation=0, format="qcow2").to_xml(), 0)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_STORAGE_VOL_EXIST:
                raise ServiceError(409, f"volume {pool}/{vol_name} exists already", "pool") from exc
            raise libvirt_error(exc, f"create {pool}/{vol_name}") from exc
    disk = Disk(device="disk", driver_name="qemu", driver_type=fmt, target_dev=target, target_bus=req.bus)
    disk.set_source(pool=pool, volume=vol_name)
    live = bool(dom.isActive())
    try:
        dom.attachDeviceFlags(disk.to_xml(), _flags(dom))
    except libvirt.libvirtError as exc:
        if created is not None:
            try:
                created.delete(0)
            except libvirt.libvirtError:
                pass
        raise _attach_error(exc, live, f"attach {pool}/{vol_name} to {name!r} as {target}") from exc
    return DeviceChange(id=req.id, action="attached", device=target, live=live, volume=f"{pool}/{vol_name}",
                        message=f"attached as {target}" + (" (live and persistent)" if live else ""))


def _attach_error(exc: libvirt.libvirtError, live: bool, what: str, field: str | None = None) -> ServiceError:
    err = libvirt_error(exc, what)
    if live and exc.get_error_code() in (libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_ERR_OPERATION_FAILED):
        return ServiceError(409, f"{err.message} — the running VM cannot take it; shut it off and attach again",
                            field)
    return ServiceError(err.code, err.message, field or err.field) if field else err


def _remove_devices(dom: libvirt.virDomain, persistent_xml: str | None, live_xml: str | None, what: str) -> bool:
    """Detach from the definition and the running VM. Returns True when the running VM lets go at once."""
    try:
        if live_xml is not None and dom.isActive():
            dom.detachDeviceFlags(live_xml, AFFECT_LIVE)
        if persistent_xml is not None:
            dom.detachDeviceFlags(persistent_xml, AFFECT_CONFIG)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"detach {what}") from exc
    return True


def detach_disk(conn: libvirt.virConnect, req: DiskDetach) -> DeviceChange:
    dom = lookup(conn, req.id)
    persistent = next((d for d in inactive(dom).disks if d.target_dev == req.target), None)
    running = None
    if dom.isActive():
        running = next((d for d in Domain.parse(dom.XMLDesc(0)).disks if d.target_dev == req.target), None)
    if persistent is None and running is None:
        raise ServiceError(404, f"VM {dom.name()!r} has no disk {req.target!r}", "target")
    _remove_devices(dom, persistent.to_xml() if persistent is not None else None,
                    running.to_xml() if running is not None else None, f"disk {req.target}")
    pending = running is not None and any(d.target_dev == req.target for d in Domain.parse(dom.XMLDesc(0)).disks)
    msg = "detached; the volume is kept"
    if pending:
        msg += "; the guest has not released it yet (it goes at the guest's acknowledgement or the next boot)"
    return DeviceChange(id=req.id, action="detached", device=req.target, live=running is not None and not pending,
                        message=msg)


# -------------------------------------------------------------------------------------------- NICs


def attach_nic(conn: libvirt.virConnect, req: NicAttach) -> DeviceChange:
    dom = lookup(conn, req.id)
    if (req.network is None) == (req.bridge is None):
        raise ServiceError(422, "give exactly one of network or bridge", "network")
    if req.network is not None:
        try:
            conn.networkLookupByName(req.network)
        except libvirt.libvirtError as exc:
            raise ServiceError(404, f"no network {req.network!r}", "network") from exc
        iface = Interface(type="network", mac=random_mac(), source_network=req.network, model=req.model)
    else:
        iface = Interface(type="bridge", mac=random_mac(), source_bridge=req.bridge, model=req.model)
    live = bool(dom.isActive())
    try:
        dom.attachDeviceFlags(iface.to_xml(), _flags(dom))
    except libvirt.libvirtError as exc:
        raise _attach_error(exc, live, f"attach a NIC to {dom.name()!r}",
                            "network" if req.network else "bridge") from exc
    return DeviceChange(id=req.id, action="attached", device=iface.mac, live=live,
                        message="attached" + (" (live and persistent)" if live else ""))


def detach_nic(conn: libvirt.virConnect, req: NicDetach) -> DeviceChange:
    dom = lookup(conn, req.id)
    mac = req.mac.lower()
    persistent = next((i for i in inactive(dom).interfaces if (i.mac or "").lower() == mac), None)
    running = None
    if dom.isActive():
        running = next((i for i in Domain.parse(dom.XMLDesc(0)).interfaces if (i.mac or "").lower() == mac), None)
    if persistent is None and running is None:
        raise ServiceError(404, f"VM {dom.name()!r} has no NIC with MAC {req.mac!r}", "mac")
    _remove_devices(dom, persistent.to_xml() if persistent is not None else None,
                    running.to_xml() if running is not None else None, f"NIC {mac}")
    pending = running is not None and any((i.mac or "").lower() == mac
                                          for i in Domain.parse(dom.XMLDesc(0)).interfaces)
    msg = "detached" + ("; the guest has not released it yet" if pending else "")
    return DeviceChange(id=req.id, action="detached", device=mac, live=running is not None and not pending,
                        message=msg)

