"""Internal qcow2 snapshots of a VM (virDomainSnapshotCreateXML): list, create, revert, delete.

Refused up front when libvirt/QEMU cannot take them: a disk that is not qcow2, or UEFI firmware with
an NVRAM store (internal snapshots of pflash-based VMs are not supported)."""

from __future__ import annotations

import libvirt
from lxml import etree

from flint.contracts.common import ServiceError
from flint.contracts.vm_edit import SnapshotCreate, SnapshotDone, SnapshotInfo, SnapshotList, SnapshotRef
from flint.virt.connection import libvirt_error
from services.provisioner.lifecycle import state_name
from services.provisioner.vm_edit import inactive, lookup


def check_supported(dom: libvirt.virDomain) -> None:
    model = inactive(dom)
    if model.is_uefi:
        raise ServiceError(422, f"VM {dom.name()!r} boots UEFI with an NVRAM store: internal snapshots are not "
                                "supported for it", "id")
    for disk in model.disks:
        if disk.device != "disk" or disk.readonly:
            continue
        if (disk.driver_type or "raw") != "qcow2":
            raise ServiceError(422, f"disk {disk.target_dev} of VM {dom.name()!r} is {disk.driver_type or 'raw'}, "
                                    "not qcow2: internal snapshots need every disk in qcow2", "id")


def _info(snap: libvirt.virDomainSnapshot) -> SnapshotInfo:
    root = etree.fromstring(snap.getXMLDesc(0).encode())
    current = False
    try:
        current = bool(snap.isCurrent(0))
    except libvirt.libvirtError:
        pass
    return SnapshotInfo(
        name=root.findtext("name") or snap.getName(),
        description=root.findtext("description") or "",
        created_at=int(root.findtext("creationTime") or 0),
        state=root.findtext("state") or "",
        parent=root.findtext("parent/name"),
        current=current,
    )


def _snapshot(dom: libvirt.virDomain, name: str) -> libvirt.virDomainSnapshot:
    try:
        return dom.snapshotLookupByName(name, 0)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN_SNAPSHOT:
            raise ServiceError(404, f"VM {dom.name()!r} has no snapshot {name!r}", "name") from exc
        raise libvirt_error(exc, f"snapshot {name!r}") from exc


def list_snapshots(conn: libvirt.virConnect, vm_id: str) -> SnapshotList:
    dom = lookup(conn, vm_id)
    try:
        snaps = dom.listAllSnapshots(0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"snapshots of {dom.name()!r}") from exc
    items = sorted((_info(s) for s in snaps), key=lambda i: (i.created_at, i.name))
    return SnapshotList(id=vm_id, snapshots=items)


def create_snapshot(conn: libvirt.virConnect, req: SnapshotCreate) -> SnapshotInfo:
    dom = lookup(conn, req.id)
    check_supported(dom)
    try:
        dom.snapshotLookupByName(req.name, 0)
        raise ServiceError(409, f"VM {dom.name()!r} already has a snapshot {req.name!r}", "name")
    except libvirt.libvirtError:
        pass
    root = etree.Element("domainsnapshot")
    etree.SubElement(root, "name").text = req.name
    if req.description:
        etree.SubElement(root, "description").text = req.description
    try:
        snap = dom.snapshotCreateXML(etree.tostring(root, encoding="unicode"), 0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"snapshot {dom.name()!r}") from exc
    return _info(snap)


def revert_snapshot(conn: libvirt.virConnect, req: SnapshotRef) -> SnapshotDone:
    dom = lookup(conn, req.id)
    snap = _snapshot(dom, req.name)
    try:
        dom.revertToSnapshot(snap, libvirt.VIR_DOMAIN_SNAPSHOT_REVERT_FORCE)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"revert {dom.name()!r} to {req.name!r}") from exc
    return SnapshotDone(id=req.id, name=req.name, action="reverted", state=state_name(dom))


def delete_snapshot(conn: libvirt.virConnect, req: SnapshotRef) -> SnapshotDone:
    dom = lookup(conn, req.id)
    snap = _snapshot(dom, req.name)
    try:
        snap.delete(0)
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"delete snapshot {req.name!r} of {dom.name()!r}") from exc
    return SnapshotDone(id=req.id, name=req.name, action="deleted", state=state_name(dom))
