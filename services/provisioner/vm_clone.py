"""Job vm.clone: copy a shut-off VM — full copies of its disks (storageVolCreateXMLFrom) or linked qcow2
overlays on them — and define the copy with a new UUID and new MACs.

The plan (volume names, the UUID, the MACs) is fixed at submission, so a redelivered job finds what an
earlier attempt made; undo deletes only the volumes and the domain this job made."""

from __future__ import annotations

import uuid
from typing import Any

import libvirt
import structlog

from flint.contracts.common import ServiceError
from flint.service import ServiceContext
from flint.virt.connection import libvirt_error
from flint.xml import StorageVolume, validate_name
from services.provisioner.jobs import JobKind, JobRun, Step
from services.provisioner.lifecycle import state_name
from services.provisioner.vm_create import UNDEFINE_FLAGS, _lookup_volume, _remove_volumes
from services.provisioner.vm_create_check import random_mac
from services.provisioner.vm_edit import inactive, lookup

log = structlog.get_logger()


def _source_volume(conn: libvirt.virConnect, disk) -> tuple[str, libvirt.virStorageVol]:
    try:
        if disk.source_pool and disk.source_volume:
            pool = conn.storagePoolLookupByName(disk.source_pool)
            return disk.source_pool, pool.storageVolLookupByName(disk.source_volume)
        if disk.path:
            vol = conn.storageVolLookupByPath(disk.path)
            return vol.storagePoolLookupByVolume().name(), vol
    except libvirt.libvirtError:
        pass
    raise ServiceError(422, f"disk {disk.target_dev} is not a volume of a storage pool, so it cannot be cloned", "id")


def _check(conn: libvirt.virConnect, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    vm_id = str(params.get("id", ""))
    dom = lookup(conn, vm_id)
    name = params.get("name")
    try:
        validate_name("vm", name)
    except ValueError as exc:
        raise ServiceError(422, str(exc), "name") from None
    try:
        conn.lookupByName(name)
        raise ServiceError(409, f"a VM named {name!r} exists already on this host", "name")
    except libvirt.libvirtError:
        pass
    if state_name(dom) != "shutoff":
        raise ServiceError(409, f"VM {dom.name()!r} is {state_name(dom)}: shut it off before cloning it", "id")
    linked = bool(params.get("linked", False))
    model = inactive(dom)
    disks = []
    for disk in model.disks:
        if disk.device != "disk":
            continue
        pool, vol = _source_volume(conn, disk)
        info = StorageVolume.parse(vol.XMLDesc(0))
        fmt = info.format or "raw"
        if linked and fmt not in ("qcow2", "raw"):
            raise ServiceError(422, f"disk {disk.target_dev} is {fmt}: a linked clone needs qcow2 or raw", "linked")
        new = f"{name}-{disk.target_dev}.qcow2" if linked or fmt == "qcow2" else f"{name}-{disk.target_dev}.img"
        if _lookup_volume(conn, pool, new) is not None:
            raise ServiceError(409, f"volume {pool}/{new} exists already", "name")
        disks.append({"target": disk.target_dev, "pool": pool, "source": vol.name(), "source_path": vol.path(),
                      "format": fmt, "capacity": info.capacity, "volume": new})
    macs = {i.mac: random_mac() for i in model.interfaces if i.mac}
    plan = {"id": vm_id, "source_name": dom.name(), "name": name, "linked": linked, "uuid": str(uuid.uuid4()),
            "disks": disks, "macs": macs}
    return plan, name


async def validate(ctx: ServiceContext, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return await ctx.virt.call(_check, ctx.virt.conn, params)


def _copy_one(conn: libvirt.virConnect, disk: dict[str, Any], linked: bool) -> None:
    pool = conn.storagePoolLookupByName(disk["pool"])
    if linked:
        vol = StorageVolume.qcow2_overlay(disk["volume"], disk["capacity"], disk["source_path"], disk["format"])
        pool.createXML(vol.to_xml(), 0)
        return
    src = pool.storageVolLookupByName(disk["source"])
    vol = StorageVolume(name=disk["volume"], capacity=disk["capacity"], allocation=0, format=disk["format"])
    pool.createXMLFrom(vol.to_xml(), src, 0)


async def copy_disks(run: JobRun) -> None:
    conn, call = run.ctx.virt.conn, run.ctx.virt.call
    intent: list[str] = run.data.setdefault("intended_volumes", [])
    created: list[str] = run.data.setdefault("created_volumes", [])
    disks = run.params["disks"]
    for i, disk in enumerate(disks):
        key = f"{disk['pool']}/{disk['volume']}"
        if key in created:
            continue
        existing = await call(_lookup_volume, conn, disk["pool"], disk["volume"])
        if existing is not None:
            if key not in intent:
                raise ServiceError(409, f"volume {key} appeared after the request was checked; it is left alone")
            # An earlier attempt died while copying: the copy may be partial, so make it again.
            await call(existing.delete, 0)
        if key not in intent:
            intent.append(key)
        await run.save()
        how = "overlay on" if run.params["linked"] else "copy of"
        await run.progress(100.0 * i / max(len(disks), 1) * 0.8, f"making {key}, a {how} {disk['source']}")
        try:
            await call(_copy_one, conn, disk, run.params["linked"])
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"make {key}") from exc
        created.append(key)
        await run.save()


async def undo_disks(run: JobRun) -> None:
    await _remove_volumes(run, [f"{d['pool']}/{d['volume']}" for d in run.params["disks"]])


def _define(conn: libvirt.virConnect, params: dict[str, Any]) -> None:
    try:
        conn.lookupByUUIDString(params["uuid"])
        return  # defined by an earlier attempt
    except libvirt.libvirtError:
        pass
    model = inactive(lookup(conn, params["id"]))
    model.name, model.uuid = params["name"], params["uuid"]
    model.nvram = None  # libvirt makes a fresh variable store from the template
    by_target = {d["target"]: d for d in params["disks"]}
    for disk in model.disks:
        plan = by_target.get(disk.target_dev)
        if disk.device == "disk" and plan is not None:
            disk.set_source(pool=plan["pool"], volume=plan["volume"])
            disk.driver_type = "qcow2" if params["linked"] else plan["format"]
    for iface in model.interfaces:
        if iface.mac in params["macs"]:
            iface.mac = params["macs"][iface.mac]
        iface.target_dev = None
    for graphics in model.graphics:
        if graphics.autoport is False:
            graphics.autoport, graphics.port = True, None
    try:
        conn.defineXML(model.to_xml())
    except libvirt.libvirtError as exc:
        raise libvirt_error(exc, f"define clone {params['name']!r}") from exc


async def define(run: JobRun) -> None:
    await run.ctx.virt.call(_define, run.ctx.virt.conn, run.params)
    run.job.result.update({"id": run.params["uuid"], "name": run.params["name"],
                           "volumes": [f"{d['pool']}/{d['volume']}" for d in run.params["disks"]]})


async def undo_define(run: JobRun) -> None:
    def blocking() -> None:
        try:
            dom = run.ctx.virt.conn.lookupByUUIDString(run.params["uuid"])
        except libvirt.libvirtError:
            return
        if dom.isActive():
            dom.destroy()
        dom.undefineFlags(UNDEFINE_FLAGS)

    await run.ctx.virt.call(blocking)


VM_CLONE = JobKind(
    name="vm.clone",
    validate=validate,
    steps=[Step("copy disks", copy_disks, undo_disks, weight=4), Step("define", define, undo_define)],
)
