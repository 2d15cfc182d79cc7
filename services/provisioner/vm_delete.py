"""Job vm.delete: stop, undefine (with NVRAM, snapshot and checkpoint metadata), optionally delete its disks.

Disks are deleted only when no other domain on the host uses the same volume."""

from __future__ import annotations

from typing import Any

import libvirt

from flint.contracts.common import ServiceError
from flint.service import ServiceContext
from flint.virt.connection import libvirt_error
from flint.xml import domain_summary
from services.provisioner.jobs import JobKind, JobRun, Step


def _lookup(conn: libvirt.virConnect, vm_id: str) -> libvirt.virDomain | None:
    try:
        return conn.lookupByUUIDString(vm_id)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise libvirt_error(exc, f"VM {vm_id}") from exc


def _disk_paths(xml: str) -> list[str]:
    return [d["path"] for d in domain_summary(xml)["disks"] if d["device"] == "disk" and d["path"]]


def disks_used_elsewhere(conn: libvirt.virConnect, vm_id: str, paths: list[str]) -> dict[str, list[str]]:
    """path -> names of the other domains that use it."""
    users: dict[str, list[str]] = {}
    wanted = set(paths)
    for dom in conn.listAllDomains(0):
        try:
            if dom.UUIDString() == vm_id:
                continue
            xml, name = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dom.name()
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                continue  # undefined since the list was taken: it uses nothing any more
            raise
        for disk in domain_summary(xml)["disks"]:
            if disk["path"] in wanted:
                users.setdefault(disk["path"], []).append(name)
    return users


def _validate_blocking(conn: libvirt.virConnect, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    vm_id = str(params.get("id", ""))
    dom = _lookup(conn, vm_id)
    if dom is None:
        raise ServiceError(404, f"no VM with id {vm_id!r}", "id")
    name = dom.name()
    delete_disks = bool(params.get("delete_disks", False))
    paths: list[str] = []
    if delete_disks:
        paths = _disk_paths(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        shared = disks_used_elsewhere(conn, vm_id, paths)
        if shared:
            which = "; ".join(f"{p} is used by {', '.join(users)}" for p, users in shared.items())
            raise ServiceError(409, f"not deleting VM {name!r} with its disks: {which}", "delete_disks")
    return {"id": vm_id, "name": name, "delete_disks": delete_disks, "paths": paths}, name


async def validate(ctx: ServiceContext, params: dict[str, Any]) -> tuple[dict[str, Any], str]:
    return await ctx.virt.call(_validate_blocking, ctx.virt.conn, params)


async def stop(run: JobRun) -> None:
    def blocking() -> None:
        dom = _lookup(run.ctx.virt.conn, run.params["id"])
        if dom is not None and dom.isActive():
            try:
                dom.destroy()
            except libvirt.libvirtError as exc:
                if dom.isActive():
                    raise libvirt_error(exc, f"power off {run.params['name']!r}") from exc

    await run.ctx.virt.call(blocking)


async def undefine(run: JobRun) -> None:
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    )

    def blocking() -> None:
        dom = _lookup(run.ctx.virt.conn, run.params["id"])
        if dom is None:
            return  # already done (a redelivered job)
        try:
            dom.undefineFlags(flags)
        except libvirt.libvirtError as exc:
            raise libvirt_error(exc, f"undefine {run.params['name']!r}") from exc

    await run.ctx.virt.call(blocking)


async def delete_disks(run: JobRun) -> None:
    paths = run.params["paths"]

    def blocking() -> list[str]:
        deleted = []
        for path in paths:
            try:
                vol = run.ctx.virt.conn.storageVolLookupByPath(path)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_VOL:
                    continue  # gone already, or not a volume of any pool
                raise libvirt_error(exc, f"find disk {path}") from exc
            try:
                vol.delete(0)
            except libvirt.libvirtError as exc:
                raise libvirt_error(exc, f"delete disk {path}") from exc
            deleted.append(path)
        return deleted

    deleted = await run.ctx.virt.call(blocking)
    run.job.result["deleted_disks"] = sorted(set(run.job.result.get("deleted_disks", [])) | set(deleted))


VM_DELETE = JobKind(
    name="vm.delete",
    validate=validate,
    steps=[Step("power off", stop), Step("undefine", undefine), Step("delete disks", delete_disks, weight=2)],
)
