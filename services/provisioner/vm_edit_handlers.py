"""The provisioner's endpoints for changing an existing VM: settings, snapshots, disks, NICs."""

from __future__ import annotations

import structlog

from flint.bus import Endpoint
from flint.contracts.vm_edit import (
    DeviceChange,
    DiskAttach,
    DiskDetach,
    NicAttach,
    NicDetach,
    SnapshotCreate,
    SnapshotDone,
    SnapshotInfo,
    SnapshotList,
    SnapshotRef,
    SnapshotsList,
    VMUpdate,
    VMUpdateReply,
)
from flint.service import ServiceContext
from services.provisioner import snapshots, vm_edit

log = structlog.get_logger()


def vm_edit_endpoints(ctx: ServiceContext) -> list[Endpoint]:
    virt = ctx.virt

    async def update(req: VMUpdate) -> VMUpdateReply:
        reply = await virt.call(vm_edit.update_vm, virt.conn, req)
        log.info("vm updated", vm=req.id, live=reply.live, next_boot=reply.next_boot)
        return reply

    async def snap_list(req: SnapshotsList) -> SnapshotList:
        return await virt.call(snapshots.list_snapshots, virt.conn, req.id)

    async def snap_create(req: SnapshotCreate) -> SnapshotInfo:
        info = await virt.call(snapshots.create_snapshot, virt.conn, req)
        log.info("snapshot created", vm=req.id, snapshot=req.name)
        return info

    async def snap_revert(req: SnapshotRef) -> SnapshotDone:
        done = await virt.call(snapshots.revert_snapshot, virt.conn, req)
        log.info("snapshot reverted", vm=req.id, snapshot=req.name, state=done.state)
        return done

    async def snap_delete(req: SnapshotRef) -> SnapshotDone:
        done = await virt.call(snapshots.delete_snapshot, virt.conn, req)
        log.info("snapshot deleted", vm=req.id, snapshot=req.name)
        return done

    async def disk_attach(req: DiskAttach) -> DeviceChange:
        return await virt.call(vm_edit.attach_disk, virt.conn, req)

    async def disk_detach(req: DiskDetach) -> DeviceChange:
        return await virt.call(vm_edit.detach_disk, virt.conn, req)

    async def nic_attach(req: NicAttach) -> DeviceChange:
        return await virt.call(vm_edit.attach_nic, virt.conn, req)

    async def nic_detach(req: NicDetach) -> DeviceChange:
        return await virt.call(vm_edit.detach_nic, virt.conn, req)

    return [
        Endpoint("vm.update", VMUpdate, update),
        Endpoint("snapshot.list", SnapshotsList, snap_list),
        Endpoint("snapshot.create", SnapshotCreate, snap_create),
        Endpoint("snapshot.revert", SnapshotRef, snap_revert),
        Endpoint("snapshot.delete", SnapshotRef, snap_delete),
        Endpoint("disk.attach", DiskAttach, disk_attach),
        Endpoint("disk.detach", DiskDetach, disk_detach),
        Endpoint("nic.attach", NicAttach, nic_attach),
        Endpoint("nic.detach", NicDetach, nic_detach),
    ]
